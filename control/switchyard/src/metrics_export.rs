//! The Prometheus endpoint, and the control side's own metrics: table sync,
//! the node's status and the pods the agent runs. The cores' and the slow
//! path's metrics are the engine's (`engine::describe`).

use std::net::SocketAddr;

use agent::worker::PodReport;
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::NodeStatus;
use metrics::{describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

/// Starts the HTTP endpoint (`GET /metrics`) on `listen`; must be called
/// inside the tokio runtime.
pub fn install(addr: SocketAddr) -> Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("starting the metrics endpoint on {addr}"))?;
    describe();
    engine::describe();
    Ok(())
}

fn describe() {
    describe_gauge!(
        "switchyard_control_loop_lag_seconds",
        "How late the control loop ran its last 100 ms tick (a blocked control thread shows here)"
    );
    describe_histogram!("switchyard_control_loop_lag_seconds_hist", "How late the control loop's 100 ms ticks ran");
    describe_counter!("switchyard_events_dropped_total", "Events the agent could not queue for the API server");
    describe_histogram!(
        "switchyard_table_sync_seconds",
        "From the first Service/EndpointSlice event to the published snapshot"
    );
    describe_gauge!("switchyard_table_sync_last_seconds", "The last table sync's time from first event to publication");
    describe_gauge!("switchyard_services", "Services in the catalog");
    describe_gauge!("switchyard_table_bytes", "Approximate heap bytes of the published Service tables");
    describe_gauge!("switchyard_node_condition", "Node conditions: 1 for the condition's current status");
    describe_gauge!("switchyard_node_capacity", "Node capacity by resource (cpu in cores, memory in bytes)");
    describe_gauge!("switchyard_node_allocatable", "Node allocatable by resource (cpu in cores, memory in bytes)");
    describe_gauge!(
        "switchyard_pods",
        "Pods the node agent runs, by status as `switchyard pods` shows it (phase or waiting reason)"
    );
    describe_gauge!("switchyard_pod_container_restarts", "Container restarts of a pod");
}

/// The node agent's view as metrics: node conditions, capacity and
/// allocatable, pods by phase, container restarts.
pub fn export_node<'a>(status: Option<&NodeStatus>, pods: impl Iterator<Item = &'a PodReport>) {
    if let Some(status) = status {
        for c in status.conditions.iter().flatten() {
            for s in ["True", "False", "Unknown"] {
                gauge!("switchyard_node_condition", "condition" => c.type_.clone(), "status" => s)
                    .set(if c.status == s { 1.0 } else { 0.0 });
            }
        }
        for (metric, list) in
            [("switchyard_node_capacity", &status.capacity), ("switchyard_node_allocatable", &status.allocatable)]
        {
            for (resource, q) in list.iter().flatten() {
                if let Ok(q) = node::quantity::Quantity::parse(&q.0) {
                    // CPU in cores, everything else in its unit (bytes, pods).
                    let value = if resource == "cpu" { q.as_milli() as f64 / 1000.0 } else { q.as_value() as f64 };
                    gauge!(metric, "resource" => resource.clone()).set(value);
                }
            }
        }
    }
    let mut phases: std::collections::BTreeMap<String, f64> =
        ["Pending", "Running", "Succeeded", "Failed"].iter().map(|p| (p.to_string(), 0.0)).collect();
    for p in pods {
        *phases.entry(p.display_status()).or_default() += 1.0;
        gauge!("switchyard_pod_container_restarts", "namespace" => p.namespace.clone(), "pod" => p.name.clone())
            .set(f64::from(p.restarts()));
    }
    for (phase, n) in phases {
        gauge!("switchyard_pods", "status" => phase).set(n);
    }
}
