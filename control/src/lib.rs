//! Switchyard's control side: everything that is not per-packet — the config,
//! start-up of the dataplane, table compilation and publication, the node
//! agent (kubelet duties), metrics, and the admin API the CLI reads.
//!
//! The `switchyard` binary (`main.rs`) is a thin CLI over this library;
//! benches and tests use the library directly.

pub mod admin;
pub mod agent;
pub mod cluster;
pub mod config;
pub mod dataplane_runtime;
pub mod ids;
pub mod metrics_export;
pub mod node;
pub mod quantity;
pub mod runtime;
pub mod services;
pub mod slowpath;
pub mod standalone;
pub mod table_sync;
pub mod tables;
