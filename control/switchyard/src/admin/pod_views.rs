//! Pods and the node as the CLI shows them (`switchyard pods`,
//! `switchyard node`).

use std::fmt::Write;

use k8s_openapi::api::core::v1::{ContainerStatus, NodeStatus};
use serde::{Deserialize, Serialize};

use agent::pod::PodSource;
use agent::worker::PodReport;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub state: String,
    pub reason: String,
    pub restarts: i32,
    pub ready: bool,
    pub id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub source: String,
    pub phase: String,
    pub ready: String,
    pub restarts: i32,
    pub ip: String,
    pub sandbox: String,
    pub containers: Vec<ContainerView>,
    pub error: Option<String>,
    pub terminating: bool,
}

fn container_view(s: &ContainerStatus) -> ContainerView {
    let state = s.state.clone().unwrap_or_default();
    let (state, reason) = if let Some(r) = &state.running {
        ("Running", r.started_at.as_ref().map(|t| format!("since {}", t.0)).unwrap_or_default())
    } else if let Some(t) = &state.terminated {
        ("Terminated", format!("{} (exit {})", t.reason.clone().unwrap_or_default(), t.exit_code))
    } else if let Some(w) = &state.waiting {
        ("Waiting", w.reason.clone().unwrap_or_default())
    } else {
        ("Unknown", String::new())
    };
    ContainerView {
        name: s.name.clone(),
        state: state.into(),
        reason,
        restarts: s.restart_count,
        ready: s.ready,
        id: s.container_id.clone().unwrap_or_default(),
    }
}

pub fn pod_view(r: &PodReport) -> PodView {
    let statuses = r.status.container_statuses.clone().unwrap_or_default();
    let ready = statuses.iter().filter(|s| s.ready).count();
    PodView {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        uid: r.uid.clone(),
        source: match &r.source {
            PodSource::Static { file } => format!("file:{}", file.display()),
            PodSource::Api => "api".into(),
        },
        phase: r.display_status(),
        ready: format!("{ready}/{}", statuses.len()),
        restarts: r.restarts(),
        ip: r.status.pod_ip.clone().unwrap_or_default(),
        sandbox: r.sandbox_id.clone().unwrap_or_default(),
        containers: statuses.iter().map(container_view).collect(),
        error: r.error.clone(),
        terminating: r.terminating,
    }
}

pub fn render_pods(pods: &[PodView], wide: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<32} {:>5} {:<18} {:>8} {:<15} SOURCE",
        "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "IP"
    );
    for p in pods {
        let _ = writeln!(
            out,
            "{:<14} {:<32} {:>5} {:<18} {:>8} {:<15} {}",
            p.namespace, p.name, p.ready, p.phase, p.restarts, p.ip, p.source
        );
        if wide {
            for c in &p.containers {
                let _ = writeln!(
                    out,
                    "    {:<20} {:<10} {:<32} restarts {:<4} ready {}",
                    c.name, c.state, c.reason, c.restarts, c.ready
                );
            }
        }
        if let Some(e) = &p.error {
            let _ = writeln!(out, "    error: {e}");
        }
    }
    out
}

#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct NodeView {
    pub name: String,
    pub status: Option<NodeStatus>,
    pub runtime_version: Option<String>,
    pub runtime_error: Option<String>,
    pub manifest_errors: Vec<String>,
}

pub fn render_node(n: &NodeView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Name:     {}", n.name);
    match (&n.runtime_version, &n.runtime_error) {
        (_, Some(e)) => {
            let _ = writeln!(out, "Runtime:  unreachable: {e}");
        }
        (Some(v), None) => {
            let _ = writeln!(out, "Runtime:  {v}");
        }
        _ => {}
    }
    let Some(status) = &n.status else {
        let _ = writeln!(out, "(no node status yet)");
        return out;
    };
    if let Some(info) = &status.node_info {
        let _ =
            writeln!(out, "Kernel:   {}   OS: {}   Arch: {}", info.kernel_version, info.os_image, info.architecture);
    }
    let _ = writeln!(out, "\nConditions:");
    let _ = writeln!(out, "  {:<16} {:<7} {:<32} {:<26} MESSAGE", "TYPE", "STATUS", "REASON", "SINCE");
    for c in status.conditions.iter().flatten() {
        let since = c.last_transition_time.as_ref().map(|t| t.0.to_rfc3339()).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<16} {:<7} {:<32} {:<26} {}",
            c.type_,
            c.status,
            c.reason.clone().unwrap_or_default(),
            since,
            c.message.clone().unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\n  {:<22} {:>20} {:>20}", "RESOURCE", "CAPACITY", "ALLOCATABLE");
    let capacity = status.capacity.clone().unwrap_or_default();
    let allocatable = status.allocatable.clone().unwrap_or_default();
    for (name, q) in &capacity {
        let a = allocatable.get(name).map(|q| q.0.clone()).unwrap_or_default();
        let _ = writeln!(out, "  {:<22} {:>20} {:>20}", name, q.0, a);
    }
    if !n.manifest_errors.is_empty() {
        let _ = writeln!(out, "\nManifest errors:");
        for e in &n.manifest_errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}
