//! Tests of the Service compiler, the catalog and standalone mode, with
//! Services and EndpointSlices written as YAML.

mod catalog;
mod compile;
mod standalone;

use std::collections::BTreeMap;
use std::net::IpAddr;

use dataplane::tables::{proto, Addr, Service as Table, ServiceKey};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::compile::{CompiledService, NodeIdentity};

pub const RING: usize = 4093;

pub fn svc(yaml: &str) -> Service {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("test Service: {e}\n{yaml}"))
}

pub fn slice(yaml: &str) -> EndpointSlice {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("test EndpointSlice: {e}\n{yaml}"))
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// node-a, with one address of each family.
pub fn node() -> NodeIdentity {
    NodeIdentity { name: "node-a".into(), addresses: vec![ip("192.168.1.10"), ip("fd00:1::10")] }
}

pub fn key(vip: &str, port: u16, protocol: u8) -> ServiceKey {
    ServiceKey { vip: Addr::from(ip(vip)), port, proto: protocol }
}

pub fn tcp(vip: &str, port: u16) -> ServiceKey {
    key(vip, port, proto::TCP)
}

/// The entries by their displayed key ("10.96.0.10:80/TCP").
pub fn by_key(c: &CompiledService) -> BTreeMap<String, &Table> {
    c.entries.iter().map(|(k, t)| (k.to_string(), &**t)).collect()
}

/// A table's backends as "addr#port state", in order.
pub fn backends(t: &Table) -> Vec<String> {
    t.backends.iter().map(|b| format!("{}#{} {}", b.addr, b.port, b.state.as_str())).collect()
}

/// The warnings of `c`, joined, for `contains` checks.
pub fn warnings(c: &CompiledService) -> String {
    c.warnings.join("\n")
}
