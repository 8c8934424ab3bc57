//! The Kubernetes API side: connect with kube-rs, register this node and
//! renew its Lease, run the pods bound to it (and show static pods as
//! mirror pods), and turn Services and EndpointSlices into dataplane tables.
//!
//! Everything here tolerates the API server going away: watchers re-list
//! with back-off, writes are retried on the next round, and what was last
//! read stays in force (pods keep running, the dataplane keeps its tables).
//!
//! It owns every conversation with the API server; it must not compile
//! Service tables itself (it hands events to the services crate), run
//! containers (the agent does) or read the admin API's state (the control
//! loop sends it the node's status). The crate is `cluster`, not `kube`, so
//! that its name does not shadow kube-rs's.

#![deny(unsafe_code)]

pub mod events;
pub mod lease;
pub mod node;
pub mod objects;
pub mod pods;
pub mod retry;
pub mod services;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The `[cluster]` section: how to reach the API server.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// A kubeconfig file; without it, `KUBECONFIG`, then the in-cluster
    /// service account.
    pub kubeconfig: Option<PathBuf>,
    /// Labels for this node's Node object (besides kubernetes.io/hostname,
    /// os and arch).
    #[serde(default)]
    pub node_labels: BTreeMap<String, String>,
    /// The name this proxy answers to in a Service's
    /// `service.kubernetes.io/service-proxy-name` label. Services labelled
    /// with another name are left to that proxy; without a name, only
    /// unlabelled Services are programmed, as kube-proxy does.
    pub service_proxy_name: Option<String>,
}

/// A client from the config's kubeconfig, `KUBECONFIG`, or the in-cluster
/// service account, in that order.
pub async fn client(config: &ClusterConfig) -> Result<kube::Client> {
    let kube_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context("no kubeconfig given, none in KUBECONFIG, not in a cluster")?,
    };
    let kube_config = kube::Config {
        connect_timeout: Some(retry::CONNECT_TIMEOUT),
        read_timeout: Some(retry::READ_TIMEOUT),
        write_timeout: Some(retry::READ_TIMEOUT),
        ..kube_config
    };
    kube::Client::try_from(kube_config).context("creating the Kubernetes client")
}
