//! One Kubernetes Service and its EndpointSlices → the dataplane's Service
//! table entries, with kube-proxy's semantics.
//!
//! What a Service answers on (one key per VIP × port × protocol):
//! - every address of `spec.clusterIPs` (or `spec.clusterIP`), both families;
//! - `nodePort` on each of this node's addresses of the Service's families
//!   (type NodePort, or LoadBalancer with a nodePort);
//! - `status.loadBalancer.ingress[].ip` (VIP-mode ingresses; kube-proxy skips
//!   `ipMode: Proxy`, as the load balancer then sends to the node instead);
//! - `spec.externalIPs`.
//!
//! Each key gets the endpoints of its family from the Service's
//! EndpointSlices (the slice port with the Service port's name and
//! protocol), as [`BackendState`]s, filtered to this node's endpoints where a
//! traffic policy says `Local`: `internalTrafficPolicy` for cluster IPs,
//! `externalTrafficPolicy` for the rest. The dataplane's [`Table::build`]
//! then prefers ready endpoints and falls back to serving-terminating ones.
//!
//! Nothing here panics on bad input: a field that cannot be used is named in
//! a warning and the entries that depend on it are skipped.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use dataplane::tables::{proto, Addr, Backend, BackendState, Service as Table, ServiceKey, ServiceSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// sessionAffinity ClientIP's timeout when the Service gives none (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10_800;

/// The largest timeout the API accepts (one day).
pub const MAX_AFFINITY_TIMEOUT_S: u32 = 86_400;

/// This node, as the compiler needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The Node's name: endpoints whose `nodeName` equals it are local.
    pub name: String,
    /// The node's own addresses, on which NodePorts are answered.
    pub addresses: Vec<IpAddr>,
}

/// A compiled Service: one table entry per key, and what was wrong with it.
#[derive(Debug, Default)]
pub struct CompiledService {
    pub entries: Vec<(ServiceKey, Arc<Table>)>,
    pub warnings: Vec<String>,
}

/// The same before the Maglev rings are built (see [`compile_specs`]).
#[derive(Debug, Default)]
pub struct CompiledSpecs {
    pub specs: Vec<ServiceSpec>,
    pub warnings: Vec<String>,
}

/// An address family.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &Addr) -> Family {
        if addr.is_v4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub fn of_ip(ip: &IpAddr) -> Family {
        Family::of(&Addr::from(*ip))
    }

    /// As in `ipFamilies` and EndpointSlice `addressType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `metadata.namespace`, "default" when unset.
pub fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default")
}

/// `metadata.name`, "" when unset.
pub fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// The (namespace, Service name) an EndpointSlice belongs to, by its label.
pub fn slice_owner(slice: &EndpointSlice) -> Option<(&str, &str)> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    (!service.is_empty()).then(|| (namespace_of(&slice.metadata), service.as_str()))
}

/// A protocol name of the API (`TCP`, `UDP`, `SCTP`; unset means TCP).
pub fn parse_protocol(p: Option<&str>) -> Option<u8> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(proto::TCP),
        "UDP" => Some(proto::UDP),
        "SCTP" => Some(proto::SCTP),
        _ => None,
    }
}

/// An endpoint's conditions as a backend state: ready (unset: true) →
/// Ready; else serving (unset: as ready) and terminating (unset: false) →
/// Terminating; else NotReady.
pub fn backend_state(conditions: Option<&EndpointConditions>) -> BackendState {
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    if ready {
        BackendState::Ready
    } else if serving && terminating {
        BackendState::Terminating
    } else {
        BackendState::NotReady
    }
}

/// Compiles `service` with the EndpointSlices among `slices` that belong to
/// it, for this node, building each key's Maglev ring (at most `max_ring`
/// slots).
pub fn compile(service: &Service, slices: &[EndpointSlice], node: &NodeIdentity, max_ring: usize) -> CompiledService {
    let refs: Vec<&EndpointSlice> = slices.iter().collect();
    let CompiledSpecs { specs, warnings } = compile_specs(service, &refs, node);
    let entries = specs.into_iter().map(|s| (s.key, Arc::new(Table::build(s, max_ring)))).collect();
    CompiledService { entries, warnings }
}

/// Everything [`compile`] does but building the rings: the catalog compares
/// these with what it has and rebuilds only what changed.
pub fn compile_specs(service: &Service, slices: &[&EndpointSlice], node: &NodeIdentity) -> CompiledSpecs {
    let namespace = namespace_of(&service.metadata);
    let name = name_of(&service.metadata);
    let mut out = Compiler { id: format!("{namespace}/{name}"), specs: Vec::new(), warnings: Vec::new() };
    out.service(service, namespace, name, slices, node);
    CompiledSpecs { specs: out.specs, warnings: out.warnings }
}

