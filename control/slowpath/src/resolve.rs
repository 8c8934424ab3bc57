//! Resolving the Services' backends on the ports' on-link subnets: which
//! backends to ask for now (unresolved, or half-way to expiry, and not asked
//! for within [`RESOLVE_RETRY`]), then an ARP request or a Neighbor
//! Solicitation for each.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use dataplane::tables::{Addr, PortId};

use super::neighbours::Neighbours;
use super::{arp, ndp, Out, SlowPath};

/// A backend is asked for again this often while unresolved, and refreshed
/// when its entry is half-way to expiry.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Resolver {
    /// The Services' backends, both families.
    backends: HashSet<IpAddr>,
    /// On-link subnets: (port, network, prefix length in the family's bits).
    on_link_v4: Vec<(PortId, Addr, u8)>,
    on_link_v6: Vec<(PortId, Addr, u8)>,
    /// When each unresolved backend was last asked for.
    asked: HashMap<IpAddr, Instant>,
}

impl Resolver {
    pub(super) fn set_backends(&mut self, backends: impl Iterator<Item = IpAddr>) {
        self.backends = backends.collect();
        self.asked.retain(|ip, _| self.backends.contains(ip));
    }

    pub(super) fn set_on_link_v4(&mut self, subnets: Vec<(PortId, Ipv4Addr, u8)>) {
        self.on_link_v4 = subnets.into_iter().map(|(port, net, len)| (port, Addr::from(net), len)).collect();
    }

    pub(super) fn set_on_link_v6(&mut self, subnets: Vec<(PortId, Ipv6Addr, u8)>) {
        self.on_link_v6 = subnets.into_iter().map(|(port, net, len)| (port, Addr::from(net), len)).collect();
    }

    /// The port whose on-link subnet holds `ip`.
    fn port_for(&self, ip: IpAddr) -> Option<PortId> {
        let addr = Addr::from(ip);
        let subnets = if ip.is_ipv4() { &self.on_link_v4 } else { &self.on_link_v6 };
        subnets.iter().find(|(_, net, len)| addr.in_prefix(net, *len)).map(|(port, _, _)| *port)
    }

    /// The on-link backends to ask for now, as (port, backend).
    fn due(&self, neighbours: &Neighbours, now: Instant) -> Vec<(PortId, IpAddr)> {
        self.backends
            .iter()
            .filter(|ip| !neighbours.is_fresh(ip, now))
            .filter(|ip| self.asked.get(ip).is_none_or(|t| now.duration_since(*t) >= RESOLVE_RETRY))
            .filter_map(|ip| self.port_for(*ip).map(|port| (port, *ip)))
            .collect()
    }
}

impl SlowPath {
    /// ARP requests and Neighbor Solicitations for the backends on an
    /// on-link subnet that are not resolved (or are half-way to expiry), at
    /// most one per backend per [`RESOLVE_RETRY`].
    pub fn resolve(&mut self, now: Instant, out: &mut Vec<(PortId, Vec<u8>)>) {
        for (port, ip) in self.resolver.due(&self.neighbours, now) {
            if self.ask(port, ip, out) {
                self.resolver.asked.insert(ip, now);
            }
        }
    }

    /// Sends the request for `ip` out of `port`; false when the port cannot
    /// ask (no such port, or no IPv4 address to ask from).
    fn ask(&mut self, port: PortId, ip: IpAddr, out: &mut Out) -> bool {
        let Some(info) = self.port(port).cloned() else { return false };
        let frame = match ip {
            IpAddr::V4(target) => {
                let Some(frame) = info.ipv4.map(|ours| arp::request(info.mac, ours, target)) else { return false };
                self.counters.arp_requests += 1;
                frame
            }
            IpAddr::V6(target) => {
                // RFC 4861 §7.2.2: from an address of the interface; the
                // configured one, which the backends' subnet shares, or the
                // link-local one.
                let ours = info.ipv6.unwrap_or_else(|| ndp::link_local(info.mac));
                let frame = ndp::solicitation(info.mac, ours, target);
                self.counters.nd_solicitations += 1;
                frame
            }
        };
        out.push((port, frame));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame};

