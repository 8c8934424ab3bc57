//! Kubernetes Services → the dataplane's Service tables, as kube-proxy
//! would program them: the per-Service compiler ([`compile`]), the
//! incremental catalog that keeps the published map up to date
//! ([`catalog`]), and standalone mode's Services-from-files and
//! endpoints-from-local-pods ([`standalone`]). All of it is pure (no I/O but
//! reading a manifest directory), so that it can be tested and benchmarked
//! on its own.

pub mod catalog;
pub mod compile;
pub mod standalone;

#[cfg(test)]
mod tests;

pub use catalog::{CatalogStats, ServiceCatalog, ServicesMap};
pub use compile::{compile, compile_specs, CompiledService, CompiledSpecs, Family, NodeIdentity};
pub use standalone::{endpoint_slices, read_services_dir, LocalPod, PodPort};
