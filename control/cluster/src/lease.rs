//! The node's Lease in `kube-node-lease`: renewed every 10 s with a 40 s
//! duration, as kubelet does, so the control plane sees the node alive.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tracing::debug;

use crate::retry::OutageLog;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const RENEW_PERIOD: Duration = Duration::from_secs(10);

/// Renews the Lease until `shutdown`; failures are logged and retried on
/// the next round.
pub async fn run(client: kube::Client, node_name: String, mut shutdown: watch::Receiver<bool>) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(client);
    let mut tick = tokio::time::interval(RENEW_PERIOD);
    // After a renewal that took long (an API server slow to answer), renew
    // once and go on every 10 s, not in a burst of the missed ticks.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outage = OutageLog::new("lease");
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                match renew(&leases, &nodes, &node_name).await {
                    Ok(()) => {
                        outage.succeeded();
                        debug!(node = %node_name, "lease renewed");
                    }
                    Err(e) => outage.failed(&e),
                }
            }
        }
    }
}

/// The Lease's owner: the Node, when it exists. The garbage collector
/// removes the Lease with its Node.
async fn node_owner(nodes: &Api<Node>, node_name: &str) -> kube::Result<Option<OwnerReference>> {
    Ok(nodes.get_opt(node_name).await?.and_then(|n| {
        Some(OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node_name.into(),
            uid: n.metadata.uid?,
            ..Default::default()
        })
    }))
}

async fn renew(leases: &Api<Lease>, nodes: &Api<Node>, node_name: &str) -> kube::Result<()> {
    let now = MicroTime(node::now());
    if let Some(lease) = leases.get_opt(node_name).await? {
        let mut patch = serde_json::json!({"spec": {"holderIdentity": node_name, "renewTime": now,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS}});
        // Created before the Node was (or the Node was registered again):
        // point the Lease at the Node as it is now.
        let owner_uid = lease.metadata.owner_references.iter().flatten().find(|o| o.kind == "Node").map(|o| &o.uid);
        if let Some(owner) = node_owner(nodes, node_name).await? {
            if owner_uid != Some(&owner.uid) {
                patch["metadata"] = serde_json::json!({"ownerReferences": [owner]});
            }
        }
        leases.patch(node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        return Ok(());
    }
    let owner = node_owner(nodes, node_name).await?;
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(node_name.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node_name.into()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &lease).await?;
    Ok(())
}
