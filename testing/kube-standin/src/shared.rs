//! The state every part of the stand-in shares: the store, the signal that
//! ends open watches, and request counts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::Store;

/// State shared by the request handlers, the watch streams and the library API.
pub struct Shared {
    pub store: Mutex<Store>,
    /// Bumped by `end_watches()`: every open watch stream ends.
    pub end_watches: tokio::sync::watch::Sender<u64>,
    pub bookmark_interval: Mutex<Duration>,
    pub requests: Mutex<BTreeMap<String, u64>>,
    pub addr: Mutex<Option<SocketAddr>>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            store: Mutex::new(Store::new()),
            end_watches: tokio::sync::watch::channel(0).0,
            bookmark_interval: Mutex::new(Duration::from_secs(5)),
            requests: Mutex::new(BTreeMap::new()),
            addr: Mutex::new(None),
        }
    }

    pub fn count(&self, what: String) {
        *self.requests.lock().expect("requests lock").entry(what).or_default() += 1;
    }
}
