//! What the admin API serves and the CLI prints: plain serialisable views,
//! built on the control side, rendered as tables by the CLI.

use std::fmt::Write;

use dataplane::stats::{Counters, DropReason};
use dataplane::tables::{proto, Snapshot};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BackendView {
    pub address: String,
    pub state: String,
    pub weight: u16,
    /// Share of the Maglev ring, in percent.
    pub share: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServiceView {
    pub name: String,
    pub vip: String,
    pub port: u16,
    pub protocol: String,
    pub affinity_seconds: u32,
    pub ring_size: usize,
    pub backends: Vec<BackendView>,
}

pub fn services(snap: &Snapshot) -> Vec<ServiceView> {
    let mut services: Vec<_> = snap.services.values().collect();
    services.sort_by_key(|s| s.key);
    services
        .into_iter()
        .map(|s| {
            let ring = s.ring().len().max(1) as f64;
            let shares = s.ring().shares(s.backends.len());
            ServiceView {
                name: s.name.clone(),
                vip: s.key.vip.to_string(),
                port: s.key.port,
                protocol: proto::name(s.key.proto).into(),
                affinity_seconds: s.affinity_timeout_s,
                ring_size: s.ring().len(),
                backends: s
                    .backends
                    .iter()
                    .zip(shares)
                    .map(|(b, share)| BackendView {
                        address: if b.addr.is_v4() {
                            format!("{}:{}", b.addr, b.port)
                        } else {
                            format!("[{}]:{}", b.addr, b.port)
                        },
                        state: b.state.as_str().into(),
                        weight: b.weight,
                        share: 100.0 * share as f64 / ring,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The Service table as `ipvsadm -Ln` shows it: a line per VIP, a line per
/// backend.
pub fn render_services(services: &[ServiceView]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<30} {:<30} {:>9} {:>7}", "SERVICE", "VIP", "AFFINITY", "RING");
    for s in services {
        let vip = if s.vip.contains(':') {
            format!("[{}]:{}/{}", s.vip, s.port, s.protocol)
        } else {
            format!("{}:{}/{}", s.vip, s.port, s.protocol)
        };
        let affinity = if s.affinity_seconds > 0 { format!("{}s", s.affinity_seconds) } else { "-".into() };
        let _ = writeln!(out, "{:<30} {:<30} {:>9} {:>7}", s.name, vip, affinity, s.ring_size);
        if s.backends.is_empty() {
            let _ = writeln!(out, "  (no endpoints: new connections are refused)");
        }
        for b in &s.backends {
            let _ = writeln!(out, "  -> {:<42} {:<12} weight {:<3} {:>5.1}%", b.address, b.state, b.weight, b.share);
        }
    }
    out
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct CountersView {
    pub generation: u64,
    pub cores: Vec<CoreCountersView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct CoreCountersView {
    pub core: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub flows_created: u64,
    pub flow_entries: u64,
    pub flow_evictions: u64,
    pub slow_path_packets: u64,
    pub handed_off: u64,
    pub generation: u64,
    pub drops: Vec<(String, u64)>,
}

pub fn core_counters(core: usize, c: &Counters) -> CoreCountersView {
    CoreCountersView {
        core,
        rx_packets: c.rx_packets,
        tx_packets: c.tx_packets,
        rx_bytes: c.rx_bytes,
        tx_bytes: c.tx_bytes,
        flows_created: c.flows_created,
        flow_entries: c.flow_entries,
        flow_evictions: c.flow_evictions,
        slow_path_packets: c.slow_path_packets,
        handed_off: c.handed_off,
        generation: c.generation,
        drops: DropReason::ALL
            .iter()
            .filter(|r| c.dropped(**r) > 0)
            .map(|r| (r.label().to_string(), c.dropped(*r)))
            .collect(),
    }
}

pub fn render_counters(v: &CountersView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "published table generation {}", v.generation);
    let _ = writeln!(
        out,
        "{:>4} {:>14} {:>14} {:>12} {:>10} {:>10} {:>10} {:>6}",
        "CORE", "RX PACKETS", "TX PACKETS", "NEW FLOWS", "FLOWS", "EVICTED", "SLOW PATH", "GEN"
    );
    for c in &v.cores {
        let _ = writeln!(
            out,
            "{:>4} {:>14} {:>14} {:>12} {:>10} {:>10} {:>10} {:>6}",
            c.core,
            c.rx_packets,
            c.tx_packets,
            c.flows_created,
            c.flow_entries,
            c.flow_evictions,
            c.slow_path_packets,
            c.generation
        );
    }
    let mut drops: std::collections::BTreeMap<&str, u64> = Default::default();
    for c in &v.cores {
        for (reason, n) in &c.drops {
            *drops.entry(reason).or_default() += n;
        }
    }
    if drops.is_empty() {
        let _ = writeln!(out, "drops: none");
    } else {
        let _ = writeln!(out, "drops:");
        for (reason, n) in drops {
            let _ = writeln!(out, "  {reason:<24} {n:>12}");
        }
    }
    out
}

/// A route or a neighbour of the published tables, as `ip route` and `ip
/// neigh` would show it: where traffic to `destination` leaves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NextHopView {
    /// `prefix/len` for a route, an address for a neighbour.
    pub destination: String,
    pub port: u16,
    pub mac: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoutesView {
    pub generation: u64,
    /// Longest prefix first, as they are matched.
    pub routes: Vec<NextHopView>,
    /// Configured and learned, by address.
    pub neighbours: Vec<NextHopView>,
}

pub fn routes(snap: &Snapshot) -> RoutesView {
    let routes = snap
        .routes
        .iter()
        .map(|r| NextHopView {
            destination: format!("{}/{}", r.prefix, r.len),
            port: r.via.port,
            mac: r.via.mac.to_string(),
        })
        .collect();
    let mut neighbours: Vec<_> = snap.neighbours.iter().collect();
    neighbours.sort_by_key(|(addr, _)| **addr);
    let neighbours = neighbours
        .into_iter()
        .map(|(addr, hop)| NextHopView { destination: addr.to_string(), port: hop.port, mac: hop.mac.to_string() })
        .collect();
    RoutesView { generation: snap.generation, routes, neighbours }
}

pub fn render_routes(v: &RoutesView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "generation {}", v.generation);
    for (what, list) in [("route", &v.routes), ("neighbour", &v.neighbours)] {
        for h in list {
            let _ = writeln!(out, "{what:<10} {:<43} port {:<3} {}", h.destination, h.port, h.mac);
        }
    }
    out
}
