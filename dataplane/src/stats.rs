//! Per-core counters.
//!
//! A core counts into a plain local struct while it works on a burst and
//! publishes it to its own cache-padded slot of atomics at the end of the
//! burst with relaxed stores. One writer per slot means no locked
//! read-modify-write and no cache line bouncing between cores; the control
//! side sums the slots when it exports metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::utils::CachePadded;

use crate::wire;

/// Why a packet was dropped. Every drop is counted under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    Truncated,
    BadVersion,
    BadHeaderLength,
    BadLength,
    Unsupported,
    /// An IP fragment: the ports are not in every fragment, so fragments
    /// cannot be matched to a flow.
    Fragment,
    /// IPv6 with extension headers before the transport header.
    Ipv6Extension,
    TtlExpired,
    /// Addressed to neither a Service nor the appliance.
    NoService,
    /// No neighbour or route for the backend or the client.
    NoRoute,
    /// No masquerade address of the flow's family on the egress port.
    NoSourceAddress,
    /// Every candidate source port for this backend is in use.
    NoSourcePort,
    /// The ring to the slow path was full.
    SlowPathFull,
    /// The ring to the core that owns the flow was full.
    HandoffFull,
    /// The port's transmit queue did not take the packet.
    TxFull,
}

impl DropReason {
    pub const COUNT: usize = 15;

    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadHeaderLength,
        DropReason::BadLength,
        DropReason::Unsupported,
        DropReason::Fragment,
        DropReason::Ipv6Extension,
        DropReason::TtlExpired,
        DropReason::NoService,
        DropReason::NoRoute,
        DropReason::NoSourceAddress,
        DropReason::NoSourcePort,
        DropReason::SlowPathFull,
        DropReason::HandoffFull,
        DropReason::TxFull,
    ];

    /// The metrics label.
    pub const fn label(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadVersion => "bad_version",
            DropReason::BadHeaderLength => "bad_header_length",
            DropReason::BadLength => "bad_length",
            DropReason::Unsupported => "unsupported",
            DropReason::Fragment => "fragment",
            DropReason::Ipv6Extension => "ipv6_extension_header",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoService => "no_service",
            DropReason::NoRoute => "no_route",
            DropReason::NoSourceAddress => "no_source_address",
            DropReason::NoSourcePort => "no_source_port",
            DropReason::SlowPathFull => "slow_path_full",
            DropReason::HandoffFull => "handoff_full",
            DropReason::TxFull => "tx_full",
        }
    }
}

impl From<wire::Error> for DropReason {
    fn from(e: wire::Error) -> DropReason {
        match e {
            wire::Error::Truncated => DropReason::Truncated,
            wire::Error::BadVersion => DropReason::BadVersion,
            wire::Error::BadHeaderLength => DropReason::BadHeaderLength,
            wire::Error::BadLength => DropReason::BadLength,
            wire::Error::Unsupported => DropReason::Unsupported,
        }
    }
}

/// A core's counters while it works; plain integers, no atomics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub slow_path_packets: u64,
    /// Replies passed to the core that owns their flow.
    pub handed_off: u64,
    pub flows_created: u64,
    pub flow_evictions: u64,
    /// Flow table entries (both directions of a flow count).
    pub flow_entries: u64,
    /// The snapshot generation the core used last.
    pub generation: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Counters {
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds another core's counters (for totals). Gauges (flow entries) add;
    /// the generation is the lowest any core still uses.
    pub fn accumulate(&mut self, other: &Counters) {
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.slow_path_packets += other.slow_path_packets;
        self.handed_off += other.handed_off;
        self.flows_created += other.flows_created;
        self.flow_evictions += other.flow_evictions;
        self.flow_entries += other.flow_entries;
        self.generation = self.generation.min(other.generation);
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += *b;
        }
    }
}

const HEAD: usize = 10;
const FIELDS: usize = HEAD + DropReason::COUNT;

/// One core's published counters.
#[derive(Default)]
struct Slot {
    values: [AtomicU64; FIELDS],
}

/// All cores' published counters; cheap to clone (shared).
#[derive(Clone)]
pub struct CoreStats {
    slots: Arc<[CachePadded<Slot>]>,
}

impl CoreStats {
    pub fn new(cores: usize) -> CoreStats {
        CoreStats { slots: (0..cores).map(|_| CachePadded::new(Slot::default())).collect() }
    }

    pub fn cores(&self) -> usize {
        self.slots.len()
    }

    /// Publishes `c` as core `core`'s counters. Only that core calls this.
    #[inline]
    pub fn publish(&self, core: usize, c: &Counters) {
        let Some(slot) = self.slots.get(core) else { return };
        let head = [
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.slow_path_packets,
            c.handed_off,
            c.flows_created,
            c.flow_evictions,
            c.flow_entries,
            c.generation,
        ];
        for (cell, v) in slot.values.iter().zip(head.iter().chain(c.drops.iter())) {
            cell.store(*v, Ordering::Relaxed);
        }
    }

    /// A core's last published counters.
    pub fn read(&self, core: usize) -> Counters {
        let mut c = Counters::default();
        let Some(slot) = self.slots.get(core) else { return c };
        let v: Vec<u64> = slot.values.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        c.rx_packets = v[0];
        c.rx_bytes = v[1];
        c.tx_packets = v[2];
        c.tx_bytes = v[3];
        c.slow_path_packets = v[4];
        c.handed_off = v[5];
        c.flows_created = v[6];
        c.flow_evictions = v[7];
        c.flow_entries = v[8];
        c.generation = v[9];
        c.drops.copy_from_slice(&v[HEAD..]);
        c
    }

    /// The sum over all cores.
    pub fn total(&self) -> Counters {
        let mut total = Counters { generation: u64::MAX, ..Counters::default() };
        for core in 0..self.cores() {
            total.accumulate(&self.read(core));
        }
        if self.cores() == 0 {
            total.generation = 0;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counters_sum_over_cores() {
        let stats = CoreStats::new(2);
        let mut a = Counters { rx_packets: 5, generation: 7, ..Counters::default() };
        a.drop(DropReason::NoService);
        let b = Counters { rx_packets: 3, generation: 6, ..Counters::default() };
        stats.publish(0, &a);
        stats.publish(1, &b);
        let t = stats.total();
        assert_eq!(t.rx_packets, 8);
        assert_eq!(t.generation, 6);
        assert_eq!(t.dropped(DropReason::NoService), 1);
        assert_eq!(stats.read(0), a);
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
