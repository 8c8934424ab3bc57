//! Translating a pod into what the container runtime is asked for: the
//! sandbox config and one config per container, as kubelet does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Container;

use super::pod::DesiredPod;
use node::quantity::Quantity;

/// Labels that mark what the agent made, so that it can find and adopt it
/// after a restart. The `io.kubernetes.*` keys are kubelet's, which tools
/// such as crictl show.
pub mod labels {
    pub const MANAGED: &str = "switchyard.io/managed";
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
    /// Annotation: "true" on init containers.
    pub const INIT: &str = "switchyard.io/init-container";
}

/// What the node contributes to every pod's runtime config.
#[derive(Clone, Debug)]
pub struct NodeContext {
    pub node_name: String,
    pub node_ip: Option<String>,
    /// Pod logs and emptyDir volumes live under here.
    pub root: PathBuf,
    /// Parent cgroup of every pod (cgroupfs driver).
    pub cgroup_root: String,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// nameserver/search/options of the host, for dnsPolicy Default.
    pub host_dns: cri::DnsConfig,
}

impl NodeContext {
    pub fn log_dir(&self, pod: &DesiredPod) -> PathBuf {
        self.root.join("logs").join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid))
    }

    pub fn volume_dir(&self, pod: &DesiredPod, volume: &str) -> PathBuf {
        self.root.join("pods").join(&pod.uid).join("volumes").join(volume)
    }

    pub fn pod_dir(&self, pod: &DesiredPod) -> PathBuf {
        self.root.join("pods").join(&pod.uid)
    }
}

/// Reads nameserver, search and options lines of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> cri::DnsConfig {
    let mut dns = cri::DnsConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(String::from)),
            Some("search") | Some("domain") => dns.searches = words.map(String::from).collect(),
            Some("options") => dns.options.extend(words.map(String::from)),
            _ => {}
        }
    }
    dns
}

fn pod_labels(pod: &DesiredPod) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = pod.pod.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    l.insert(labels::MANAGED.into(), "true".into());
    l.insert(labels::POD_UID.into(), pod.uid.clone());
    l.insert(labels::POD_NAME.into(), pod.name.clone());
    l.insert(labels::POD_NAMESPACE.into(), pod.namespace.clone());
    l
}

fn dns_config(pod: &DesiredPod, node: &NodeContext) -> cri::DnsConfig {
    let spec = pod.spec();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirst" => !pod.host_network(),
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut dns = if policy == "None" {
        cri::DnsConfig::default()
    } else if cluster_first && !node.cluster_dns.is_empty() {
        let d = &node.cluster_domain;
        cri::DnsConfig {
            servers: node.cluster_dns.clone(),
            searches: vec![format!("{}.svc.{d}", pod.namespace), format!("svc.{d}"), d.clone()],
            options: vec!["ndots:5".into()],
        }
    } else {
        node.host_dns.clone()
    };
    if let Some(extra) = &spec.dns_config {
        dns.servers.extend(extra.nameservers.iter().flatten().cloned());
        dns.searches.extend(extra.searches.iter().flatten().cloned());
        for o in extra.options.iter().flatten() {
            if let Some(name) = &o.name {
                dns.options.push(match &o.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name.clone(),
                });
            }
        }
    }
    dns
}

/// The sandbox for attempt `attempt` of the pod.
pub fn sandbox_config(pod: &DesiredPod, attempt: u32, node: &NodeContext) -> cri::PodSandboxConfig {
    let spec = pod.spec();
    let mut hostname = spec.hostname.clone().unwrap_or_else(|| pod.name.clone());
    hostname.truncate(63);
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = p.host_port.filter(|h| *h > 0)?;
            Some(cri::PortMapping {
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => cri::Protocol::Udp as i32,
                    Some("SCTP") => cri::Protocol::Sctp as i32,
                    _ => cri::Protocol::Tcp as i32,
                },
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect();
    let network = if pod.host_network() { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod };
    let privileged =
        spec.containers.iter().any(|c| c.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false));
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            attempt,
        }),
        hostname: if pod.host_network() { String::new() } else { hostname },
        log_directory: node.log_dir(pod).display().to_string(),
        dns_config: Some(dns_config(pod, node)),
        port_mappings,
        labels: pod_labels(pod),
        annotations: pod.pod.metadata.annotations.clone().unwrap_or_default().into_iter().collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/pod{}", node.cgroup_root.trim_end_matches('/'), pod.uid),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption { network: network as i32, ..Default::default() }),
                privileged,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A `fieldRef` that is not in the pod's metadata: the node's and the
