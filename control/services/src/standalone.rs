//! Standalone mode: no API server. Services come from manifest files and
//! their endpoints from the pods this node runs, computed as the
//! EndpointSlice controller would compute them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodStatus, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;

use super::compile::{name_of, namespace_of, Family, SERVICE_NAME_LABEL};
use dataplane::hash::hash_hex;

/// The EndpointSlice label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// Our value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "switchyard.standalone";

/// As the EndpointSlice controller's default maxEndpointsPerSlice.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A container port of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPort {
    pub name: Option<String>,
    pub port: i32,
    /// TCP, UDP or SCTP ("" is taken as TCP).
    pub protocol: String,
}

/// A pod running on this node, as endpoint computation needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalPod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The pod's IPs (status.podIPs), at most one per family; the first of
    /// each family is used.
    pub ips: Vec<IpAddr>,
    pub node_name: String,
    /// The pod's Ready condition.
    pub ready: bool,
    /// Being deleted (deletionTimestamp set / the agent is stopping it).
    pub terminating: bool,
    /// The ports of its containers (and of its restartable init containers,
    /// the sidecars).
    pub container_ports: Vec<PodPort>,
}

impl LocalPod {
    /// From a Pod and the status the agent reports for it. `None` when the
    /// pod is in a terminal phase (Succeeded, Failed): it is never an
    /// endpoint.
    pub fn from_pod(pod: &Pod, status: &PodStatus, terminating: bool) -> Option<LocalPod> {
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
        for text in status.pod_ip.as_deref().into_iter().chain(listed) {
            if let Ok(ip) = text.parse::<IpAddr>() {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
        let spec = pod.spec.as_ref();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let containers = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]).iter().chain(sidecars);
        let container_ports = containers
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| PodPort {
                name: p.name.clone(),
                port: p.container_port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
            .collect();
        Some(LocalPod {
            namespace: namespace_of(&pod.metadata).to_string(),
            name: name_of(&pod.metadata).to_string(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ips,
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            ready,
            terminating: terminating || pod.metadata.deletion_timestamp.is_some(),
            container_ports,
        })
    }
}

/// The EndpointSlices the EndpointSlice controller would make for `service`
/// from `pods`: pods of the Service's namespace that match all of its
/// selector (no selector: none; the user then writes slices by hand), one
/// endpoint per pod and address family, each service port's targetPort
/// resolved per pod. Endpoints with the same resolved ports share slices of
/// at most [`MAX_ENDPOINTS_PER_SLICE`]; slices are named stably from their
/// family and ports.
pub fn endpoint_slices(service: &Service, pods: &[LocalPod]) -> Vec<EndpointSlice> {
    let Some(spec) = service.spec.as_ref() else { return Vec::new() };
    let selector = match spec.selector.as_ref() {
        Some(s) if !s.is_empty() => s,
        _ => return Vec::new(),
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let namespace = namespace_of(&service.metadata);
    let name = name_of(&service.metadata);
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.as_deref().unwrap_or(&[]);

    let mut selected: Vec<&LocalPod> = pods
        .iter()
        .filter(|p| p.namespace == namespace && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
        .collect();
    selected.sort_by(|a, b| a.name.cmp(&b.name));

    // (family, ports) → endpoints, as the controller groups them.
    let mut groups: BTreeMap<(Family, Vec<PortKey>), Vec<Endpoint>> = BTreeMap::new();
    for family in address_families(service) {
        for pod in &selected {
            let Some(ip) = pod.ips.iter().find(|ip| Family::of_ip(ip) == family) else { continue };
            let resolved: Vec<PortKey> = ports.iter().filter_map(|sp| resolve_port(sp, pod)).collect();
            groups.entry((family, resolved)).or_default().push(pod_endpoint(pod, *ip, publish_not_ready));
        }
    }

    let mut slices = Vec::new();
    for ((family, ports), endpoints) in groups {
        let port_text: Vec<String> = ports.iter().map(|p| format!("{}/{}/{}", p.name, p.protocol, p.port)).collect();
        let tag = &hash_hex(port_text.join(",").as_bytes())[..8];
        let family_tag = if family == Family::V4 { "v4" } else { "v6" };
        let chunks = endpoints.len().div_ceil(MAX_ENDPOINTS_PER_SLICE);
        for (i, chunk) in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE).enumerate() {
            let suffix = if chunks > 1 { format!("-{i}") } else { String::new() };
            let labels = BTreeMap::from([
                (SERVICE_NAME_LABEL.to_string(), name.to_string()),
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
            ]);
            slices.push(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-{family_tag}-{tag}{suffix}")),
                    namespace: Some(namespace.to_string()),
                    labels: Some(labels),
                    ..Default::default()
                },
                address_type: family.as_str().to_string(),
                endpoints: chunk.to_vec(),
                ports: Some(
                    ports
                        .iter()
                        .map(|p| EndpointPort {
                            name: Some(p.name.clone()),
                            port: Some(p.port),
                            protocol: Some(p.protocol.clone()),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect(),
                ),
            });
        }
    }
    slices
}

/// A Service port resolved for one pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: String,
    protocol: String,
    port: i32,
    app_protocol: Option<String>,
}

/// The address types the controller makes slices for: spec.ipFamilies, else
/// the cluster IP's family, else (headless) both.
fn address_families(service: &Service) -> BTreeSet<Family> {
    let spec = service.spec.as_ref();
    let declared: BTreeSet<Family> =
        spec.and_then(|s| s.ip_families.as_ref()).into_iter().flatten().filter_map(|f| Family::parse(f)).collect();
    if !declared.is_empty() {
        return declared;
    }
    let cluster = spec.and_then(|s| s.cluster_ips.as_ref().and_then(|ips| ips.first()).or(s.cluster_ip.as_ref()));
    match cluster.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(ip) => BTreeSet::from([Family::of_ip(&ip)]),
        None => BTreeSet::from([Family::V4, Family::V6]),
    }
}

/// FindPort: a numeric targetPort as is; a named one by the pod's container
/// port of that name and the Service port's protocol; unset = the port.
fn resolve_port(sp: &ServicePort, pod: &LocalPod) -> Option<PortKey> {
    let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
    let port = match &sp.target_port {
        None => sp.port,
        Some(IntOrString::Int(n)) => *n,
        // A string of digits is a number (the API would have made it one).
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => {
                pod.container_ports
                    .iter()
                    .find(|cp| {
                        cp.name.as_deref() == Some(s.as_str())
                            && (cp.protocol.as_str() == protocol || (cp.protocol.is_empty() && protocol == "TCP"))
                    })?
                    .port
            }
        },
    };
    (1..=65535).contains(&port).then(|| PortKey {
        name: sp.name.clone().unwrap_or_default(),
        protocol,
        port,
        app_protocol: sp.app_protocol.clone(),
    })
}

