//! The engine's metrics: the cores' counters (summed per core by the
//! `metrics` registry), the slow path's, and the summary printed on stop.

use dataplane::stats::{CoreStats, Counters, DropReason};
use metrics::{counter, describe_counter, describe_gauge, gauge};
use slowpath::SlowPathCounters;

/// Describes the engine's metrics to the registry (once, at start).
pub fn describe() {
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
    describe_gauge!("switchyard_service_keys", "(VIP, port, protocol) keys in the published tables");
    describe_gauge!("switchyard_service_backends", "Backends summed over the published keys");
}

/// Copies the slow path's counters into the registry.
pub(crate) fn slow_path(c: &SlowPathCounters, learned: usize) {
    counter!("switchyard_slow_path_arp_replies_total").absolute(c.arp_replies);
    counter!("switchyard_slow_path_echo_replies_total").absolute(c.echo_replies);
    counter!("switchyard_slow_path_rejects_total").absolute(c.rejects);
    counter!("switchyard_slow_path_arp_requests_total").absolute(c.arp_requests);
    counter!("switchyard_slow_path_nd_advertisements_total").absolute(c.nd_advertisements);
    counter!("switchyard_slow_path_nd_solicitations_total").absolute(c.nd_solicitations);
    counter!("switchyard_slow_path_unhandled_total").absolute(c.unhandled + c.malformed);
    gauge!("switchyard_neighbours_learned").set(learned as f64);
}

/// Copies the cores' counters into the registry.
pub(crate) fn cores(stats: &CoreStats) {
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
