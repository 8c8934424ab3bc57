//! A test-only stand-in for kube-apiserver.
//!
//! It serves, over plain HTTP on loopback, the part of the Kubernetes API that Switchyard uses
//! (namespaces, nodes, pods, services, events, leases, endpointslices) with the real server's
//! semantics for resource versions, watches, pagination, conflicts, status subresources and
//! graceful pod deletion, so that kubectl and kube-rs clients can be tested against it.
//!
//! [`StandIn`] runs its own tokio runtime on a background thread, so it can be used from plain
//! `#[test]` functions as well as from inside a caller's async runtime; all its methods are
//! synchronous and return quickly.
//!
//! The tests use it only for what a real kube-apiserver cannot be made to do on demand; it is
//! test-only, and nothing shipped depends on it.

#![deny(unsafe_code)]

pub mod discovery;
mod http;
pub mod patch;
pub mod selectors;
mod server;
mod shared;
pub mod status;
pub mod store;
mod watch;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use server::Running;
use shared::Shared;
pub use status::ApiError;
use store::{DeleteOpts, Sub};

/// A running stand-in API server. Dropping it stops the server and its runtime.
pub struct StandIn {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
    quit: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn resource_index<K: Resource>() -> Result<usize, ApiError> {
    discovery::lookup(K::GROUP, K::VERSION, K::URL_PATH_SEGMENT).ok_or_else(ApiError::no_such_resource)
}

fn to_value<K: Serialize>(obj: &K) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn from_value<K: DeserializeOwned>(v: Value) -> Result<K, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::new(500, "InternalError", format!("decoding stored object: {e}")))
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let mut tries = 0;
    loop {
        match std::net::TcpListener::bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl StandIn {
    /// Start on 127.0.0.1 with an ephemeral port. Panics if that fails.
    pub fn start() -> StandIn {
        Self::start_on("127.0.0.1:0".parse().expect("address")).expect("start kube-standin")
    }

    /// Start on the given address (port 0 picks a free port).
    pub fn start_on(addr: SocketAddr) -> io::Result<StandIn> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (quit, quit_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("kube-standin".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = handle_tx.send(Err(e));
                    return;
                }
            };
            let _ = handle_tx.send(Ok(rt.handle().clone()));
            rt.block_on(async {
                let _ = quit_rx.await;
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        let rt = handle_rx.recv().map_err(|_| io::Error::other("runtime thread died"))??;
        let shared = Arc::new(Shared::new());
        *shared.addr.lock().expect("addr lock") = Some(addr);
        let running = server::spawn(&rt, shared.clone(), listener)?;
        Ok(StandIn { shared, rt, addr, running: Mutex::new(Some(running)), quit: Some(quit), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig whose current context points at this server (namespace `default`, a dummy token).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-standin\n  cluster:\n    server: {}\n\
             contexts:\n- name: kube-standin\n  context:\n    cluster: kube-standin\n    user: kube-standin\n    namespace: default\n\
             current-context: kube-standin\nusers:\n- name: kube-standin\n  user:\n    token: kube-standin\npreferences: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Drop all watch history: a watch, or an exact/paginated list, from any older resourceVersion
    /// then gets 410 Gone (Expired). Watches that are up to date go on.
    pub fn compact(&self) {
        self.shared.store.lock().expect("store lock").compact();
    }

    /// How many change events are kept for watches and exact lists (default 10000). Older ones are
    /// dropped, and resuming from before them answers 410.
    pub fn set_history_limit(&self, n: usize) {
        self.shared.store.lock().expect("store lock").set_history_limit(n);
    }

    /// How often open watches with `allowWatchBookmarks=true` get a BOOKMARK (default 5 s); applies
    /// to watches started afterwards.
    pub fn set_bookmark_interval(&self, every: Duration) {
        *self.shared.bookmark_interval.lock().expect("bookmark lock") = every;
    }

    /// End every open watch stream cleanly (as a server restart or a load balancer would).
    pub fn end_watches(&self) {
        self.shared.end_watches.send_modify(|e| *e += 1);
    }

    /// Stop serving: the listener is closed (connections are refused) and open connections,
    /// including watches, are dropped. The state is kept. No-op if already stopped.
    pub fn stop(&self) {
        if let Some(r) = self.running.lock().expect("running lock").take() {
            r.stop();
        }
    }

    /// Serve again on the same address with the same state. No-op if serving.
    pub fn resume(&self) -> io::Result<()> {
        let mut running = self.running.lock().expect("running lock");
        if running.is_none() {
            let listener = bind(self.addr)?;
            *running = Some(server::spawn(&self.rt, self.shared.clone(), listener)?);
        }
        Ok(())
    }

    pub fn is_serving(&self) -> bool {
        self.running.lock().expect("running lock").is_some()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().expect("store lock").current_rv()
    }

    /// Requests served so far, by `"<verb> <resource>[/status]"`, e.g. `"list pods"`, `"watch pods"`,
    /// `"patch pods/status"`, `"create leases.coordination.k8s.io"`.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    pub fn request_count(&self, what: &str) -> u64 {
        self.requests().get(what).copied().unwrap_or(0)
    }

    /// One object; `namespace` is ignored for cluster-scoped types (pass "").
    pub fn get<K: Resource + DeserializeOwned>(&self, namespace: &str, name: &str) -> Option<K> {
        let res = resource_index::<K>().ok()?;
        let v = self.shared.store.lock().expect("store lock").get(res, namespace, name).ok()?;
        from_value(v).ok()
    }

    /// All objects of a type, in all namespaces, ordered by namespace and name.
    pub fn list<K: Resource + DeserializeOwned>(&self) -> Vec<K> {
        let Ok(res) = resource_index::<K>() else { return Vec::new() };
        let all = self.shared.store.lock().expect("store lock").all(res);
        all.into_iter().filter_map(|v| from_value(v).ok()).collect()
    }

    fn namespace_of(v: &Value) -> String {
        let ns = store::meta_str(v, "namespace");
        if ns.is_empty() {
            "default".into()
        } else {
            ns.to_string()
        }
    }

    /// Create as a POST would (defaults, uid, resourceVersion; watchers see ADDED). Namespaced
    /// objects without a namespace go to `default`.
    pub fn create<K: Resource + Serialize + DeserializeOwned>(&self, obj: &K) -> Result<K, ApiError> {
        let res = resource_index::<K>()?;
        let v = to_value(obj)?;
        let ns = Self::namespace_of(&v);
        let created = self.shared.store.lock().expect("store lock").create(res, &ns, v)?;
        from_value(created)
    }

    fn put<K: Resource + Serialize + DeserializeOwned>(&self, obj: &K, sub: Sub) -> Result<K, ApiError> {
        let res = resource_index::<K>()?;
        let v = to_value(obj)?;
        let ns = Self::namespace_of(&v);
        let name = store::meta_str(&v, "name").to_string();
        let mut store = self.shared.store.lock().expect("store lock");
        let r = discovery::info(res);
        let (stored, _) = store.write(res, &ns, &name, sub, |cur| match cur {
            Some(_) => Ok(v),
            None => Err(ApiError::not_found(r.group, r.plural, &name)),
        })?;
        from_value(stored)
    }

    /// Replace as a PUT would (409 on a stale resourceVersion; `.status` is ignored for types with
    /// a status subresource).
    pub fn replace<K: Resource + Serialize + DeserializeOwned>(&self, obj: &K) -> Result<K, ApiError> {
        self.put(obj, Sub::Main)
    }

    /// Replace the status as a PUT to `/status` would.
    pub fn replace_status<K: Resource + Serialize + DeserializeOwned>(&self, obj: &K) -> Result<K, ApiError> {
        self.put(obj, Sub::Status)
    }

    /// Delete as a DELETE would, with an optional grace period. Returns true if the object is gone,
    /// false if its deletion is pending (graceful pod deletion or finalizers).
    pub fn delete<K: Resource>(
        &self,
        namespace: &str,
        name: &str,
        grace_period_seconds: Option<i64>,
    ) -> Result<bool, ApiError> {
        let res = resource_index::<K>()?;
        let opts = DeleteOpts { grace_period_seconds, ..Default::default() };
        let (_, gone) = self.shared.store.lock().expect("store lock").delete(res, namespace, name, &opts)?;
        Ok(gone)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop();
        if let Some(q) = self.quit.take() {
            let _ = q.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
