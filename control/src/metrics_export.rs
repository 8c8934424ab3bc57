//! Prometheus metrics: the cores' counters, summed per core and exported
//! through the `metrics` crate.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use dataplane::stats::{CoreStats, Counters, DropReason};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

/// Starts the HTTP endpoint (`GET /metrics`) on `listen`; must be called
/// inside the tokio runtime.
pub fn install(listen: &str) -> Result<()> {
    let addr: SocketAddr = listen.parse().with_context(|| format!("metrics.listen {listen:?} is not address:port"))?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("starting the metrics endpoint on {addr}"))?;
    describe();
    Ok(())
}

fn describe() {
    describe_counter!("switchyard_rx_packets_total", "Packets received by a worker core");
    describe_counter!("switchyard_rx_bytes_total", "Bytes received by a worker core");
    describe_counter!("switchyard_tx_packets_total", "Packets transmitted by a worker core");
    describe_counter!("switchyard_tx_bytes_total", "Bytes transmitted by a worker core");
    describe_counter!("switchyard_slow_path_packets_total", "Packets handed to the slow path");
    describe_counter!("switchyard_handed_off_total", "Replies passed to the core that owns their flow");
    describe_counter!("switchyard_slow_path_arp_replies_total", "ARP replies the slow path sent");
    describe_counter!("switchyard_slow_path_nd_advertisements_total", "Neighbor Advertisements the slow path sent");
    describe_counter!("switchyard_slow_path_echo_replies_total", "ICMP and ICMPv6 echo replies the slow path sent");
    describe_counter!(
        "switchyard_slow_path_rejects_total",
        "Connections to a Service without endpoints refused (TCP reset, ICMP port unreachable)"
    );
    describe_counter!("switchyard_slow_path_arp_requests_total", "ARP requests sent to resolve backends and next hops");
    describe_counter!(
        "switchyard_slow_path_nd_solicitations_total",
        "Neighbor Solicitations sent to resolve IPv6 backends and next hops"
    );
    describe_counter!("switchyard_slow_path_unhandled_total", "Frames the slow path did not answer or could not parse");
    describe_gauge!("switchyard_neighbours_learned", "Neighbours learned from ARP and neighbour discovery");
    describe_counter!("switchyard_flows_created_total", "New flows");
    describe_counter!("switchyard_flow_evictions_total", "Live flows evicted from a full flow table bucket");
    describe_counter!("switchyard_drops_total", "Dropped packets, by reason");
    describe_gauge!(
        "switchyard_flow_entries",
        "Flow table slots occupied (two per NAT flow; an expired entry counts until its slot is reused)"
    );
    describe_gauge!("switchyard_snapshot_generation", "Generation of the table snapshot a core uses");
    describe_gauge!("switchyard_published_generation", "Generation of the last published table snapshot");
    describe_histogram!(
        "switchyard_table_sync_seconds",
        "From the first Service/EndpointSlice event to the published snapshot"
    );
    describe_gauge!("switchyard_table_sync_last_seconds", "The last table sync's time from first event to publication");
    describe_gauge!("switchyard_services", "Services in the catalog");
    describe_gauge!("switchyard_service_keys", "(VIP, port, protocol) keys in the published tables");
    describe_gauge!("switchyard_service_backends", "Backends summed over the published keys");
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

/// Copies the cores' counters into the registry.
pub fn export(stats: &CoreStats) {
    for core in 0..stats.cores() {
        let c: Counters = stats.read(core);
        let core = core.to_string();
        counter!("switchyard_rx_packets_total", "core" => core.clone()).absolute(c.rx_packets);
        counter!("switchyard_rx_bytes_total", "core" => core.clone()).absolute(c.rx_bytes);
        counter!("switchyard_tx_packets_total", "core" => core.clone()).absolute(c.tx_packets);
        counter!("switchyard_tx_bytes_total", "core" => core.clone()).absolute(c.tx_bytes);
        counter!("switchyard_slow_path_packets_total", "core" => core.clone()).absolute(c.slow_path_packets);
        counter!("switchyard_handed_off_total", "core" => core.clone()).absolute(c.handed_off);
        counter!("switchyard_flows_created_total", "core" => core.clone()).absolute(c.flows_created);
        counter!("switchyard_flow_evictions_total", "core" => core.clone()).absolute(c.flow_evictions);
        gauge!("switchyard_flow_entries", "core" => core.clone()).set(c.flow_entries as f64);
        gauge!("switchyard_snapshot_generation", "core" => core.clone()).set(c.generation as f64);
        for reason in DropReason::ALL {
            counter!("switchyard_drops_total", "core" => core.clone(), "reason" => reason.label())
                .absolute(c.dropped(reason));
        }
    }
}

/// The summary printed when the appliance stops, one JSON object.
pub fn summary_json(total: &Counters, published_generation: u64) -> serde_json::Value {
    let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
        .iter()
        .filter(|r| total.dropped(**r) > 0)
        .map(|r| (r.label().to_string(), total.dropped(*r).into()))
        .collect();
    serde_json::json!({
        "rx_packets": total.rx_packets,
        "tx_packets": total.tx_packets,
        "rx_bytes": total.rx_bytes,
        "tx_bytes": total.tx_bytes,
        "slow_path_packets": total.slow_path_packets,
        "handed_off": total.handed_off,
        "flows_created": total.flows_created,
        "flow_evictions": total.flow_evictions,
        "flow_entries": total.flow_entries,
        "core_generation": total.generation,
        "published_generation": published_generation,
        "drops": drops,
    })
}

/// The node agent's view as metrics: node conditions, capacity and
/// allocatable, pods by phase, container restarts.
pub fn export_node(node: &crate::admin::pod_views::NodeView, pods: &[crate::admin::pod_views::PodView]) {
    if let Some(status) = &node.status {
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
                if let Ok(q) = crate::quantity::Quantity::parse(&q.0) {
                    // CPU in cores, everything else in its unit (bytes, pods).
                    let value = if resource == "cpu" { q.as_milli() as f64 / 1000.0 } else { q.as_value() as f64 };
                    gauge!(metric, "resource" => resource.clone()).set(value);
                }
            }
        }
    }
    let mut phases: std::collections::BTreeMap<&str, f64> =
        ["Pending", "Running", "Succeeded", "Failed"].iter().map(|p| (*p, 0.0)).collect();
    for p in pods {
        *phases.entry(p.phase.as_str()).or_default() += 1.0;
        gauge!("switchyard_pod_container_restarts", "namespace" => p.namespace.clone(), "pod" => p.name.clone())
            .set(f64::from(p.restarts));
    }
    for (phase, n) in phases {
        gauge!("switchyard_pods", "status" => phase.to_string()).set(n);
    }
}
