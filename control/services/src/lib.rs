//! Kubernetes Services → the dataplane's Service tables, as kube-proxy
//! would program them: the per-Service compiler ([`compile`]), the
//! incremental catalog that keeps the published map up to date
//! ([`catalog`]), the task that feeds it events and hands compiled maps to
//! the control loop ([`sync`]), and standalone mode's Services-from-files
//! and endpoints-from-local-pods ([`standalone`]).
//!
//! It owns the Service semantics; it must not talk to the API server (the
//! cluster crate's watchers send it events), touch DPDK or read the admin
//! API's state. All of it but [`sync`]'s task is pure, so it can be tested
//! and benchmarked on its own.

#![deny(unsafe_code)]

pub mod catalog;
pub mod compile;
pub mod selection;
pub mod standalone;
pub mod sync;

#[cfg(test)]
mod tests;

pub use catalog::{CatalogStats, ServiceCatalog, ServicesMap};
pub use compile::{compile, compile_specs, CompiledService, CompiledSpecs, Family, NodeIdentity};
pub use selection::ServiceSelection;
pub use standalone::{endpoint_slices, read_services_dir, LocalPod, PodPort};
