//! Pods and the API server: the pods bound to this node become a pod source
//! for the agent; their status goes back through the status subresource;
//! static pods appear as mirror pods (recreated if deleted); a pod deleted
//! in the API is stopped, then removed for good (grace period 0), as kubelet
//! does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use agent::pod::{DesiredPod, PodSource};
use agent::worker::PodReport;
use agent::{AgentState, SourceUpdate};

use crate::retry::{OutageLog, WatchBackoff};

pub const SOURCE: &str = "api";
const MIRROR: &str = "kubernetes.io/config.mirror";
const CONFIG_HASH: &str = "kubernetes.io/config.hash";

fn is_mirror(pod: &Pod) -> bool {
    pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR))
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

struct PodSync {
    client: kube::Client,
    node_name: String,
    agent: Arc<AgentState>,
    store: Store<Pod>,
    to_agent: mpsc::UnboundedSender<SourceUpdate>,
    /// What the agent was last told: UID → the pod as sent.
    sent: Option<BTreeMap<String, Pod>>,
    /// Status last written, by `namespace/name`.
    written: HashMap<String, String>,
    /// Pods the API holds that the agent cannot run, with why (logged once).
    rejected: HashMap<String, String>,
}

/// The longest one round of status writes may take.
const ROUND_LIMIT: Duration = Duration::from_secs(5);

/// Runs the API pod source until `shutdown`.
pub async fn run(
    client: kube::Client,
    node_name: String,
    agent: Arc<AgentState>,
    to_agent: mpsc::UnboundedSender<SourceUpdate>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let (store, writer) = reflector::store::<Pod>();
    let config = crate::retry::watch_config().fields(&format!("spec.nodeName={node_name}"));
    // Watch errors (410 Gone, dropped connections, an unreachable server)
    // re-list with back-off; the store keeps the last state meanwhile.
    let events = reflector::reflector(writer, watcher::watcher(api, config)).backoff(WatchBackoff::default());
    let mut outage = OutageLog::new("pods");
    let mut events = std::pin::pin!(events);
    let mut sync = PodSync {
        client,
        node_name,
        agent,
        store,
        to_agent,
        sent: None,
        written: HashMap::new(),
        rejected: HashMap::new(),
    };
    let mut listed = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            event = events.next() => match event {
                Some(Ok(event)) => {
                    outage.succeeded();
                    match event {
                        Event::InitDone => { listed = true; sync.send_desired().await; }
                        Event::Apply(_) | Event::Delete(_) if listed => sync.send_desired().await,
                        _ => {}
                    }
                }
                Some(Err(e)) => outage.failed(&e),
                None => {
                    warn!("the pod watch ended; pods bound to this node are no longer followed");
                    return;
                }
            },
            // Status writes wait while the watch is failing (the server is
            // away), and a round is bounded: the watch above is not polled
            // while a round runs, and must not wait behind calls to a
            // server that does not answer.
            _ = tick.tick() => {
                outage.tick();
                if listed && !outage.in_outage()
                    && tokio::time::timeout(ROUND_LIMIT, sync.round()).await.is_err()
                {
                    debug!("a status round took over {ROUND_LIMIT:?}; the rest waits for the next");
                }
            }
        }
    }
}

