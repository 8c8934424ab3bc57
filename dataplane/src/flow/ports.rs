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

use crate::hash::mix64;
use crate::tables::Addr;

const CURSORS: usize = 1024;

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
    cursors: Box<[u32; CURSORS]>,
}

impl SourcePortAllocator {
    /// Ports in `[first, last]` whose low bits equal `core` among `cores`.
    pub fn new(first: u16, last: u16, core: usize, cores: usize) -> SourcePortAllocator {
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

    /// Offers candidate ports for a flow to `backend`, in this backend's order,
    /// until `is_free` accepts one (it checks the flow table for a live
    /// mapping) or `tries` candidates were refused.
    #[inline]
    pub fn allocate(
        &mut self,
        backend: &Addr,
        backend_port: u16,
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
        let cursor = &mut self.cursors[(mix64(lanes ^ u64::from(backend_port)) as usize) % CURSORS];
        for _ in 0..tries {
            let index = *cursor % self.count;
            *cursor = cursor.wrapping_add(1);
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
            let mut alloc = SourcePortAllocator::new(1024, 65535, core, 3);
            assert_eq!(alloc.mask(), 3);
            for _ in 0..alloc.capacity() {
                let p = alloc.allocate(&backend, 80, 1, |_| true).unwrap();
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
            let mut alloc = SourcePortAllocator::new(1024, 65535, core, 3);
            for _ in 0..100 {
                let p = alloc.allocate(&backend, 80, 1, |_| true).unwrap();
                assert_eq!(alloc.owner(p), Some(core));
            }
            assert_eq!(alloc.owner(22), None, "below the range");
            assert_eq!(alloc.owner(1027), None, "class 3 of 4 belongs to no core");
        }
    }

    #[test]
    fn a_backend_sees_a_port_again_only_after_a_full_cycle() {
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        let mut alloc = SourcePortAllocator::new(1024, 65535, 1, 2);
        let first = alloc.allocate(&backend, 80, 1, |_| true);
        for _ in 1..alloc.capacity() {
            assert_ne!(alloc.allocate(&backend, 80, 1, |_| true), first);
        }
        assert_eq!(alloc.allocate(&backend, 80, 1, |_| true), first);
    }

    #[test]
    fn busy_ports_are_skipped_and_exhaustion_is_reported() {
        let backend: Addr = Ipv4Addr::new(10, 0, 0, 1).into();
        let mut alloc = SourcePortAllocator::new(2000, 2003, 0, 1);
        assert_eq!(alloc.capacity(), 4);
        assert_eq!(alloc.allocate(&backend, 80, 4, |p| p == 2002), Some(2002));
        assert_eq!(alloc.allocate(&backend, 80, 8, |_| false), None);
    }
}
