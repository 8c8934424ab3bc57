//! The snapshot: everything the cores read, built by the control side off to
//! the side and published whole. It is the one table format the two halves
//! share (as Katran's control library and BPF program share their maps).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::addr::Addr;
use super::service::{Service, ServiceKey};
use crate::hash::StableState;
use crate::wire::MacAddr;

/// Index of a port in the appliance's port list (the DPDK port order).
pub type PortId = u16;

/// The appliance's own identity on one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub mac: MacAddr,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// Source-NAT flows that leave through this port to the port's own
    /// address, so that the backends' replies come back to the appliance
    /// whatever their default route is.
    pub masquerade: bool,
}

impl PortInfo {
    /// This port's address of the same family as `like`.
    #[inline]
    pub fn addr_for(&self, like: &Addr) -> Option<Addr> {
        if like.is_v4() {
            self.ipv4.map(Addr::from)
        } else {
            self.ipv6.map(Addr::from)
        }
    }

    #[inline]
    pub fn owns(&self, addr: &Addr) -> bool {
        self.addr_for(addr) == Some(*addr)
    }
}

/// A resolved next hop: which port, and which MAC to send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub port: PortId,
    pub mac: MacAddr,
}

/// An on-link prefix reached through a gateway (or a default route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: Addr,
    /// Prefix length in the family's own bits (IPv4 /24 is 24).
    pub len: u8,
    pub via: NextHop,
}

/// One published generation of the tables.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one with each publication; visible in the counters.
    pub generation: u64,
    /// (VIP, port, protocol) → Service. A hash map: O(1) whatever the count.
    pub services: HashMap<ServiceKey, Arc<Service>, StableState>,
    /// The appliance's ports, indexed by [`PortId`].
    pub ports: Vec<PortInfo>,
    /// Neighbours (pods, hosts on a link): address → port and MAC.
    pub neighbours: HashMap<Addr, NextHop, StableState>,
    /// Routes for addresses that are not neighbours, longest prefix first.
    pub routes: Vec<Route>,
}

impl Snapshot {
    #[inline]
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(key).map(|s| &**s)
    }

    /// Where to send a packet for `dst`: the neighbour table, then the routes.
    #[inline]
    pub fn next_hop(&self, dst: &Addr) -> Option<NextHop> {
        if let Some(hop) = self.neighbours.get(dst) {
            return Some(*hop);
        }
        self.routes.iter().find(|r| dst.in_prefix(&r.prefix, r.len)).map(|r| r.via)
    }

    /// Whether `addr` is one of the appliance's own addresses.
    #[inline]
    pub fn is_local(&self, addr: &Addr) -> bool {
        self.ports.iter().any(|p| p.owns(addr))
    }

    /// Sorts routes so that the first match is the longest prefix.
    pub fn sort_routes(&mut self) {
        self.routes.sort_by_key(|r| std::cmp::Reverse(r.len));
    }

    /// Approximate heap bytes of the tables, for the scale report.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(ServiceKey, Arc<Service>)>() + 8;
        let services: usize = self.services.values().map(|s| s.heap_bytes()).sum();
        self.services.capacity() * entry
            + services
            + self.neighbours.capacity() * (std::mem::size_of::<(Addr, NextHop)>() + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hop_prefers_neighbours_then_longest_prefix() {
        let mac = |b| MacAddr([2, 0, 0, 0, 0, b]);
        let mut snap = Snapshot::default();
        snap.routes.push(Route { prefix: Ipv4Addr::UNSPECIFIED.into(), len: 0, via: NextHop { port: 0, mac: mac(1) } });
        snap.routes.push(Route {
            prefix: Ipv4Addr::new(10, 244, 0, 0).into(),
            len: 16,
            via: NextHop { port: 1, mac: mac(2) },
        });
        snap.sort_routes();
        snap.neighbours.insert(Ipv4Addr::new(10, 244, 1, 5).into(), NextHop { port: 1, mac: mac(3) });
        assert_eq!(snap.next_hop(&Ipv4Addr::new(10, 244, 1, 5).into()).map(|h| h.mac), Some(mac(3)));
        assert_eq!(snap.next_hop(&Ipv4Addr::new(10, 244, 9, 9).into()).map(|h| h.mac), Some(mac(2)));
        assert_eq!(snap.next_hop(&Ipv4Addr::new(8, 8, 8, 8).into()).map(|h| h.mac), Some(mac(1)));
        assert_eq!(snap.next_hop(&"fd00::1".parse::<Ipv6Addr>().unwrap().into()), None);
    }
}
