//! A pod this node should run, checked once when it arrives so that the pod
//! worker never meets an invalid spec.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe};

use node::quantity::Quantity;

/// Where a desired pod came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodSource {
    /// A manifest file (a static pod).
    Static { file: PathBuf },
    /// Bound to this node through the API server (the API source is the
    /// Kubernetes API issue's; until then only static pods exist).
    #[allow(dead_code)]
    Api,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// A validated pod.
#[derive(Clone, Debug)]
pub struct DesiredPod {
    pub pod: Pod,
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub source: PodSource,
    pub restart_policy: RestartPolicy,
}

impl DesiredPod {
    /// Checks everything the pod worker relies on; the error says what is
    /// wrong in the words of the Pod's fields.
    pub fn new(pod: Pod, source: PodSource) -> Result<DesiredPod, String> {
        let name = pod.metadata.name.clone().filter(|n| !n.is_empty()).ok_or("metadata.name is missing")?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let uid = pod.metadata.uid.clone().filter(|u| !u.is_empty()).ok_or("metadata.uid is missing")?;
        let spec = pod.spec.as_ref().ok_or("spec is missing")?;
        let restart_policy = match spec.restart_policy.as_deref() {
            None | Some("Always") => RestartPolicy::Always,
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            Some(other) => return Err(format!("spec.restartPolicy {other:?} is not Always, OnFailure or Never")),
        };
        validate_spec(spec)?;
        Ok(DesiredPod { pod, uid, name, namespace, source, restart_policy })
    }

    pub fn spec(&self) -> &PodSpec {
        // Checked in `new`.
        static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
        self.pod.spec.as_ref().unwrap_or_else(|| EMPTY.get_or_init(PodSpec::default))
    }

    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn source_file(&self) -> Option<PathBuf> {
        match &self.source {
            PodSource::Static { file } => Some(file.clone()),
            PodSource::Api => None,
        }
    }

    /// terminationGracePeriodSeconds, 30 s by default.
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(self.spec().termination_grace_period_seconds.unwrap_or(30).max(0) as u64)
    }

    pub fn host_network(&self) -> bool {
        self.spec().host_network.unwrap_or(false)
    }

    /// Whether the pod's containers (not its identity) changed: the worker
    /// restarts the pod when they did.
    pub fn same_spec(&self, other: &DesiredPod) -> bool {
        self.pod.spec == other.pod.spec
    }
}

fn validate_spec(spec: &PodSpec) -> Result<(), String> {
    if spec.containers.is_empty() {
        return Err("spec.containers is empty".into());
    }
    let volumes: HashSet<&str> = spec.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    for v in spec.volumes.iter().flatten() {
        if v.empty_dir.is_none() && v.host_path.is_none() && !crate::volumes::is_projected(v) {
            return Err(format!(
                "volume {:?}: only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported",
                v.name
            ));
        }
    }
    let mut names = HashSet::new();
    let init = spec.init_containers.iter().flatten().map(|c| ("spec.initContainers", c));
    for (field, c) in init.chain(spec.containers.iter().map(|c| ("spec.containers", c))) {
        let at = format!("{field}[{}]", c.name);
        if c.name.is_empty() {
            return Err(format!("{field}: a container has no name"));
        }
        if !names.insert(c.name.as_str()) {
            return Err(format!("{at}: the name is used twice"));
        }
        if c.image.as_deref().unwrap_or("").is_empty() {
            return Err(format!("{at}: image is missing"));
        }
        validate_resources(c).map_err(|e| format!("{at}.resources: {e}"))?;
        for m in c.volume_mounts.iter().flatten() {
            if !volumes.contains(m.name.as_str()) {
                return Err(format!("{at}: volumeMount {:?} names no volume of the pod", m.name));
            }
        }
        for (kind, probe) in [
            ("livenessProbe", &c.liveness_probe),
            ("readinessProbe", &c.readiness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                validate_probe(c, p).map_err(|e| format!("{at}.{kind}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn validate_resources(c: &Container) -> Result<(), String> {
    let Some(r) = &c.resources else { return Ok(()) };
    for (which, list) in [("requests", &r.requests), ("limits", &r.limits)] {
        for (name, q) in list.iter().flatten() {
            Quantity::parse(&q.0).map_err(|e| format!("{which}.{name}: {e}"))?;
        }
    }
    Ok(())
}

fn validate_probe(c: &Container, p: &Probe) -> Result<(), String> {
    let handlers = [p.exec.is_some(), p.http_get.is_some(), p.tcp_socket.is_some(), p.grpc.is_some()];
    match handlers.iter().filter(|h| **h).count() {
        0 => return Err("no handler (want exec, httpGet or tcpSocket)".into()),
        1 => {}
        _ => return Err("more than one handler".into()),
    }
    if p.grpc.is_some() {
        return Err("grpc probes are not supported (use exec, httpGet or tcpSocket)".into());
    }
    if let Some(exec) = &p.exec {
        if exec.command.as_ref().is_none_or(|c| c.is_empty()) {
            return Err("exec.command is empty".into());
        }
    }
    let port = p.http_get.as_ref().map(|h| &h.port).or(p.tcp_socket.as_ref().map(|t| &t.port));
    if let Some(port) = port {
        resolve_port(c, port)?;
    }
    Ok(())
}

/// A probe's port: a number, or the name of one of the container's ports.
pub fn resolve_port(
    c: &Container,
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> Result<u16, String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok().filter(|p| *p > 0).ok_or(format!("port {n} is out of range")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or(format!("port {name:?} names no port of the container")),
    }
}