/// sandbox's values (the downward API's `spec.*` and `status.*` fields).
pub fn pod_field(path: &str, pod: &DesiredPod, pod_ip: &str, node: &NodeContext) -> Option<String> {
    Some(match path {
        "spec.nodeName" => node.node_name.clone(),
        "spec.serviceAccountName" => pod.spec().service_account_name.clone().unwrap_or_default(),
        "status.podIP" => pod_ip.to_string(),
        "status.hostIP" => node.node_ip.clone().unwrap_or_default(),
        _ => return None,
    })
}

/// CPU and memory requests and limits as Linux resources (cgroupfs).
fn linux_resources(c: &Container) -> cri::LinuxContainerResources {
    const PERIOD: i64 = 100_000;
    let get =
        |list: &Option<std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         name: &str| { list.as_ref().and_then(|l| l.get(name)).and_then(|q| Quantity::parse(&q.0).ok()) };
    let r = c.resources.clone().unwrap_or_default();
    let cpu_request = get(&r.requests, "cpu").or_else(|| get(&r.limits, "cpu"));
    let mut res = cri::LinuxContainerResources {
        // kubelet: shares = milliCPU × 1024 / 1000, at least 2.
        cpu_shares: cpu_request.map(|q| (q.as_milli() * 1024 / 1000).max(2) as i64).unwrap_or(2),
        ..Default::default()
    };
    if let Some(limit) = get(&r.limits, "cpu") {
        res.cpu_period = PERIOD;
        res.cpu_quota = ((limit.as_milli() * i128::from(PERIOD)) / 1000).max(1000) as i64;
    }
    if let Some(limit) = get(&r.limits, "memory") {
        res.memory_limit_in_bytes = limit.as_value().clamp(0, i128::from(i64::MAX)) as i64;
    }
    res
}