impl PodSync {
    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Tells the agent which pods the API wants run here, when that changed.
    async fn send_desired(&mut self) {
        let mut wanted = BTreeMap::new();
        for pod in self.store.state() {
            if is_mirror(&pod) || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // What the agent compares: not the status we write, nor the
            // resource version it bumps.
            let mut pod = (*pod).clone();
            pod.status = None;
            pod.metadata.resource_version = None;
            pod.metadata.managed_fields = None;
            if let Some(uid) = pod.metadata.uid.clone() {
                wanted.insert(uid, pod);
            }
        }
        if self.sent.as_ref() == Some(&wanted) {
            return;
        }
        let mut desired = Vec::new();
        for (uid, pod) in &wanted {
            let name =
                key(pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""));
            match DesiredPod::new(pod.clone(), PodSource::Api) {
                Ok(p) => desired.push(p),
                Err(why) => {
                    if self.rejected.insert(uid.clone(), why.clone()).is_none() {
                        warn!(pod = %name, "cannot run the pod: {why}");
                        self.reject(pod, &why).await;
                    }
                }
            }
        }
        info!(pods = desired.len(), "pods bound to this node changed");
        let _ = self.to_agent.send((SOURCE, desired));
        self.sent = Some(wanted);
    }

    /// A pod the agent cannot run is Failed, with the reason (kubelet's
    /// admission rejection).
    async fn reject(&self, pod: &Pod, why: &str) {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else { return };
        let patch = serde_json::json!({"status": {"phase": "Failed", "reason": "InvalidPod", "message": why}});
        if let Err(e) = self.pods(ns).patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            warn!(pod = %key(ns, name), "writing the rejection failed: {e}");
        }
    }

    /// Status writes, mirror pods, and final deletions; every half second.
    async fn round(&mut self) {
        let reports: Vec<PodReport> = self.agent.pods.read().map(|p| p.values().cloned().collect()).unwrap_or_default();
        let in_api: HashMap<String, Arc<Pod>> = self
            .store
            .state()
            .into_iter()
            .map(|p| (key(p.metadata.namespace.as_deref().unwrap_or(""), p.metadata.name.as_deref().unwrap_or("")), p))
            .collect();

        for r in &reports {
            let k = key(&r.namespace, &r.name);
            match &r.source {
                PodSource::Api => {}
                PodSource::Static { .. } => {
                    if !self.ensure_mirror(r, in_api.get(&k)).await {
                        continue;
                    }
                }
            }
            if r.terminating {
                continue;
            }
            self.write_status(r).await;
        }

        // Pods deleted in the API that the agent has stopped: remove them for
        // good. Mirror pods whose static pod is gone: remove them too.
        let running: HashSet<String> = reports.iter().map(|r| r.uid.clone()).collect();
        let statics: HashSet<String> = reports
            .iter()
            .filter(|r| matches!(r.source, PodSource::Static { .. }))
            .map(|r| key(&r.namespace, &r.name))
            .collect();
        for (k, pod) in &in_api {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let finished_deleting = pod.metadata.deletion_timestamp.is_some() && !running.contains(&uid);
            let orphan_mirror = is_mirror(pod) && !statics.contains(k);
            if finished_deleting || orphan_mirror {
                self.delete_now(pod).await;
                self.written.remove(k);
            }
        }
    }

    async fn write_status(&mut self, r: &PodReport) {
        let k = key(&r.namespace, &r.name);
        let text = serde_json::to_string(&r.status).unwrap_or_default();
        if self.written.get(&k) == Some(&text) {
            return;
        }
        let patch = serde_json::json!({ "status": r.status });
        match self.pods(&r.namespace).patch_status(&r.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                self.written.insert(k, text);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => warn!(pod = %k, "writing pod status failed (retrying): {e}"),
        }
    }

    /// Makes sure a static pod has its mirror pod; returns whether it has one
    /// now (so its status can be written).
    async fn ensure_mirror(&mut self, r: &PodReport, existing: Option<&Arc<Pod>>) -> bool {
        let hash = r.uid.clone();
        if let Some(pod) = existing {
            let current = pod.metadata.annotations.as_ref().and_then(|a| a.get(MIRROR)).cloned();
            if current.as_deref() == Some(hash.as_str()) && pod.metadata.deletion_timestamp.is_none() {
                return true;
            }
            // A stale mirror (the manifest changed), a pod in the way, or a
            // mirror being deleted: replace it.
            self.delete_now(pod).await;
            return false;
        }
        // A mirror pod belongs to its Node from its creation (the garbage
        // collector removes it with the Node): wait for the Node to exist,
        // and take its uid as it is now (it changes if the Node is
        // registered again).
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node_uid = nodes.get_opt(&self.node_name).await.ok().flatten().and_then(|n| n.metadata.uid);
        let Some(node_uid) = node_uid else { return false };
        let mut annotations = r.pod.pod.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(MIRROR.into(), hash.clone());
        annotations.insert(CONFIG_HASH.into(), hash);
        let mirror = Pod {
            metadata: ObjectMeta {
                name: Some(r.name.clone()),
                namespace: Some(r.namespace.clone()),
                labels: r.pod.pod.metadata.labels.clone(),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: self.node_name.clone(),
                    uid: node_uid,
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: r.pod.pod.spec.clone(),
            status: None,
        };
        match self.pods(&r.namespace).create(&PostParams::default(), &mirror).await {
            Ok(_) => {
                info!(pod = %key(&r.namespace, &r.name), "mirror pod created");
                self.written.remove(&key(&r.namespace, &r.name));
                true
            }
            Err(e) => {
                warn!(pod = %key(&r.namespace, &r.name), "creating the mirror pod failed (retrying): {e}");
                false
            }
        }
    }

    async fn delete_now(&self, pod: &Pod) {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else { return };
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod.metadata.uid.clone().map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
            ..Default::default()
        };
        match self.pods(ns).delete(name, &params).await {
            Ok(_) => info!(pod = %key(ns, name), "pod removed from the API"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => warn!(pod = %key(ns, name), "deleting the pod failed (retrying): {e}"),
        }
    }
}
