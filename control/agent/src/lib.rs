//! The node agent: the kubelet's duties on this node. It runs the pods this
//! node is given (static manifests, and pods bound to it in the API server)
//! through the container runtime's CRI, probes them, and reports their
//! status.
//!
//! It owns the pods' lifecycle on the node. It must not talk to the API
//! server (the cluster crate feeds it pods and writes their status) nor
//! touch DPDK: it builds and tests on a machine without DPDK installed.

#![deny(unsafe_code)]

pub mod backoff;
pub mod cri;
pub mod endpoint_sync;
pub mod events;
pub mod manager;
pub mod manifests;
pub mod observed;
pub mod pod;
pub mod probe;
pub mod runtime_spec;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// How often the manager lists every managed container to wake the workers
/// of pods whose containers changed: a dead container is noticed within
/// this, not within a sync period.
const RELIST_PERIOD: Duration = Duration::from_millis(250);

/// How long the manifests directory must be quiet after a change before it
/// is scanned.
const MANIFEST_DEBOUNCE: Duration = Duration::from_millis(100);

use self::backoff::BackoffPolicy;
use self::cri::{CriClient, RuntimeHealth};
use self::endpoint_sync::EndpointSync;
use self::manager::PodManager;
use self::manifests::ManifestError;
use self::runtime_spec::{parse_resolv_conf, NodeContext};
use self::worker::{PodStore, WorkerSettings};

/// The `[agent]` section of the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's name; the host name by default.
    pub node_name: Option<String>,
    /// The node's address (status.hostIP, hostNetwork pods' IP).
    pub node_ip: Option<IpAddr>,
    #[serde(default = "default_endpoint")]
    pub runtime_endpoint: String,
    /// Directory of static pod manifests.
    pub manifests: Option<PathBuf>,
    /// Pod logs and emptyDir volumes.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    #[serde(default = "default_cgroup_root")]
    pub cgroup_root: String,
    #[serde(default)]
    pub cluster_dns: Vec<IpAddr>,
    #[serde(default = "default_domain")]
    pub cluster_domain: String,
    /// How often each pod worker looks at its pod.
    #[serde(default = "default_sync_ms")]
    pub sync_period_ms: u64,
    /// How often the manifests directory is rescanned, besides the scans
    /// that inotify triggers on every change (a safety net, as kubelet's).
    #[serde(default = "default_rescan_ms")]
    pub rescan_period_ms: u64,
    /// CrashLoopBackOff: first and longest wait (kubelet: 10 s and 300 s).
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_seconds: f64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_seconds: f64,
}

fn default_endpoint() -> String {
    "unix:///run/containerd/containerd.sock".into()
}
fn default_root() -> PathBuf {
    "/var/lib/switchyard".into()
}
fn default_cgroup_root() -> String {
    "/switchyard".into()
}
fn default_domain() -> String {
    "cluster.local".into()
}
fn default_sync_ms() -> u64 {
    1000
}
fn default_rescan_ms() -> u64 {
    5000
}
fn default_backoff_initial() -> f64 {
    10.0
}
fn default_backoff_max() -> f64 {
    300.0
}

impl AgentConfig {
    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or("node".into())
        })
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.backoff_initial_seconds > 0.0 && self.backoff_max_seconds >= self.backoff_initial_seconds) {
            anyhow::bail!("agent: backoff_initial_seconds must be > 0 and ≤ backoff_max_seconds");
        }
        if self.sync_period_ms == 0 || self.rescan_period_ms == 0 {
            anyhow::bail!("agent: sync_period_ms and rescan_period_ms must be > 0");
        }
        CriClient::socket_path(&self.runtime_endpoint).map_err(|e| anyhow::anyhow!("agent.runtime_endpoint: {e}"))?;
        Ok(())
    }
}

/// Watches `dir` with inotify; each change to its files (written, created,
/// renamed, removed) sends on `changed` (coalesced). Opening or reading a
/// file is not a change: the agent's own scans open every manifest, and
/// reacting to that would rescan forever. Without inotify (or the
/// directory), the periodic rescan still works.
fn watch_dir(dir: &std::path::Path, changed: tokio::sync::mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| changes_a_manifest(&e.kind)) {
            let _ = changed.try_send(());
        }
    })
    .map_err(|e| warn!("manifests: no inotify ({e}); rescanning periodically only"))
    .ok()?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| warn!("manifests: cannot watch {} ({e}); rescanning periodically only", dir.display()))
        .ok()?;
    Some(watcher)
}