struct Compiler {
    /// `namespace/name`, for warnings and table names.
    id: String,
    specs: Vec<ServiceSpec>,
    warnings: Vec<String>,
}

/// One endpoint of one slice, parsed.
#[derive(Clone, Copy)]
struct Endpoint {
    addr: Addr,
    state: BackendState,
    local: bool,
}

/// One EndpointSlice, parsed once for all of the Service's ports.
struct ParsedSlice<'a> {
    family: Family,
    /// (name, protocol, port) of each usable slice port.
    ports: Vec<(&'a str, u8, u16)>,
    endpoints: Vec<Endpoint>,
}

/// An endpoint merged across slices, keyed by (address, port).
#[derive(Clone, Copy)]
struct Merged {
    state: BackendState,
    local: bool,
}

fn state_rank(s: BackendState) -> u8 {
    match s {
        BackendState::Ready => 0,
        BackendState::Terminating => 1,
        BackendState::NotReady => 2,
    }
}

impl Compiler {
    fn warn(&mut self, field: &str, problem: impl fmt::Display) {
        self.warnings.push(format!("service {}: {field}: {problem}", self.id));
    }

    fn service(
        &mut self,
        service: &Service,
        namespace: &str,
        name: &str,
        slices: &[&EndpointSlice],
        node: &NodeIdentity,
    ) {
        if name.is_empty() {
            self.warn("metadata.name", "is missing; the Service is skipped");
            return;
        }
        let Some(spec) = service.spec.as_ref() else {
            self.warn("spec", "is missing; the Service is skipped");
            return;
        };
        let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
        match type_ {
            "ExternalName" => return,
            "ClusterIP" | "NodePort" | "LoadBalancer" => {}
            other => self.warn("spec.type", format_args!("{other:?} is not a known type; taken as ClusterIP")),
        }
        let node_port_type = matches!(type_, "NodePort" | "LoadBalancer");

        // Cluster IPs: one per family.
        let raw: Vec<(String, &str)> = match spec.cluster_ips.as_ref().filter(|ips| !ips.is_empty()) {
            Some(ips) => ips.iter().enumerate().map(|(i, ip)| (format!("spec.clusterIPs[{i}]"), ip.as_str())).collect(),
            None => spec.cluster_ip.iter().map(|ip| ("spec.clusterIP".to_string(), ip.as_str())).collect(),
        };
        match raw.first() {
            Some((_, "None")) => return, // headless: DNS only
            None | Some((_, "")) => {
                self.warn("spec.clusterIP", "is not set; the Service is not proxied");
                return;
            }
            Some(_) => {}
        }
        let mut cluster_ips: Vec<Addr> = Vec::new();
        for (field, text) in &raw {
            let Some(addr) = self.parse_ip(field, text) else { continue };
            if cluster_ips.iter().any(|a| Family::of(a) == Family::of(&addr)) {
                self.warn(field, format_args!("a second {} cluster IP; ignored", Family::of(&addr)));
                continue;
            }
            cluster_ips.push(addr);
        }
        if cluster_ips.is_empty() {
            return;
        }
        let families: Vec<Family> = cluster_ips.iter().map(Family::of).collect();
        if let Some(declared) = spec.ip_families.as_ref().filter(|f| !f.is_empty()) {
            for (i, f) in declared.iter().enumerate() {
                match Family::parse(f) {
                    None => self.warn(&format!("spec.ipFamilies[{i}]"), format_args!("{f:?} is not IPv4 or IPv6")),
                    Some(f) if !families.contains(&f) => self.warn(
                        &format!("spec.ipFamilies[{i}]"),
                        format_args!("{f} has no cluster IP; the family is not proxied"),
                    ),
                    Some(_) => {}
                }
            }
        }

        let internal_local = self.policy("spec.internalTrafficPolicy", spec.internal_traffic_policy.as_deref());
        let external_local = self.policy("spec.externalTrafficPolicy", spec.external_traffic_policy.as_deref());
        let affinity_timeout_s = self.affinity(spec);

        // External addresses, each of a family the Service has.
        let mut external: Vec<Addr> = Vec::new();
        for (i, text) in spec.external_ips.iter().flatten().enumerate() {
            let field = format!("spec.externalIPs[{i}]");
            if let Some(addr) = self.parse_ip(&field, text) {
                self.push_if_family(&mut external, addr, &families, &field);
            }
        }
        let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
        let mut lb_ips: Vec<Addr> = Vec::new();
        for (i, ing) in ingress.into_iter().flatten().enumerate() {
            let Some(text) = ing.ip.as_deref().filter(|ip| !ip.is_empty()) else { continue }; // hostname only
            if ing.ip_mode.as_deref().is_some_and(|m| m != "VIP") {
                continue; // ipMode Proxy: the load balancer proxies to the nodes; not a VIP here
            }
            let field = format!("status.loadBalancer.ingress[{i}].ip");
            if let Some(addr) = self.parse_ip(&field, text) {
                self.push_if_family(&mut lb_ips, addr, &families, &field);
            }
        }
        if spec.load_balancer_source_ranges.as_ref().is_some_and(|r| !r.is_empty()) {
            self.warn("spec.loadBalancerSourceRanges", "is not enforced by Switchyard");
        }
        let mut node_addrs: Vec<Addr> = Vec::new();
        for ip in &node.addresses {
            let addr = Addr::from(*ip);
            if !node_addrs.contains(&addr) && families.contains(&Family::of(&addr)) {
                node_addrs.push(addr);
            }
        }

        let parsed = self.parse_slices(namespace, name, slices, node);
        let mut seen: HashSet<ServiceKey> = HashSet::new();
        let ports = spec.ports.as_deref().unwrap_or(&[]);
        for (i, port) in ports.iter().enumerate() {
            let field = format!("spec.ports[{i}]");
            let Some(protocol) = parse_protocol(port.protocol.as_deref()) else {
                self.warn(
                    &format!("{field}.protocol"),
                    format_args!("{:?} is not TCP, UDP or SCTP; the port is skipped", port.protocol.as_deref()),
                );
                continue;
            };
            let Some(vport) = valid_port(port.port) else {
                self.warn(&format!("{field}.port"), format_args!("{} is not a port number; skipped", port.port));
                continue;
            };
            let node_port = match port.node_port {
                None | Some(0) => None,
                Some(np) if !node_port_type => {
                    self.warn(&format!("{field}.nodePort"), format_args!("{np} is set on a {type_} Service; ignored"));
                    None
                }
                Some(np) => match valid_port(np) {
                    Some(p) => Some(p),
                    None => {
                        self.warn(&format!("{field}.nodePort"), format_args!("{np} is out of range; skipped"));
                        None
                    }
                },
            };
            let port_name = port.name.as_deref().unwrap_or("");
            let table_name = if port_name.is_empty() { self.id.clone() } else { format!("{}:{port_name}", self.id) };

            for (&family, &cluster_ip) in families.iter().zip(&cluster_ips) {
                let merged = merge_endpoints(&parsed, family, port_name, protocol);
                let all = || backends(&merged, false);
                let local = || backends(&merged, true);
                let cluster = if internal_local { local() } else { all() };
                let outside = if external_local { local() } else { all() };
                let mut keys: Vec<(ServiceKey, &Vec<Backend>)> = Vec::new();
                keys.push((ServiceKey { vip: cluster_ip, port: vport, proto: protocol }, &cluster));
                if let Some(np) = node_port {
                    for addr in node_addrs.iter().filter(|a| Family::of(a) == family) {
                        keys.push((ServiceKey { vip: *addr, port: np, proto: protocol }, &outside));
                    }
                }
                for addr in external.iter().chain(&lb_ips).filter(|a| Family::of(a) == family) {
                    keys.push((ServiceKey { vip: *addr, port: vport, proto: protocol }, &outside));
                }
                for (key, backends) in keys {
                    if !seen.insert(key) {
                        self.warn(&field, format_args!("{key} is claimed twice by this Service; the first wins"));
                        continue;
                    }
                    self.specs.push(ServiceSpec {
                        name: table_name.clone(),
                        key,
                        backends: backends.clone(),
                        affinity_timeout_s,
                    });
                }
            }
        }
    }

