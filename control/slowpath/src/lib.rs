//! The slow path: what the cores hand over because it is for the appliance
//! itself. Built on smoltcp's wire module, for both address families:
//!
//! - [`arp`] and [`ndp`] answer ARP requests and IPv6 Neighbor Solicitations
//!   for the appliance's addresses and for every VIP it serves (so that
//!   routers and clients can reach the VIPs on a link);
//! - [`echo`] answers ICMP and ICMPv6 echo for both;
//! - [`reject`] refuses connections to a VIP whose Service has no endpoint
//!   as kube-proxy does (TCP RST; ICMP / ICMPv6 port unreachable for UDP and
//!   SCTP);
//! - [`neighbours`] learns neighbours (address → port, MAC) from ARP and
//!   NDP, which the control loop puts into the next snapshot, and
//!   [`resolve`] asks for the Services' backends on the ports' on-link
//!   subnets (ARP requests, Neighbor Solicitations) with refresh and expiry.
//!
//! It runs on the control thread, off the packet path: replies go back to
//! the cores through a bounded inject ring, and nothing here can hold up
//! forwarding.
//!
//! It owns the appliance's own conversations on the wire; it must not
//! touch DPDK (frames come and go as bytes through the engine's rings) nor
//! the Service compiler.

#![deny(unsafe_code)]

mod arp;
mod echo;
mod emit;
mod ndp;
mod neighbours;
mod reject;
mod resolve;

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod testing;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use dataplane::tables::{Addr, NextHop, PortId, PortInfo, ServiceKey, Snapshot};
use dataplane::wire::MacAddr;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    NdiscRepr,
};

pub use neighbours::NEIGHBOUR_TTL;
pub use resolve::RESOLVE_RETRY;

use neighbours::Neighbours;
use resolve::Resolver;

/// Frames to send, as (port, frame).
type Out = Vec<(PortId, Vec<u8>)>;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowPathCounters {
    pub arp_replies: u64,
    /// Neighbor Advertisements sent in answer to Neighbor Solicitations.
    pub nd_advertisements: u64,
    /// ICMP and ICMPv6 echo replies.
    pub echo_replies: u64,
    /// Connections to a Service without endpoints, refused.
    pub rejects: u64,
    pub neighbours_learned: u64,
    /// ARP requests sent to resolve backends.
    pub arp_requests: u64,
    /// Neighbor Solicitations sent to resolve IPv6 backends.
    pub nd_solicitations: u64,
    /// Frames for the appliance that it does not answer (yet).
    pub unhandled: u64,
    /// Frames that did not parse or failed a check (checksum, NDP's hop
    /// limit of 255).
    pub malformed: u64,
}

pub struct SlowPath {
    ports: Vec<PortInfo>,
    vips: HashSet<IpAddr>,
    /// Service keys that have no endpoint for new connections.
    no_endpoints: HashSet<ServiceKey>,
    resolver: Resolver,
    neighbours: Neighbours,
    pub counters: SlowPathCounters,
}

impl Default for SlowPath {
    fn default() -> Self {
        SlowPath::new()
    }
}

impl SlowPath {
    pub fn new() -> SlowPath {
        SlowPath {
            ports: Vec::new(),
            vips: HashSet::new(),
            no_endpoints: HashSet::new(),
            resolver: Resolver::default(),
            neighbours: Neighbours::default(),
            counters: SlowPathCounters::default(),
        }
    }

    /// Takes the appliance's addresses, the VIPs and the backends to resolve
    /// from the tables in force.
    pub fn update_tables(&mut self, snap: &Snapshot) {
        self.ports = snap.ports.clone();
        self.vips = snap.services.keys().map(|k| k.vip.to_ip()).collect();
        self.no_endpoints = snap.services.iter().filter(|(_, s)| s.choose(0).is_none()).map(|(k, _)| *k).collect();
        self.resolver.set_backends(snap.services.values().flat_map(|s| s.backends.iter()).map(|b| b.addr.to_ip()));
    }

    /// The ports' on-link IPv4 subnets, where backends are resolved by ARP.
    pub fn set_on_link(&mut self, subnets: Vec<(PortId, Ipv4Addr, u8)>) {
        self.resolver.set_on_link_v4(subnets);
    }

    /// The ports' on-link IPv6 subnets, where backends are resolved by
    /// Neighbor Solicitation.
    pub fn set_on_link_v6(&mut self, subnets: Vec<(PortId, Ipv6Addr, u8)>) {
        self.resolver.set_on_link_v6(subnets);
    }

