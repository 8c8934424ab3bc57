//! What the agent reads from the cluster for volumes and environment
//! variables: ConfigMaps, Secrets and ServiceAccount tokens. The agent does
//! not talk to the API server itself; the binary hands it an implementation
//! (the cluster crate's, or [`NoCluster`] in standalone mode).

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::future::BoxFuture;

/// A ConfigMap's or Secret's keys and values (a ConfigMap's `data` and
/// `binaryData`; a Secret's `data`, decoded).
pub type ObjectData = BTreeMap<String, Vec<u8>>;

/// A token for a pod's ServiceAccount, bound to the pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenRequest {
    pub namespace: String,
    pub service_account: String,
    /// Empty: the API server's own audiences.
    pub audience: String,
    pub expiration_seconds: i64,
    pub pod_name: String,
    pub pod_uid: String,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub token: String,
    pub expires: SystemTime,
}

/// Reads ConfigMaps and Secrets and asks for tokens. `Ok(None)`: the object
/// does not exist; `Err`: it could not be read (why, for the pod's status).
pub trait ClusterObjects: Send + Sync {
    fn config_map<'a>(&'a self, namespace: &'a str, name: &'a str)
        -> BoxFuture<'a, Result<Option<ObjectData>, String>>;
    fn secret<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ObjectData>, String>>;
    fn service_account_token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<Token, String>>;
}

/// Standalone mode: there is no API server to read from.
pub struct NoCluster;

const STANDALONE: &str = "not available in standalone mode (no API server)";

impl ClusterObjects for NoCluster {
    fn config_map<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<Option<ObjectData>, String>> {
        Box::pin(async { Err(format!("ConfigMaps are {STANDALONE}")) })
    }

    fn secret<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<Option<ObjectData>, String>> {
        Box::pin(async { Err(format!("Secrets are {STANDALONE}")) })
    }

    fn service_account_token<'a>(&'a self, _: &'a TokenRequest) -> BoxFuture<'a, Result<Token, String>> {
        Box::pin(async { Err(format!("ServiceAccount tokens are {STANDALONE}")) })
    }
}