/// The config for attempt `attempt` of container `c`, with its environment
/// resolved (`volumes::projection::resolve_env`).
pub fn container_config(
    pod: &DesiredPod,
    c: &Container,
    attempt: u32,
    init: bool,
    env: Vec<(String, String)>,
    node: &NodeContext,
) -> cri::ContainerConfig {
    let mut labels = pod_labels(pod);
    labels.insert(labels::CONTAINER_NAME.into(), c.name.clone());
    let mut annotations: HashMap<String, String> = HashMap::new();
    annotations.insert("io.kubernetes.container.restartCount".into(), attempt.to_string());
    if init {
        annotations.insert(labels::INIT.into(), "true".into());
    }
    let volumes = pod.spec().volumes.clone().unwrap_or_default();
    let mounts = c
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let v = volumes.iter().find(|v| v.name == m.name)?;
            let mut host: PathBuf = match &v.host_path {
                Some(h) => PathBuf::from(&h.path),
                None => node.volume_dir(pod, &v.name),
            };
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                host = host.join(sub);
            }
            Some(cri::Mount {
                container_path: m.mount_path.clone(),
                host_path: host.display().to_string(),
                // What the agent fills from the cluster is read-only, as
                // the kubelet mounts it.
                readonly: m.read_only.unwrap_or(false) || crate::volumes::is_projected(v),
                ..Default::default()
            })
        })
        .collect();
    let security = c.security_context.clone().unwrap_or_default();
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: c.name.clone(), attempt }),
        image: Some(cri::ImageSpec { image: c.image.clone().unwrap_or_default(), ..Default::default() }),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: env.into_iter().map(|(key, value)| cri::KeyValue { key, value }).collect(),
        mounts,
        labels,
        annotations,
        log_path: Path::new(&c.name).join(format!("{attempt}.log")).display().to_string(),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(c)),
            security_context: Some(cri::LinuxContainerSecurityContext {
                privileged: security.privileged.unwrap_or(false),
                run_as_user: security.run_as_user.map(|value| cri::Int64Value { value }),
                namespace_options: Some(cri::NamespaceOption {
                    network: if pod.host_network() { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod } as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::PodSource;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(yaml: &str) -> DesiredPod {
        let pod: Pod = serde_yaml::from_str(yaml).unwrap();
        DesiredPod::new(pod, PodSource::Api).unwrap()
    }

    fn node() -> NodeContext {
        NodeContext {
            node_name: "node-a".into(),
            node_ip: Some("192.0.2.10".into()),
            root: "/var/lib/switchyard".into(),
            cgroup_root: "/switchyard".into(),
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            host_dns: parse_resolv_conf("nameserver 1.1.1.1\nsearch example.org\n"),
        }
    }

    const POD: &str = r#"
metadata: {name: web, namespace: shop, uid: u-1, labels: {app: web}}
spec:
  containers:
  - name: httpd
    image: switchyard.local/busybox:1
    command: [httpd]
    args: ["-f", "-p", "8080"]
    env:
    - {name: GREETING, value: hello}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    ports: [{containerPort: 8080, hostPort: 18080}]
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: "1", memory: 128Mi}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
"#;

    #[test]
    fn sandbox_carries_identity_dns_ports_and_labels() {
        let p = pod(POD);
        let s = sandbox_config(&p, 2, &node());
        let m = s.metadata.clone().unwrap();
        assert_eq!((m.name.as_str(), m.namespace.as_str(), m.uid.as_str(), m.attempt), ("web", "shop", "u-1", 2));
        assert_eq!(s.labels[labels::POD_UID], "u-1");
        assert_eq!(s.labels["app"], "web");
        let dns = s.dns_config.unwrap();
        assert_eq!(dns.servers, vec!["10.96.0.10"]);
        assert_eq!(dns.searches[0], "shop.svc.cluster.local");
        assert_eq!(s.port_mappings[0].host_port, 18080);
        assert_eq!(s.linux.unwrap().cgroup_parent, "/switchyard/podu-1");
    }

    #[test]
    fn container_gets_env_mounts_and_resources() {
        let p = pod(POD);
        let c = &p.spec().containers[0];
        let env = vec![("GREETING".to_string(), "hello".to_string())];
        let cfg = container_config(&p, c, 3, false, env, &node());
        let env: HashMap<_, _> = cfg.envs.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
        assert_eq!(env["GREETING"], "hello");
        assert_eq!(pod_field("status.podIP", &p, "10.244.1.5", &node()).as_deref(), Some("10.244.1.5"));
        assert_eq!(pod_field("spec.nodeName", &p, "", &node()).as_deref(), Some(node().node_name.as_str()));
        assert_eq!(cfg.command, vec!["httpd"]);
        assert_eq!(cfg.mounts[0].host_path, "/var/lib/switchyard/pods/u-1/volumes/data");
        let r = cfg.linux.unwrap().resources.unwrap();
        assert_eq!(r.cpu_shares, 256);
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 100_000));
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(cfg.log_path, "httpd/3.log");
        assert_eq!(cfg.metadata.unwrap().attempt, 3);
    }

    #[test]
    fn host_dns_for_default_policy_and_host_network() {
        let mut p = pod(POD);
        p.pod.spec.as_mut().unwrap().dns_policy = Some("Default".into());
        assert_eq!(sandbox_config(&p, 0, &node()).dns_config.unwrap().servers, vec!["1.1.1.1"]);
    }
}