/// Whether an inotify event can change what the directory holds: not an
/// open, a read, a close without writing, or a metadata change.
fn changes_a_manifest(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        // A file written and closed: its content is complete now.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// What the agent shows the CLI and the API.
#[derive(Default)]
pub struct AgentState {
    pub pods: PodStore,
    pub manifest_errors: RwLock<Vec<ManifestError>>,
    pub runtime: RwLock<RuntimeView>,
    /// The Service side's rounds over `pods`: terminating pods wait for them.
    pub endpoint_sync: Arc<EndpointSync>,
}

#[derive(Clone, Debug, Default)]
pub struct RuntimeView {
    pub version: Option<String>,
    pub health: Option<RuntimeHealth>,
    /// Why the runtime could not be asked, when it could not.
    pub error: Option<String>,
}

/// Pods wanted by a source other than the manifests directory (the API
/// server): the source's name and all its pods, each time they change.
pub type SourceUpdate = (&'static str, Vec<pod::DesiredPod>);

/// Runs the agent until `shutdown` turns true. Pods keep running when the
/// agent stops; a new agent adopts them. `external` carries other sources'
/// pods; `external_sources` says how many must report once before the agent
/// removes sandboxes nobody wants (so a restart does not remove the API's
/// pods before the API has been read).
pub async fn run(
    config: AgentConfig,
    state: Arc<AgentState>,
    objects: Arc<dyn volumes::ClusterObjects>,
    events: Arc<dyn events::EventSink>,
    mut external: tokio::sync::mpsc::UnboundedReceiver<SourceUpdate>,
    external_sources: usize,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let node_name = config.node_name();
    let cri = CriClient::new(&config.runtime_endpoint)?;
    let host_dns = parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let node = Arc::new(NodeContext {
        node_name: node_name.clone(),
        node_ip: config.node_ip.map(|ip| ip.to_string()),
        root: config.root.clone(),
        cgroup_root: config.cgroup_root.clone(),
        cluster_dns: config.cluster_dns.iter().map(IpAddr::to_string).collect(),
        cluster_domain: config.cluster_domain.clone(),
        host_dns,
    });
    let settings = WorkerSettings {
        objects,
        events,
        sync_period: Duration::from_millis(config.sync_period_ms),
        backoff: BackoffPolicy {
            initial: Duration::from_secs_f64(config.backoff_initial_seconds),
            max: Duration::from_secs_f64(config.backoff_max_seconds),
            ..BackoffPolicy::default()
        },
    };
    let mut manager = PodManager::new(cri.clone(), node, settings, state.pods.clone(), state.endpoint_sync.clone());
    info!(node = %node_name, runtime = %config.runtime_endpoint, manifests = ?config.manifests, "node agent starting");

    let mut rescan = tokio::time::interval(Duration::from_millis(config.rescan_period_ms));
    // inotify on the manifests directory: a change is picked up at once.
    let (changed_tx, mut changed) = tokio::sync::mpsc::channel::<()>(1);
    let _watcher = config.manifests.as_ref().and_then(|dir| watch_dir(dir, changed_tx));
    let debounce = tokio::time::sleep(MANIFEST_DEBOUNCE);
    tokio::pin!(debounce);
    let mut scan_pending = false;
    let mut housekeeping = tokio::time::interval(Duration::from_secs(5));
    let mut relist = tokio::time::interval(RELIST_PERIOD);
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut runtime_check = tokio::time::interval(Duration::from_secs(10));
    let mut last_seen: Option<BTreeSet<String>> = None;
    let mut last_errors: Vec<ManifestError> = Vec::new();
    let mut scanned = false;
    let mut reported: BTreeSet<&'static str> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some((source, pods)) = external.recv() => {
                reported.insert(source);
                manager.set_source(source, pods);
            }
            Some(()) = changed.recv() => {
                // An editor's save or a copy comes as several events: scan
                // once they have settled.
                debounce.as_mut().reset(tokio::time::Instant::now() + MANIFEST_DEBOUNCE);
                scan_pending = true;
            }
            _ = async {
                tokio::select! {
                    _ = rescan.tick() => {}
                    _ = &mut debounce, if scan_pending => {}
                }
            } => {
                scan_pending = false;
                let Some(dir) = &config.manifests else { scanned = true; continue };
                let scan = manifests::scan(dir, &node_name);
                for e in scan.errors.iter().filter(|e| !last_errors.contains(e)) {
                    error!("static pod manifest {e}");
                }
                last_errors = scan.errors.clone();
                if let Ok(mut errors) = state.manifest_errors.write() {
                    *errors = scan.errors;
                }
                let uids: BTreeSet<String> = scan.pods.iter().map(|p| p.uid.clone()).collect();
                if last_seen.as_ref() != Some(&uids) {
                    info!(pods = uids.len(), "static pods changed");
                    last_seen = Some(uids);
                }
                manager.set_source("file", scan.pods);
                scanned = true;
            }
            _ = housekeeping.tick(), if scanned && reported.len() >= external_sources => {
                if let Err(e) = manager.tick().await {
                    warn!("housekeeping: {e}");
                }
            }
            _ = relist.tick(), if scanned => {
                // A failure here is the runtime being away, which the
                // runtime check below reports.
                if let Err(e) = manager.relist().await {
                    debug!("relist: {e}");
                }
            }
            _ = runtime_check.tick() => {
                let view = match (cri.version().await, cri.health().await) {
                    (Ok(version), Ok(health)) => RuntimeView { version: Some(version), health: Some(health), error: None },
                    (Err(e), _) | (_, Err(e)) => RuntimeView { error: Some(e.to_string()), ..RuntimeView::default() },
                };
                if let Some(e) = &view.error {
                    warn!("container runtime: {e}");
                }
                if let Ok(mut r) = state.runtime.write() {
                    *r = view;
                }
            }
        }
    }
    info!("node agent stopped; pods keep running");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::changes_a_manifest;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, EventKind, MetadataKind, ModifyKind};
    use notify::event::{RemoveKind, RenameMode};

    #[test]
    fn reading_a_manifest_is_not_a_change() {
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!changes_a_manifest(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(changes_a_manifest(&kind), "{kind:?}");
        }
    }
}
