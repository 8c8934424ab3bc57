//! Harnesses the integration tests share, so no test file repeats them:
//!
//! - [`apiserver`]: a real kube-apiserver with its own etcd;
//! - [`appliance`]: the real `switchyard` binary as a child process, its
//!   admin API, waiting for a condition;
//! - [`containerd`]: a private containerd (state in a temp dir) for tests
//!   that run real pods;
//! - [`lab_client`]: traffic from the lab's client namespace (curl, wrk,
//!   UDP, held and churning connections);
//! - [`pcap`]: reading and writing pcap files for the `net_pcap` vdev;
//! - [`tables`]: dataplane snapshots (two ports, the pod network's route,
//!   Services) for the dataplane's tests and benches.
//!
//! Test-only: nothing shipped depends on this crate.

#![deny(unsafe_code)]

pub mod apiserver;
pub mod appliance;
pub mod containerd;
pub mod lab_client;
pub mod pcap;
pub mod tables;

use std::path::PathBuf;

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `switchyard` binary cargo built next to the running test: tests run
/// from `target/<profile>/deps/`, the binary sits in `target/<profile>/`.
pub fn switchyard_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).map(PathBuf::from).unwrap_or_default();
    profile_dir.join("switchyard")
}