    /// A snapshot whose one Service has an on-link and an off-link backend
    /// of each family.
    fn resolving() -> SlowPath {
        let backends = [POD_V4, Ipv4Addr::new(10, 9, 9, 9)].into_iter().map(IpAddr::V4);
        let backends_v6 = [POD_V6, "fd00:99::9".parse().expect("an IPv6 address")].into_iter().map(IpAddr::V6);
        let mut snap = snapshot(false);
        add_service(&mut snap, VIP_V4.into(), 80, dataplane::tables::proto::TCP, backends.collect());
        add_service(&mut snap, VIP_V6.into(), 80, dataplane::tables::proto::TCP, backends_v6.collect());
        let mut s = SlowPath::new();
        s.update_tables(&snap);
        s.set_on_link(vec![(0, Ipv4Addr::new(10, 244, 1, 0), 24)]);
        s.set_on_link_v6(vec![(0, "fd00:10:244:1::".parse().expect("an IPv6 address"), 64)]);
        s
    }

    #[test]
    fn asks_for_on_link_backends_of_both_families_only() {
        let mut s = resolving();
        let mut out = Vec::new();
        s.resolve(Instant::now(), &mut out);
        assert_eq!(out.len(), 2, "one ARP request and one NS, nothing for off-link backends");
        let (mut arp_targets, mut ns_targets) = (Vec::new(), Vec::new());
        for (port, frame) in &out {
            assert_eq!(*port, 0);
            let eth = EthernetFrame::new_checked(&frame[..]).expect("an Ethernet frame");
            match eth.ethertype() {
                smoltcp::wire::EthernetProtocol::Arp => {
                    let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).expect("ARP")).expect("ARP");
                    let ArpRepr::EthernetIpv4 { operation, target_protocol_addr, .. } = repr else {
                        panic!("not Ethernet/IPv4 ARP")
                    };
                    assert_eq!(operation, ArpOperation::Request);
                    arp_targets.push(target_protocol_addr);
                }
                _ => ns_targets.push(check_solicitation(frame, OUR_MAC, PORT_V6)),
            }
        }
        assert_eq!((arp_targets, ns_targets), (vec![POD_V4], vec![POD_V6]));
        assert_eq!((s.counters.arp_requests, s.counters.nd_solicitations), (1, 1));
    }

    #[test]
    fn retries_each_second_stops_when_answered_and_refreshes_half_way() {
        let mut s = resolving();
        let t0 = Instant::now();
        let mut out = Vec::new();
        s.resolve(t0, &mut out);
        assert_eq!(out.len(), 2);
        s.resolve(t0 + Duration::from_millis(500), &mut out);
        assert_eq!(out.len(), 2, "not asked again within a second");
        s.resolve(t0 + RESOLVE_RETRY, &mut out);
        assert_eq!(out.len(), 4, "unanswered: asked again after a second");

        // Both pods answer.
        let pod_mac = MacAddr([2, 0, 0, 0, 0, 5]);
        s.handle(0, &arp_reply(pod_mac, POD_V4, OUR_MAC, PORT_V4), t0 + RESOLVE_RETRY, &mut out);
        let na = advertisement(pod_mac, OUR_MAC.0, POD_V6, PORT_V6, POD_V6, Some(pod_mac), 0x60, 255);
        s.handle(0, &na, t0 + RESOLVE_RETRY, &mut out);
        assert_eq!(out.len(), 4, "answers are not answered");
        let learned = s.take_changes().expect("neighbours were learned");
        let hop = dataplane::tables::NextHop { port: 0, mac: pod_mac };
        assert_eq!((learned[&Addr::from(POD_V4)], learned[&Addr::from(POD_V6)]), (hop, hop));

        let answered = t0 + RESOLVE_RETRY;
        s.resolve(answered + Duration::from_secs(5), &mut out);
        assert_eq!(out.len(), 4, "resolved: no more requests");
        s.resolve(answered + super::super::NEIGHBOUR_TTL / 2 + Duration::from_secs(1), &mut out);
        assert_eq!(out.len(), 6, "both refreshed half-way to expiry");
    }

    #[test]
    fn solicits_from_the_link_local_address_without_a_configured_one() {
        let mut snap = snapshot(false);
        snap.ports[0].ipv6 = None;
        add_service(&mut snap, VIP_V6.into(), 80, dataplane::tables::proto::TCP, vec![IpAddr::V6(POD_V6)]);
        let mut s = SlowPath::new();
        s.update_tables(&snap);
        s.set_on_link_v6(vec![(0, "fd00:10:244:1::".parse().expect("an IPv6 address"), 64)]);
        let mut out = Vec::new();
        s.resolve(Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(check_solicitation(&out[0].1, OUR_MAC, ndp::link_local(OUR_MAC)), POD_V6);
    }
}