    fn port(&self, port: PortId) -> Option<&PortInfo> {
        self.ports.get(usize::from(port))
    }

    fn port_mac(&self, port: PortId) -> Option<MacAddr> {
        self.port(port).map(|p| p.mac)
    }

    /// Whether `ip` is the port's IPv4 address or a VIP.
    fn owns_v4(&self, port: PortId, ip: Ipv4Addr) -> bool {
        let on_port = self.port(port).is_some_and(|p| p.ipv4 == Some(ip));
        on_port || self.vips.contains(&IpAddr::V4(ip))
    }

    /// Whether `ip` is one of the port's IPv6 addresses (the configured one
    /// and the link-local one derived from its MAC) or a VIP.
    fn owns_v6(&self, port: PortId, ip: Ipv6Addr) -> bool {
        let on_port = self.port(port).is_some_and(|p| p.ipv6 == Some(ip) || ndp::link_local(p.mac) == ip);
        on_port || self.vips.contains(&IpAddr::V6(ip))
    }

    /// Handles one frame that arrived on `port`; replies go to `out` as
    /// (port, frame).
    pub fn handle(&mut self, port: PortId, frame: &[u8], now: Instant, out: &mut Vec<(PortId, Vec<u8>)>) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.counters.malformed += 1;
            return;
        };
        match eth.ethertype() {
            EthernetProtocol::Arp => self.arp(port, &eth, now, out),
            EthernetProtocol::Ipv4 => self.ipv4(port, &eth, out),
            EthernetProtocol::Ipv6 => self.ipv6(port, &eth, now, out),
            _ => self.counters.unhandled += 1,
        }
    }

    fn ipv4(&mut self, port: PortId, eth: &EthernetFrame<&[u8]>, out: &mut Out) {
        let parsed = Ipv4Packet::new_checked(eth.payload())
            .and_then(|ip| Ipv4Repr::parse(&ip, &ChecksumCapabilities::default()).map(|repr| (ip, repr)));
        let Ok((ip, ip_repr)) = parsed else {
            self.counters.malformed += 1;
            return;
        };
        match ip_repr.next_header {
            IpProtocol::Icmp => self.echo_v4(port, eth, &ip, &ip_repr, out),
            _ => self.reject_v4(port, eth, &ip, &ip_repr, out),
        }
    }

    fn ipv6(&mut self, port: PortId, eth: &EthernetFrame<&[u8]>, now: Instant, out: &mut Out) {
        let parsed = Ipv6Packet::new_checked(eth.payload()).and_then(|ip| Ipv6Repr::parse(&ip).map(|repr| (ip, repr)));
        let Ok((ip, ip_repr)) = parsed else {
            self.counters.malformed += 1;
            return;
        };
        match ip_repr.next_header {
            IpProtocol::Icmpv6 => self.icmpv6(port, eth, &ip, &ip_repr, now, out),
            _ => self.reject_v6(port, eth, &ip, &ip_repr, out),
        }
    }

    /// ICMPv6: Neighbour Discovery and echo; the rest (errors, router
    /// messages, MLD) is not the appliance's business.
    fn icmpv6(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv6Packet<&[u8]>,
        ip_repr: &Ipv6Repr,
        now: Instant,
        out: &mut Out,
    ) {
        // The parser verifies the checksum (over the pseudo-header) and
        // NDP's code 0.
        let caps = ChecksumCapabilities::default();
        let parsed = Icmpv6Packet::new_checked(ip.payload())
            .and_then(|icmp| Icmpv6Repr::parse(&ip_repr.src_addr, &ip_repr.dst_addr, &icmp, &caps));
        match parsed {
            Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, lladdr })) => {
                self.neighbor_solicit(port, eth, ip_repr, target_addr, lladdr, now, out)
            }
            Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { flags, target_addr, lladdr })) => {
                self.neighbor_advert(port, eth, ip_repr, flags, target_addr, lladdr, now)
            }
            Ok(Icmpv6Repr::EchoRequest { ident, seq_no, data }) => {
                self.echo_v6(port, eth, ip_repr, ident, seq_no, data, out)
            }
            Ok(_) => self.counters.unhandled += 1,
            Err(_) => self.counters.malformed += 1,
        }
    }

    /// The neighbours learned from ARP and NDP, if they changed since the
    /// last call.
    pub fn take_changes(&mut self) -> Option<HashMap<Addr, NextHop>> {
        self.neighbours.take_changes()
    }

    /// Forgets neighbours not heard from within [`NEIGHBOUR_TTL`].
    pub fn expire(&mut self, now: Instant) {
        self.neighbours.expire(now);
    }

    /// Records a neighbour heard from on `port`, counting it when it is new
    /// or moved.
    fn learn(&mut self, ip: IpAddr, port: PortId, mac: MacAddr, now: Instant) {
        // An address of the appliance's own is never a neighbour: whoever
        // claims it is in conflict with us, and the snapshot must not send
        // our own traffic there.
        let ours = match ip {
            IpAddr::V4(v4) => self.owns_v4(port, v4),
            IpAddr::V6(v6) => self.owns_v6(port, v6),
        };
        if !ours && self.neighbours.learn(ip, NextHop { port, mac }, now) {
            self.counters.neighbours_learned += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ndp::{multicast_mac, solicited_node};
    use super::testing::*;
    use super::*;
    use dataplane::wire::build::Transport;

    /// One frame of each kind the slow path answers.
    fn answered_frames() -> Vec<Vec<u8>> {
        let asker = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x50);
        let group = solicited_node(PORT_V6);
        let syn = Transport::Tcp { src_port: 40000, dst_port: 80, flags: 0x02, seq: 1, ack: 0 };
        let udp = Transport::Udp { src_port: 40000, dst_port: 53 };
        vec![
            arp_request(CLIENT_MAC, Ipv4Addr::new(192, 0, 2, 50), PORT_V4),
            echo_request_v4(Ipv4Addr::new(192, 0, 2, 50), VIP_V4, 1, 1, b"ping"),
            frame_v4(Ipv4Addr::new(192, 0, 2, 50), VIP_V4, syn, b""),
            frame_v4(Ipv4Addr::new(192, 0, 2, 50), VIP_V4, udp, b"q"),
            neighbor_solicit(CLIENT_MAC, multicast_mac(group).0, asker, group, PORT_V6, Some(CLIENT_MAC), 255),
            echo_request_v6(CLIENT_V6, VIP_V6, 1, 1, b"ping"),
            frame_v6(CLIENT_V6, VIP_V6, syn, b""),
            frame_v6(CLIENT_V6, VIP_V6, udp, b"q"),
        ]
    }

    #[test]
    fn every_kind_is_answered_whole_and_no_truncation_is() {
        for frame in answered_frames() {
            let mut s = slow_path();
            let mut out = Vec::new();
            s.handle(0, &frame, Instant::now(), &mut out);
            assert_eq!(out.len(), 1, "the whole frame is answered");
            for len in 0..frame.len() {
                let mut s = slow_path();
                s.handle(0, &frame[..len], Instant::now(), &mut out);
                assert_eq!(out.len(), 1, "a frame cut to {len} bytes is not answered");
                assert_eq!(s.counters.malformed, 1, "a frame cut to {len} bytes is counted");
            }
        }
    }

    #[test]
    fn garbage_is_ignored_without_panic() {
        // xorshift64: reproducible noise without a dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut s = slow_path();
        s.set_on_link(vec![(0, Ipv4Addr::new(10, 244, 1, 0), 24)]);
        s.set_on_link_v6(vec![(0, Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 0), 64)]);
        let mut out = Vec::new();
        let seeds = answered_frames();
        let now = Instant::now();
        for round in 0..20_000u32 {
            let mut frame = seeds[round as usize % seeds.len()].clone();
            // Flip a few bytes past the Ethernet header, sometimes cut or
            // extend the frame; and sometimes send pure noise.
            if round % 10 == 0 {
                frame = (0..(next() % 200) as usize).map(|_| next() as u8).collect();
            } else {
                for _ in 0..1 + next() % 4 {
                    let at = 14 + (next() as usize) % (frame.len() - 14);
                    frame[at] ^= (next() as u8) | 1;
                }
                match next() % 4 {
                    0 => frame.truncate((next() as usize) % (frame.len() + 1)),
                    1 => frame.extend((0..next() % 64).map(|_| next() as u8)),
                    _ => {}
                }
            }
            s.handle((next() % 3) as u16, &frame, now, &mut out);
        }
        s.resolve(now, &mut out);
        assert!(out.iter().all(|(port, f)| *port == 0 && f.len() >= 14), "answers only on the port that exists");
        let c = s.counters;
        assert!(c.malformed > 1000, "most garbage is counted as malformed: {c:?}");
    }
}
