//! Source ports for masqueraded flows.
//!
//! Each core owns a disjoint set of source ports: those whose low bits equal
//! the core's index (`port & mask == core`, `mask + 1` = the core count
//! rounded up to a power of two). A reply is addressed to one of those ports,
//! so the core that owns it is a function of the destination port alone:
//! - with a real NIC, one rte_flow rule per core (match the masquerade
//!   address and `dst_port & mask == core`, action: that core's queue) steers
//!   every reply to the core holding its flow entry, with no shared state;
//! - without such rules (RSS alone, as set up today), a reply may land on any
//!   core; a core that misses it in its flow table and sees that another
//!   core owns the port hands the packet over through that core's handoff
//!   ring (see `lcore`), one extra hop and no shared state;
//! - ports with a single queue (af_packet, af_xdp on a veth, pcap) can feed
//!   only one core: the port set-up refuses more workers than queues.
//!
//! Reuse and TIME_WAIT: the pod that served a connection keeps its socket in
//! TIME_WAIT for 60 s; a new SYN to it from the same (address, port) with a
//! lower TCP timestamp is dropped by PAWS, and the client stalls for a
//! second before retrying. Picking ports at random (kube-proxy's
//! `--random-fully`) reuses a (backend, port) pair after a few thousand
//! connections, measured at about 3% of new connections stalling on this
//! kind of machine. Here each backend hashes to one of many cursors that walk
//! the core's ports in order, so a pair comes back only after that cursor has
//! handed out every other port of the core: with the default range
//! (32768–65535, above the NodePorts) and 2 cores that is ~16,000
//! connections to the same backend group, i.e. no reuse inside TIME_WAIT
//! below ~270 new connections per second per backend per core (a wider
//! range raises that).
//!
//! Restarts: a new process knows nothing of the ports its predecessor used
//! in the last minute. So the cursors never fall behind a line that sweeps
//! the core's ports once every [`SWEEP_SECONDS`] of wall-clock time: an idle
//! cursor jumps forward to it, a busy one runs ahead of it. A process that
//! starts (or a cursor that wakes up) at the line is then ahead of every
//! port the line-following predecessor handed out in the last two minutes.
//! What it cannot avoid: a predecessor that ran ahead of the line (more than
//! `ports / SWEEP_SECONDS` connections per second to one backend group)
//! leaves ports in TIME_WAIT that the new process may meet again; without
//! state kept across restarts nothing can tell.

use crate::hash::mix64;
use crate::tables::Addr;

const CURSORS: usize = 1024;

/// The cursors' floor sweeps a core's whole port range in this many seconds:
/// twice the 60 s a closed connection stays in TIME_WAIT on Linux.
pub const SWEEP_SECONDS: u64 = 120;

pub struct SourcePortAllocator {
    /// Lowest port of the range, rounded up so that `base & mask == 0`.
    base: u32,
    /// Highest port of the range.
    last: u32,
    cores: u32,
    /// Ports this core owns.
    count: u32,
    stride: u32,
    core: u32,
    /// Wall-clock seconds (Unix time) at the caller's second 0.
    epoch: u64,
    /// Positions in the port sequence (`% count` is the index).
    cursors: Box<[u64; CURSORS]>,
}

impl SourcePortAllocator {
    /// Ports in `[first, last]` whose low bits equal `core` among `cores`;
    /// `epoch` is the Unix time of the caller's second 0 (see the module
    /// docs on restarts; 0 where it does not matter).
    pub fn new(first: u16, last: u16, core: usize, cores: usize, epoch: u64) -> SourcePortAllocator {
        let stride = (cores.max(1) as u32).next_power_of_two();
        let base = u32::from(first).div_ceil(stride) * stride;
        let core = core as u32 % stride;
        let span = (u32::from(last) + 1).saturating_sub(base + core);
        let count = span.div_ceil(stride);
        SourcePortAllocator {
            base,
            last: u32::from(last),
            cores: cores.max(1) as u32,
            count,
            stride,
            core,
            epoch,
            cursors: Box::new([0; CURSORS]),
        }
    }

    /// The core that hands out `port`, if any does.
    #[inline]
    pub fn owner(&self, port: u16) -> Option<usize> {
        let port = u32::from(port);
        let class = port & (self.stride - 1);
        (port >= self.base && port <= self.last && class < self.cores).then_some(class as usize)
    }

    /// Ports this core can hand out.
    pub fn capacity(&self) -> u32 {
        self.count
    }

    /// The mask whose value `core` a reply's destination port carries.
    pub fn mask(&self) -> u16 {
        (self.stride - 1) as u16
    }