    fn parse_ip(&mut self, field: &str, text: &str) -> Option<Addr> {
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip.into()),
            Err(_) => {
                self.warn(field, format_args!("{text:?} is not an IP address; skipped"));
                None
            }
        }
    }

    fn push_if_family(&mut self, into: &mut Vec<Addr>, addr: Addr, families: &[Family], field: &str) {
        if !families.contains(&Family::of(&addr)) {
            self.warn(
                field,
                format_args!("{addr} is {} but the Service has no such cluster IP; skipped", Family::of(&addr)),
            );
        } else if !into.contains(&addr) {
            into.push(addr);
        }
    }

    /// Whether a traffic policy is Local.
    fn policy(&mut self, field: &str, value: Option<&str>) -> bool {
        match value {
            None | Some("Cluster") => false,
            Some("Local") => true,
            Some(other) => {
                self.warn(field, format_args!("{other:?} is not Cluster or Local; taken as Cluster"));
                false
            }
        }
    }

    fn affinity(&mut self, spec: &k8s_openapi::api::core::v1::ServiceSpec) -> u32 {
        match spec.session_affinity.as_deref() {
            None | Some("None") => return 0,
            Some("ClientIP") => {}
            Some(other) => {
                self.warn("spec.sessionAffinity", format_args!("{other:?} is not None or ClientIP; taken as None"));
                return 0;
            }
        }
        let timeout =
            spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds);
        match timeout {
            None => DEFAULT_AFFINITY_TIMEOUT_S,
            Some(t) if (1..=MAX_AFFINITY_TIMEOUT_S as i32).contains(&t) => t as u32,
            Some(t) => {
                self.warn(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    format_args!(
                        "{t} is not within 1..={MAX_AFFINITY_TIMEOUT_S}; {DEFAULT_AFFINITY_TIMEOUT_S} is used"
                    ),
                );
                DEFAULT_AFFINITY_TIMEOUT_S
            }
        }
    }

    /// The slices of this Service (others are ignored), in name order so
    /// that the result does not depend on the order they came in.
    fn parse_slices<'a>(
        &mut self,
        namespace: &str,
        name: &str,
        slices: &[&'a EndpointSlice],
        node: &NodeIdentity,
    ) -> Vec<ParsedSlice<'a>> {
        let mut mine: Vec<&'a EndpointSlice> =
            slices.iter().copied().filter(|s| slice_owner(s) == Some((namespace, name))).collect();
        mine.sort_by(|a, b| name_of(&a.metadata).cmp(name_of(&b.metadata)));
        let mut parsed = Vec::with_capacity(mine.len());
        for slice in mine {
            let at = format!("endpointslice {}", name_of(&slice.metadata));
            let family = match slice.address_type.as_str() {
                "FQDN" => continue,
                t => match Family::parse(t) {
                    Some(f) => f,
                    None => {
                        self.warn(&format!("{at}.addressType"), format_args!("{t:?} is not IPv4, IPv6 or FQDN"));
                        continue;
                    }
                },
            };
            let mut ports = Vec::new();
            for (i, p) in slice.ports.iter().flatten().enumerate() {
                let field = || format!("{at}.ports[{i}]");
                let Some(protocol) = parse_protocol(p.protocol.as_deref()) else {
                    self.warn(&field(), format_args!("protocol {:?} is not TCP, UDP or SCTP", p.protocol.as_deref()));
                    continue;
                };
                let Some(port) = p.port.and_then(valid_port) else {
                    self.warn(&field(), format_args!("port {:?} is not a port number", p.port));
                    continue;
                };
                ports.push((p.name.as_deref().unwrap_or(""), protocol, port));
            }
            let mut endpoints = Vec::with_capacity(slice.endpoints.len());
            for (i, ep) in slice.endpoints.iter().enumerate() {
                let Some(first) = ep.addresses.first() else { continue }; // kube-proxy uses only the first
                let field = format!("{at}.endpoints[{i}].addresses[0]");
                let Some(addr) = self.parse_ip(&field, first) else { continue };
                if Family::of(&addr) != family {
                    self.warn(&field, format_args!("{addr} is not {family} as the slice's addressType; skipped"));
                    continue;
                }
                let local = !node.name.is_empty() && ep.node_name.as_deref() == Some(node.name.as_str());
                endpoints.push(Endpoint { addr, state: backend_state(ep.conditions.as_ref()), local });
            }
            parsed.push(ParsedSlice { family, ports, endpoints });
        }
        parsed
    }
}

