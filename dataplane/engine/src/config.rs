//! What the engine is told to run: the `[dataplane]` section of the config
//! file, and the ports the binary read from its `[[port]]` entries.

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::pipeline::Timeouts;
use dataplane::tables::DEFAULT_MAX_RING_SIZE;
use serde::Deserialize;

/// The `[dataplane]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// EAL arguments, as for any DPDK application (`--in-memory`, `--vdev`, `-a`).
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// CPU cores to pin the worker cores to; one rx/tx queue pair each per port.
    #[serde(default = "default_workers")]
    pub workers: Vec<usize>,
    /// Flow table entries per worker (two per NAT flow).
    #[serde(default = "default_flow_capacity")]
    pub flow_capacity: usize,
    /// Source ports for masqueraded flows: `[first, last]`.
    #[serde(default = "default_source_ports")]
    pub source_ports: [u16; 2],
    /// Largest Maglev ring (slots); rounded down to the ring-size ladder.
    #[serde(default = "default_max_ring")]
    pub max_ring_size: usize,
    /// Mbufs in the packet pool (per NUMA socket).
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Stop after this many seconds (tests and benches); 0 runs until a signal.
    #[serde(default)]
    pub run_seconds: u64,
}

/// `[dataplane.timeouts]`: idle timeouts in seconds; absent ones keep the
/// pipeline's defaults.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    pub tcp_new: Option<u32>,
    pub tcp_open: Option<u32>,
    pub tcp_closing: Option<u32>,
    pub udp: Option<u32>,
}

impl TimeoutsConfig {
    /// The pipeline's timeouts: the configured ones over the defaults.
    pub fn resolve(&self) -> Timeouts {
        let t = Timeouts::default();
        Timeouts {
            tcp_new: self.tcp_new.unwrap_or(t.tcp_new),
            tcp_open: self.tcp_open.unwrap_or(t.tcp_open),
            tcp_closing: self.tcp_closing.unwrap_or(t.tcp_closing),
            udp: self.udp.unwrap_or(t.udp),
        }
    }
}

/// One port to open, in port-id order.
#[derive(Clone, Debug)]
pub struct PortSpec {
    /// The DPDK device name: a vdev name (`net_pcap0`) or a PCI address.
    pub name: String,
    /// The on-link IPv4 subnet whose addresses the slow path resolves with ARP.
    pub ipv4_subnet: Option<(Ipv4Addr, u8)>,
    /// The on-link IPv6 subnet whose addresses it resolves with Neighbor
    /// Solicitations.
    pub ipv6_subnet: Option<(Ipv6Addr, u8)>,
}

fn default_workers() -> Vec<usize> {
    vec![1]
}
fn default_flow_capacity() -> usize {
    1 << 18
}
/// Above the NodePort range (30000–32767), so that a reply to a
/// masqueraded flow is never taken for NodePort traffic.
fn default_source_ports() -> [u16; 2] {
    [32768, 65535]
}
fn default_max_ring() -> usize {
    DEFAULT_MAX_RING_SIZE
}
fn default_mbufs() -> u32 {
    16_383
}
