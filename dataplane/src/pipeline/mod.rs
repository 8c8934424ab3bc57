//! One packet through the forwarding path, top to bottom:
//!
//! parse → flow lookup → (miss) VIP lookup → backend choice → flow insert →
//! NAT rewrite with incremental checksums → verdict (which port, or the slow
//! path, or a counted drop).
//!
//! The pipeline owns the core's flow table and source ports; it reads the
//! snapshot it is given and never blocks, allocates, or calls the system.
//!
//! The stages live in one file each: [`parse`] (the frame's headers, the
//! general parser and the fixed-offset one for the common frame),
//! [`forward`] (flow lookup, new flows, backend choice, state) and [`nat`]
//! (the rewrite with incremental checksums). This file holds the burst's
//! entry points, in the order a core calls them.

mod forward;
mod nat;
mod parse;

use crate::flow::{FlowTable, Placement, SourcePortAllocator};
use crate::stats::{Counters, DropReason};
use crate::tables::{PortId, Snapshot};

use parse::{parse, parse_plain_ipv4, read_plain_ipv4, Parsed};

/// What to do with a packet after [`Pipeline::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten; send it out of this port.
    Forward(PortId),
    /// For the appliance itself (ARP, ICMP, its own addresses): hand it to
    /// the slow path unchanged.
    SlowPath,
    /// A reply to a masqueraded flow of another core (RSS put it here): hand
    /// it unchanged to that core.
    Handoff(usize),
    /// Dropped; already counted under the reason.
    Drop(DropReason),
}

/// Idle timeouts, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP before the backend has answered.
    pub tcp_new: u32,
    /// TCP with both directions seen.
    pub tcp_open: u32,
    /// TCP after FIN or RST.
    pub tcp_closing: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        // kube-proxy sets conntrack's established timeout to a day; a closing
        // flow only needs to outlive the last retransmitted FIN/ACK.
        Timeouts { tcp_new: 30, tcp_open: 86_400, tcp_closing: 30, udp: 30 }
    }
}

/// A core's pipeline settings.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// This core's index and the number of worker cores (for source ports).
    pub core: usize,
    pub cores: usize,
    /// Flow table entries (two per NAT flow).
    pub flow_capacity: usize,
    /// Where the flow table lives (DPDK's hugepages on a real node).
    pub flow_memory: Placement,
    /// Range of source ports for masqueraded flows, shared out among cores.
    pub source_ports: (u16, u16),
    /// Unix time (seconds) of the pipeline's second 0: source ports follow
    /// the wall clock so that a restart does not reuse recent ones (see
    /// `flow::ports`).
    pub clock_epoch: u64,
    pub timeouts: Timeouts,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            core: 0,
            cores: 1,
            flow_capacity: 1 << 18,
            flow_memory: Placement::Heap,
            source_ports: (32768, 65535),
            clock_epoch: 0,
            timeouts: Timeouts::default(),
        }
    }
}

/// A frame after [`Pipeline::prepare`]: whether it is the common frame
/// ([`parse_plain_ipv4`] accepted it), and then its flow hash and whether
/// it changes its flow's state.
///
/// Only these two words are kept between the passes. The headers are read
/// again from the frame (in L1 by then) when it is finished: a whole
/// parse result, stored field by field and copied, cost more in stalled
/// wide loads than reading a dozen bytes twice.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prepared {
    hash: u64,
    plain: bool,
    changes_state: bool,
}

pub struct Pipeline {
    core: usize,
    flows: FlowTable,
    source_ports: SourcePortAllocator,
    timeouts: Timeouts,
    pub counters: Counters,
}