fn valid_port(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|&p| p != 0)
}

/// The endpoints of `family` for the Service port (`name`, `protocol`),
/// deduplicated by (address, port) across slices: the best state and
/// "local" win.
fn merge_endpoints(
    slices: &[ParsedSlice<'_>],
    family: Family,
    name: &str,
    protocol: u8,
) -> BTreeMap<(Addr, u16), Merged> {
    let mut merged: BTreeMap<(Addr, u16), Merged> = BTreeMap::new();
    for slice in slices.iter().filter(|s| s.family == family) {
        let Some(&(_, _, port)) = slice.ports.iter().find(|(n, p, _)| *n == name && *p == protocol) else { continue };
        for ep in &slice.endpoints {
            merged
                .entry((ep.addr, port))
                .and_modify(|m| {
                    if state_rank(ep.state) < state_rank(m.state) {
                        m.state = ep.state;
                    }
                    m.local |= ep.local;
                })
                .or_insert(Merged { state: ep.state, local: ep.local });
        }
    }
    merged
}

fn backends(merged: &BTreeMap<(Addr, u16), Merged>, local_only: bool) -> Vec<Backend> {
    merged
        .iter()
        .filter(|(_, m)| !local_only || m.local)
        .map(|(&(addr, port), m)| Backend { addr, port, weight: 1, state: m.state })
        .collect()
}
