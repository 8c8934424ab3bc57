//! The pod volumes and environment the agent fills from the cluster:
//! configMap, secret, downwardAPI and projected volumes (a bound
//! ServiceAccount token through the TokenRequest API among them), and
//! `env`/`envFrom` values from ConfigMaps, Secrets, pod fields and
//! resources. emptyDir and hostPath volumes need no filling.
//!
//! - [`objects`]: what is read from the cluster, behind a trait the binary
//!   implements (the agent never talks to the API server itself);
//! - [`projection`]: what a volume holds and what env vars resolve to;
//! - [`atomic`]: writing a volume's files so that readers see whole sets.

pub mod atomic;
pub mod objects;
pub mod projection;

#[cfg(test)]
mod tests;

pub use objects::{ClusterObjects, NoCluster, ObjectData, Token, TokenRequest};

use k8s_openapi::api::core::v1::Volume;

/// Whether the agent fills `volume` itself (rather than the runtime or the
/// host: emptyDir, hostPath).
pub fn is_projected(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}