fn pod_endpoint(pod: &LocalPod, ip: IpAddr, publish_not_ready: bool) -> Endpoint {
    let serving = pod.ready;
    let terminating = pod.terminating;
    // As the controller: never ready while terminating, unless
    // publishNotReadyAddresses.
    let ready = publish_not_ready || (serving && !terminating);
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        node_name: (!pod.node_name.is_empty()).then(|| pod.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(pod.namespace.clone()),
            name: Some(pod.name.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Reads the Services in a directory of manifests (YAML or JSON, several
/// documents per file allowed, `kind: Service`, `ServiceList` or a `List` of
/// Services). Documents of other kinds are ignored: the same directory holds
/// the static pods. Returns the Services (namespace defaulted to "default")
/// and, for each problem, the file and the reason. Without an API server
/// there is no IP allocator: a Service must carry its clusterIP (or be
/// headless or ExternalName). Two files defining one Service: the first (by
/// file name) wins.
pub fn read_services_dir(dir: &Path) -> (Vec<Service>, Vec<(PathBuf, String)>) {
    let mut services = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (services, errors),
        Err(e) => {
            errors.push((dir.to_path_buf(), format!("cannot read the directory: {e}")));
            return (services, errors);
        }
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let is_manifest = [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext));
        if name.starts_with('.') || !is_manifest || !file.is_file() {
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push((file, format!("cannot read: {e}")));
                continue;
            }
        };
        let (found, problems) = parse_services(&text);
        errors.extend(problems.into_iter().map(|p| (file.clone(), p)));
        for service in found {
            let full = format!("{}/{}", namespace_of(&service.metadata), name_of(&service.metadata));
            if let Some(first) = seen.get(&full) {
                errors.push((file.clone(), format!("service {full} is already defined in {}", first.display())));
                continue;
            }
            seen.insert(full, file.clone());
            services.push(service);
        }
    }
    (services, errors)
}

/// The Services in one manifest's text, and what was wrong with the rest.
pub fn parse_services(text: &str) -> (Vec<Service>, Vec<String>) {
    let mut services = Vec::new();
    let mut problems = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("document {}: not YAML or JSON: {e}", i + 1));
                break; // the stream cannot be followed past a syntax error
            }
        };
        let items: Vec<serde_yaml::Value> = match value.get("kind").and_then(|k| k.as_str()) {
            Some("Service") => vec![value],
            Some("ServiceList") => value.get("items").and_then(|v| v.as_sequence()).cloned().unwrap_or_default(),
            Some("List") => value
                .get("items")
                .and_then(|v| v.as_sequence())
                .into_iter()
                .flatten()
                .filter(|item| item.get("kind").and_then(|k| k.as_str()) == Some("Service"))
                .cloned()
                .collect(),
            _ => continue, // Pods and everything else: not ours
        };
        for item in items {
            match serde_yaml::from_value::<Service>(item) {
                Ok(service) => match check_standalone(service) {
                    Ok(service) => services.push(service),
                    Err(reason) => problems.push(format!("document {}: {reason}", i + 1)),
                },
                Err(e) => problems.push(format!("document {}: not a valid Service: {e}", i + 1)),
            }
        }
    }
    (services, problems)
}

fn check_standalone(mut service: Service) -> Result<Service, String> {
    let name = name_of(&service.metadata).to_string();
    if name.is_empty() {
        return Err("a Service has no metadata.name".into());
    }
    let namespace = namespace_of(&service.metadata).to_string();
    service.metadata.namespace = Some(namespace.clone());
    let spec = service.spec.as_ref();
    let external_name = spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    let has_ip = spec.is_some_and(|s| {
        s.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.cluster_ips.as_ref().and_then(|ips| ips.first()).is_some_and(|ip| !ip.is_empty())
    });
    if !external_name && !has_ip {
        return Err(format!(
            "service {namespace}/{name} has no spec.clusterIP (standalone mode has no allocator: write one, or \
             \"None\" for a headless Service); skipped"
        ));
    }
    Ok(service)
}