impl Pipeline {
    pub fn new(config: &PipelineConfig) -> Pipeline {
        let (flows, fallback) = FlowTable::new_in(config.flow_capacity, config.flow_memory);
        if let Some(why) = fallback {
            tracing::warn!(core = config.core, %why, "flow table on the heap, not in DPDK memory: lookups will miss the TLB more");
        }
        Pipeline {
            core: config.core,
            flows,
            source_ports: SourcePortAllocator::new(
                config.source_ports.0,
                config.source_ports.1,
                config.core,
                config.cores,
                config.clock_epoch,
            ),
            timeouts: config.timeouts,
            counters: Counters::default(),
        }
    }

    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    #[inline]
    fn drop(&mut self, reason: DropReason) -> Verdict {
        self.counters.drop(reason);
        Verdict::Drop(reason)
    }

    /// Processes one frame received on `ingress` at second `now`, for
    /// callers with a single packet (and the frames [`Pipeline::prepare`]
    /// left to the general parser): the same verdict and rewrite as the
    /// burst's passes, without the prefetches.
    #[inline]
    pub fn process(&mut self, snap: &Snapshot, ingress: PortId, frame: &mut [u8], now: u32) -> Verdict {
        match parse(frame) {
            Ok(headers) => {
                let hash = headers.key.hash();
                self.forward(snap, ingress, frame, &headers, hash, now)
            }
            Err(Parsed::SlowPath) => Verdict::SlowPath,
            Err(Parsed::Drop(reason)) => self.drop(reason),
        }
    }

    /// First stage, run over a whole burst before the next: parse the
    /// headers and hash the flow key. The flow table is far larger than the
    /// caches, so each packet's lookup is a cache miss; the second stage
    /// ([`Pipeline::prefetch`]) starts them all, so that they overlap
    /// instead of queuing one behind the other.
    ///
    /// Only the common frame is prepared; the others are parsed in full
    /// when they are finished.
    #[inline]
    pub fn prepare(&self, frame: &[u8]) -> Prepared {
        match parse_plain_ipv4(frame) {
            Some(plain) => Prepared { hash: plain.key.hash(), plain: true, changes_state: plain.changes_state() },
            None => Prepared::default(),
        }
    }

    /// Second stage, over the whole burst again: start loading the flow
    /// table line each prepared packet's lookup reads first, its entry on
    /// the established-flow path, its bucket's metadata for a SYN, FIN or
    /// RST. Kept apart from the parsing, in a loop of a few instructions
    /// per packet, so that all the burst's loads are in flight at once:
    /// within the first stage, the parsing between two prefetches held the
    /// core's window to a handful of them.
    #[inline(always)]
    pub fn prefetch(&self, prepared: &Prepared) {
        if prepared.plain {
            if prepared.changes_state {
                self.flows.prefetch_bucket(prepared.hash);
            } else {
                self.flows.prefetch_entry(prepared.hash);
            }
        }
    }

    /// Last stage: the verdict for a frame [`Pipeline::prepare`] saw, and
    /// its rewrite. `frame` must be the same, unchanged bytes.
    #[inline]
    pub fn finish(
        &mut self,
        snap: &Snapshot,
        ingress: PortId,
        frame: &mut [u8],
        prepared: &Prepared,
        now: u32,
    ) -> Verdict {
        if !prepared.plain {
            return self.process(snap, ingress, frame, now);
        }
        match read_plain_ipv4(frame) {
            Some(plain) => self.forward(snap, ingress, frame, &plain.headers(), prepared.hash, now),
            // Not the frame that was prepared (a caller's mistake): parsed
            // in full, nothing is assumed.
            None => self.process(snap, ingress, frame, now),
        }
    }

    /// The path of most packets, taken before [`Pipeline::finish`]: a
    /// prepared common frame of an open flow that changes no state (no SYN,
    /// FIN or RST). Rewrites it with the flow's compiled rewrite, refreshes
    /// the flow and returns the egress port. Any other frame gets `None`
    /// with nothing changed, and goes through [`Pipeline::finish`].
    #[inline(always)]
    pub fn forward_established(&mut self, frame: &mut [u8], prepared: &Prepared, now: u32) -> Option<PortId> {
        if !prepared.plain {
            return None;
        }
        let plain = read_plain_ipv4(frame)?;
        self.established(frame, &plain, prepared.hash, now)
    }
}
