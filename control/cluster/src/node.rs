//! This node's Node object: registered at start (capacity, allocatable,
//! conditions, node info, labels, addresses) and kept current — the status
//! is recomputed every 10 s, written at once when something changed, and at
//! least every 5 minutes otherwise (kubelet's nodeStatusReportFrequency).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::retry::OutageLog;

pub const STATUS_PERIOD: Duration = Duration::from_secs(10);
pub const REPORT_AT_LEAST_EVERY: Duration = Duration::from_secs(300);
/// How often the writer looks whether its Node still exists: a deleted
/// Node is registered again within this, not at the next status write
/// (which may be minutes away).
pub const EXISTENCE_CHECK: Duration = Duration::from_secs(5);

/// What of a status counts as a change worth writing at once: everything
/// but the heartbeat times.
fn fingerprint(status: &NodeStatus) -> String {
    let mut s = status.clone();
    for c in s.conditions.iter_mut().flatten() {
        c.last_heartbeat_time = None;
    }
    serde_json::to_string(&s).unwrap_or_default()
}

pub struct NodeSync {
    nodes: Api<Node>,
    name: String,
    labels: BTreeMap<String, String>,
    addresses: Vec<NodeAddress>,
    last_written: Option<(String, Instant)>,
}

impl NodeSync {
    pub fn new(client: kube::Client, name: &str, node_ip: Option<String>, labels: BTreeMap<String, String>) -> Self {
        let mut all = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), name.to_string()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), node::go_arch(std::env::consts::ARCH).to_string()),
        ]);
        all.extend(labels);
        let mut addresses = vec![NodeAddress { type_: "Hostname".into(), address: name.into() }];
        if let Some(ip) = node_ip {
            addresses.insert(0, NodeAddress { type_: "InternalIP".into(), address: ip });
        }
        NodeSync { nodes: Api::all(client), name: name.into(), labels: all, addresses, last_written: None }
    }

    /// Creates the Node, or takes over an existing one (adding our labels).
    async fn register(&self) -> kube::Result<()> {
        if self.nodes.get_opt(&self.name).await?.is_some() {
            let patch = serde_json::json!({"metadata": {"labels": self.labels}});
            self.nodes.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            info!(node = %self.name, "node already registered; labels updated");
            return Ok(());
        }
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.labels.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        self.nodes.create(&PostParams::default(), &node).await?;
        info!(node = %self.name, "node registered");
        Ok(())
    }

    /// Writes `status` if it changed or the last write is getting old.
    async fn maybe_write(&mut self, mut status: NodeStatus) -> kube::Result<bool> {
        status.addresses = Some(self.addresses.clone());
        let print = fingerprint(&status);
        let due = match &self.last_written {
            Some((last, at)) => *last != print || at.elapsed() >= REPORT_AT_LEAST_EVERY,
            None => true,
        };
        if !due {
            return Ok(false);
        }
        let patch = serde_json::json!({ "status": status });
        self.nodes.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        self.last_written = Some((print, Instant::now()));
        Ok(true)
    }
}

/// Registers the node and keeps its status current from what the control
/// loop computes and sends on `statuses`, until `shutdown`.
pub async fn run(
    mut sync: NodeSync,
    statuses: watch::Receiver<Option<NodeStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut registered = false;
    // Check often; write when the status changed (it is recomputed every 10 s).
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_existence_check = Instant::now();
    // Failures while the API server is away are logged when they start and
    // when they end, not every second.
    let mut outage = OutageLog::new("node");
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        if !registered {
            match sync.register().await {
                Ok(()) => {
                    outage.succeeded();
                    registered = true;
                }
                Err(e) => {
                    outage.failed(&format!("registering the node: {e}"));
                    continue;
                }
            }
        }
        if last_existence_check.elapsed() >= EXISTENCE_CHECK {
            last_existence_check = Instant::now();
            match sync.nodes.get_opt(&sync.name).await {
                Ok(Some(_)) => outage.succeeded(),
                Ok(None) => {
                    warn!(node = %sync.name, "the Node object is gone; registering again");
                    registered = false;
                    sync.last_written = None;
                    continue;
                }
                Err(e) => outage.failed(&format!("looking at the Node: {e}")),
            }
        }
        let status = statuses.borrow().clone();
        let Some(status) = status else { continue };
        match sync.maybe_write(status).await {
            Ok(true) => {
                outage.succeeded();
                info!(node = %sync.name, "node status written");
            }
            Ok(false) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                warn!(node = %sync.name, "the Node object is gone; registering again");
                registered = false;
                sync.last_written = None;
            }
            Err(e) => outage.failed(&format!("writing node status: {e}")),
        }
    }
}