    /// Offers candidate ports for a flow to `backend` at the caller's second
    /// `now`, in this backend's order, until `is_free` accepts one (it checks
    /// the flow table for a live mapping) or `tries` candidates were refused.
    #[inline]
    pub fn allocate(
        &mut self,
        backend: &Addr,
        backend_port: u16,
        now: u32,
        tries: u32,
        mut is_free: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        if self.count == 0 {
            return None;
        }
        let lanes = u64::from_le_bytes([
            backend.0[8],
            backend.0[9],
            backend.0[10],
            backend.0[11],
            backend.0[12],
            backend.0[13],
            backend.0[14],
            backend.0[15],
        ]);
        let line = (self.epoch + u64::from(now)) * u64::from(self.count) / SWEEP_SECONDS;
        let cursor = &mut self.cursors[(mix64(lanes ^ u64::from(backend_port)) as usize) % CURSORS];
        *cursor = (*cursor).max(line);
        for _ in 0..tries {
            let index = (*cursor % u64::from(self.count)) as u32;
            *cursor += 1;
            let port = (self.base + index * self.stride + self.core) as u16;
            if is_free(port) {
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    #[test]
    fn cores_own_disjoint_ports_in_range() {
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        let mut seen = HashSet::new();
        for core in 0..3 {
            let mut alloc = SourcePortAllocator::new(1024, 65535, core, 3, 0);
            assert_eq!(alloc.mask(), 3);
            for _ in 0..alloc.capacity() {
                let p = alloc.allocate(&backend, 80, 0, 1, |_| true).unwrap();
                assert!(p >= 1024);
                assert_eq!(u32::from(p) & 3, core as u32);
                assert!(seen.insert(p), "port {p} handed out twice");
            }
        }
    }

    #[test]
    fn owner_names_the_core_that_hands_a_port_out() {
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        for core in 0..3 {
            let mut alloc = SourcePortAllocator::new(1024, 65535, core, 3, 0);
            for _ in 0..100 {
                let p = alloc.allocate(&backend, 80, 0, 1, |_| true).unwrap();
                assert_eq!(alloc.owner(p), Some(core));
            }
            assert_eq!(alloc.owner(22), None, "below the range");
            assert_eq!(alloc.owner(1027), None, "class 3 of 4 belongs to no core");
        }
    }

    #[test]
    fn a_backend_sees_a_port_again_only_after_a_full_cycle() {
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        let mut alloc = SourcePortAllocator::new(1024, 65535, 1, 2, 0);
        let first = alloc.allocate(&backend, 80, 0, 1, |_| true);
        for _ in 1..alloc.capacity() {
            assert_ne!(alloc.allocate(&backend, 80, 0, 1, |_| true), first);
        }
        assert_eq!(alloc.allocate(&backend, 80, 0, 1, |_| true), first);
    }

    #[test]
    fn busy_ports_are_skipped_and_exhaustion_is_reported() {
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        let mut alloc = SourcePortAllocator::new(2000, 2003, 0, 1, 0);
        assert_eq!(alloc.capacity(), 4);
        assert_eq!(alloc.allocate(&backend, 80, 0, 4, |p| p == 2002), Some(2002));
        assert_eq!(alloc.allocate(&backend, 80, 0, 8, |_| false), None);
    }

    #[test]
    fn a_restarted_allocator_starts_ahead_of_its_predecessors_recent_ports() {
        // One core, 32,768 ports: the line moves ~273 ports a second. The
        // first process hands out 100 ports a second to one backend for 50 s,
        // then a second one starts and does the same for 60 s: none of its
        // ports is one the first used within the last 60 s.
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        let epoch = 1_800_000_000;
        let mut first = SourcePortAllocator::new(32768, 65535, 0, 1, epoch);
        let mut last_used = std::collections::HashMap::new();
        for second in 0..50u32 {
            for _ in 0..100 {
                let p = first.allocate(&backend, 80, second, 1, |_| true).unwrap();
                last_used.insert(p, u64::from(second));
            }
        }
        let restart = epoch + 50;
        let mut second_process = SourcePortAllocator::new(32768, 65535, 0, 1, restart);
        for second in 0..60u32 {
            for _ in 0..100 {
                let p = second_process.allocate(&backend, 80, second, 1, |_| true).unwrap();
                if let Some(&used) = last_used.get(&p) {
                    let age = 50 + u64::from(second) - used;
                    assert!(age >= 60, "port {p} reused {age} s after the first process used it");
                }
            }
        }
    }

    #[test]
    fn an_idle_cursor_catches_up_with_the_line() {
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        let mut alloc = SourcePortAllocator::new(32768, 65535, 0, 1, 0);
        let at_zero = alloc.allocate(&backend, 80, 0, 1, |_| true).unwrap();
        let later = alloc.allocate(&backend, 80, 60, 1, |_| true).unwrap();
        // Half the sweep later: half the range further on.
        assert_eq!(u32::from(later) - u32::from(at_zero), 32768 / 2);
    }
}
