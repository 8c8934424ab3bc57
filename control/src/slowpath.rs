//! The slow path: what the cores hand over because it is for the appliance
//! itself. Built on smoltcp's wire module, it answers ARP for the
//! appliance's addresses and for every IPv4 VIP it serves (so that routers
//! and clients can reach the VIPs on a link), answers ICMP echo for both,
//! rejects connections to a VIP whose Service has no endpoint as kube-proxy
//! does (TCP RST, ICMP port unreachable for UDP and SCTP), and learns
//! neighbours (address → port, MAC) from ARP, which the control loop puts
//! into the next snapshot.
//!
//! It runs on the control thread, off the packet path: replies go back to
//! the cores through a bounded inject ring, and nothing here can hold up
//! forwarding.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use dataplane::tables::{proto, Addr, NextHop, PortId, PortInfo, ServiceKey, Snapshot};
use dataplane::wire::MacAddr;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber,
};

/// A learned neighbour is forgotten after this long without news.
pub const NEIGHBOUR_TTL: Duration = Duration::from_secs(300);
/// A backend is asked for again (ARP) this often while unresolved, and
/// refreshed when its entry is half-way to expiry.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowPathCounters {
    pub arp_replies: u64,
    pub echo_replies: u64,
    /// Connections to a Service without endpoints, refused.
    pub rejects: u64,
    pub neighbours_learned: u64,
    /// ARP requests sent to resolve backends.
    pub arp_requests: u64,
    /// Frames for the appliance that it does not answer (yet).
    pub unhandled: u64,
    /// Frames that did not parse.
    pub malformed: u64,
}

struct Neighbour {
    hop: NextHop,
    seen: Instant,
}

pub struct SlowPath {
    ports: Vec<PortInfo>,
    vips: HashSet<Ipv4Addr>,
    /// Service keys that have no endpoint for new connections.
    no_endpoints: HashSet<ServiceKey>,
    /// IPv4 backends of the Services, to resolve.
    backends: HashSet<Ipv4Addr>,
    /// On-link subnets: (port, network, prefix length).
    on_link: Vec<(PortId, Ipv4Addr, u8)>,
    /// When each unresolved backend was last asked for.
    asked: HashMap<Ipv4Addr, Instant>,
    neighbours: HashMap<IpAddr, Neighbour>,
    /// The neighbour table changed since the last `take_changes`.
    changed: bool,
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
            backends: HashSet::new(),
            on_link: Vec::new(),
            asked: HashMap::new(),
            neighbours: HashMap::new(),
            changed: false,
            counters: SlowPathCounters::default(),
        }
    }

    /// Takes the appliance's addresses and the VIPs from the tables in force.
    pub fn update_tables(&mut self, snap: &Snapshot) {
        self.ports = snap.ports.clone();
        self.vips = snap.services.keys().filter(|k| k.vip.is_v4()).map(|k| Ipv4Addr::from(k.vip.v4_octets())).collect();
        self.no_endpoints = snap.services.iter().filter(|(_, s)| s.choose(0).is_none()).map(|(k, _)| *k).collect();
        self.backends = snap
            .services
            .values()
            .flat_map(|s| s.backends.iter())
            .filter(|b| b.addr.is_v4())
            .map(|b| Ipv4Addr::from(b.addr.v4_octets()))
            .collect();
    }

    /// The ports' on-link IPv4 subnets, where backends are resolved by ARP.
    pub fn set_on_link(&mut self, subnets: Vec<(PortId, Ipv4Addr, u8)>) {
        self.on_link = subnets;
    }

    fn owns(&self, port: PortId, ip: Ipv4Addr) -> bool {
        let on_port = self.ports.get(usize::from(port)).is_some_and(|p| p.ipv4 == Some(ip));
        on_port || self.vips.contains(&ip)
    }

    fn port_mac(&self, port: PortId) -> Option<MacAddr> {
        self.ports.get(usize::from(port)).map(|p| p.mac)
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
            _ => self.counters.unhandled += 1,
        }
    }

    fn learn(&mut self, ip: Ipv4Addr, port: PortId, mac: MacAddr, now: Instant) {
        if ip.is_unspecified() || mac.is_multicast() {
            return;
        }
        let hop = NextHop { port, mac };
        match self.neighbours.insert(IpAddr::V4(ip), Neighbour { hop, seen: now }) {
            Some(old) if old.hop == hop => {}
            _ => {
                self.changed = true;
                self.counters.neighbours_learned += 1;
            }
        }
    }

    fn arp(&mut self, port: PortId, eth: &EthernetFrame<&[u8]>, now: Instant, out: &mut Vec<(PortId, Vec<u8>)>) {
        let repr = ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p));
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = repr
        else {
            self.counters.malformed += 1;
            return;
        };
        self.learn(source_protocol_addr, port, MacAddr(source_hardware_addr.0), now);
        if operation != ArpOperation::Request || !self.owns(port, target_protocol_addr) {
            return;
        }
        let Some(our_mac) = self.port_mac(port) else { return };
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(our_mac.0),
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let eth_repr = EthernetRepr {
            src_addr: EthernetAddress(our_mac.0),
            dst_addr: source_hardware_addr,
            ethertype: EthernetProtocol::Arp,
        };
        let mut buf = vec![0u8; eth_repr.buffer_len() + reply.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth_repr.emit(&mut frame);
        reply.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        self.counters.arp_replies += 1;
        out.push((port, buf));
    }

    fn ipv4(&mut self, port: PortId, eth: &EthernetFrame<&[u8]>, out: &mut Vec<(PortId, Vec<u8>)>) {
        let caps = ChecksumCapabilities::default();
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            self.counters.malformed += 1;
            return;
        };
        let Ok(ip_repr) = Ipv4Repr::parse(&ip, &caps) else {
            self.counters.malformed += 1;
            return;
        };
        if ip_repr.next_header != IpProtocol::Icmp {
            self.reject(port, eth, &ip, &ip_repr, out);
            return;
        }
        if !self.owns(port, ip_repr.dst_addr) {
            self.counters.unhandled += 1;
            return;
        }
        let icmp = Icmpv4Packet::new_checked(ip.payload()).and_then(|p| {
            let repr = Icmpv4Repr::parse(&p, &caps)?;
            Ok(match repr {
                Icmpv4Repr::EchoRequest { ident, seq_no, data } => Some((ident, seq_no, data.to_vec())),
                _ => None,
            })
        });
        let Ok(Some((ident, seq_no, data))) = icmp else {
            self.counters.unhandled += 1;
            return;
        };
        let Some(our_mac) = self.port_mac(port) else { return };
        let reply = Icmpv4Repr::EchoReply { ident, seq_no, data: &data };
        let ip_reply = Ipv4Repr {
            src_addr: ip_repr.dst_addr,
            dst_addr: ip_repr.src_addr,
            next_header: IpProtocol::Icmp,
            payload_len: reply.buffer_len(),
            hop_limit: 64,
        };
        let eth_repr = EthernetRepr {
            src_addr: EthernetAddress(our_mac.0),
            dst_addr: eth.src_addr(),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; eth_repr.buffer_len() + ip_reply.buffer_len() + reply.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth_repr.emit(&mut frame);
        let mut ip_packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        ip_reply.emit(&mut ip_packet, &caps);
        reply.emit(&mut Icmpv4Packet::new_unchecked(ip_packet.payload_mut()), &caps);
        self.counters.echo_replies += 1;
        out.push((port, buf));
    }

    /// A connection to a VIP whose Service has no endpoint is refused, as
    /// kube-proxy's reject rules do: TCP gets a RST, UDP and SCTP an ICMP
    /// port unreachable.
    fn reject(
        &mut self,
        port: PortId,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        ip_repr: &Ipv4Repr,
        out: &mut Vec<(PortId, Vec<u8>)>,
    ) {
        let l4 = ip.payload();
        let (Some(ports), Some(our_mac)) = (l4.get(0..4), self.port_mac(port)) else {
            self.counters.unhandled += 1;
            return;
        };
        let protocol = u8::from(ip_repr.next_header);
        let key = ServiceKey {
            vip: Addr::from(ip_repr.dst_addr),
            port: u16::from_be_bytes([ports[2], ports[3]]),
            proto: protocol,
        };
        if !self.no_endpoints.contains(&key) {
            self.counters.unhandled += 1;
            return;
        }
        let caps = ChecksumCapabilities::default();
        let eth_repr = EthernetRepr {
            src_addr: EthernetAddress(our_mac.0),
            dst_addr: eth.src_addr(),
            ethertype: EthernetProtocol::Ipv4,
        };
        let frame = if protocol == proto::TCP {
            let (src, dst) = (IpAddress::Ipv4(ip_repr.src_addr), IpAddress::Ipv4(ip_repr.dst_addr));
            let Ok(segment) = TcpPacket::new_checked(l4) else { return };
            if segment.rst() {
                return; // never answer a reset
            }
            // RFC 9293 §3.10.7.1: answer an ACK with its acknowledged number;
            // anything else with RST,ACK acknowledging what it sent.
            let (seq_number, ack_number) = if segment.ack() {
                (segment.ack_number(), None)
            } else {
                (TcpSeqNumber(0), Some(segment.seq_number() + segment.segment_len()))
            };
            let rst = TcpRepr {
                src_port: segment.dst_port(),
                dst_port: segment.src_port(),
                control: TcpControl::Rst,
                seq_number,
                ack_number,
                window_len: 0,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload: &[],
            };
            let ip_reply = Ipv4Repr {
                src_addr: ip_repr.dst_addr,
                dst_addr: ip_repr.src_addr,
                next_header: IpProtocol::Tcp,
                payload_len: rst.buffer_len(),
                hop_limit: 64,
            };
            let mut buf = vec![0u8; eth_repr.buffer_len() + ip_reply.buffer_len() + rst.buffer_len()];
            let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
            eth_repr.emit(&mut frame);
            let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
            ip_reply.emit(&mut packet, &caps);
            rst.emit(&mut TcpPacket::new_unchecked(packet.payload_mut()), &dst, &src, &caps);
            buf
        } else {
            // The original header and the first 8 bytes of its payload.
            let quoted = &l4[..l4.len().min(8)];
            let unreachable = Icmpv4Repr::DstUnreachable {
                reason: Icmpv4DstUnreachable::PortUnreachable,
                header: *ip_repr,
                data: quoted,
            };
            let ip_reply = Ipv4Repr {
                src_addr: ip_repr.dst_addr,
                dst_addr: ip_repr.src_addr,
                next_header: IpProtocol::Icmp,
                payload_len: unreachable.buffer_len(),
                hop_limit: 64,
            };
            let mut buf = vec![0u8; eth_repr.buffer_len() + ip_reply.buffer_len() + unreachable.buffer_len()];
            let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
            eth_repr.emit(&mut frame);
            let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
            ip_reply.emit(&mut packet, &caps);
            unreachable.emit(&mut Icmpv4Packet::new_unchecked(packet.payload_mut()), &caps);
            buf
        };
        self.counters.rejects += 1;
        out.push((port, frame));
    }

    /// ARP requests for the backends on an on-link subnet that are not
    /// resolved (or are half-way to expiry), at most one per backend per
    /// [`RESOLVE_RETRY`].
    pub fn resolve(&mut self, now: Instant, out: &mut Vec<(PortId, Vec<u8>)>) {
        let mut wanted = Vec::new();
        for ip in &self.backends {
            let fresh =
                self.neighbours.get(&IpAddr::V4(*ip)).is_some_and(|n| now.duration_since(n.seen) < NEIGHBOUR_TTL / 2);
            let recently = self.asked.get(ip).is_some_and(|t| now.duration_since(*t) < RESOLVE_RETRY);
            if fresh || recently {
                continue;
            }
            let on_link = self.on_link.iter().find(|(_, net, len)| {
                let mask = if *len == 0 { 0 } else { u32::MAX << (32 - u32::from((*len).min(32))) };
                u32::from(*ip) & mask == u32::from(*net) & mask
            });
            if let Some((port, _, _)) = on_link {
                wanted.push((*port, *ip));
            }
        }
        for (port, ip) in wanted {
            let Some(info) = self.ports.get(usize::from(port)) else { continue };
            let Some(our_ip) = info.ipv4 else { continue };
            let request = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(info.mac.0),
                source_protocol_addr: our_ip,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: ip,
            };
            let eth = EthernetRepr {
                src_addr: EthernetAddress(info.mac.0),
                dst_addr: EthernetAddress::BROADCAST,
                ethertype: EthernetProtocol::Arp,
            };
            let mut buf = vec![0u8; eth.buffer_len() + request.buffer_len()];
            let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
            eth.emit(&mut frame);
            request.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
            self.asked.insert(ip, now);
            self.counters.arp_requests += 1;
            out.push((port, buf));
        }
        self.asked.retain(|ip, _| self.backends.contains(ip));
    }

    /// Forgets neighbours not heard from within [`NEIGHBOUR_TTL`].
    pub fn expire(&mut self, now: Instant) {
        let before = self.neighbours.len();
        self.neighbours.retain(|_, n| now.duration_since(n.seen) < NEIGHBOUR_TTL);
        self.changed |= self.neighbours.len() != before;
    }

    /// The learned neighbours if they changed since the last call.
    pub fn take_changes(&mut self) -> Option<HashMap<Addr, NextHop>> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some(self.neighbours.iter().map(|(ip, n)| (Addr::from(*ip), n.hop)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::tables::{proto, Service, ServiceKey, ServiceSpec};
    use std::sync::Arc;

    const OUR_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xc0]);

    fn slow_path() -> SlowPath {
        let mut snap = Snapshot::default();
        snap.ports.push(PortInfo {
            mac: OUR_MAC,
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ipv6: None,
            masquerade: false,
        });
        let key = ServiceKey { vip: Ipv4Addr::new(10, 96, 0, 10).into(), port: 80, proto: proto::TCP };
        let spec = ServiceSpec { name: "default/web".into(), key, backends: vec![], affinity_timeout_s: 0 };
        snap.services.insert(key, Arc::new(Service::build(spec, 1 << 17)));
        let mut s = SlowPath::new();
        s.update_tables(&snap);
        s
    }

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: CLIENT_MAC,
            source_protocol_addr: Ipv4Addr::new(192, 0, 2, 50),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth = EthernetRepr {
            src_addr: CLIENT_MAC,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let mut buf = vec![0u8; eth.buffer_len() + arp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        buf
    }

    #[test]
    fn answers_arp_for_its_address_and_vips_and_learns_the_asker() {
        let mut s = slow_path();
        let mut out = Vec::new();
        for target in [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(10, 96, 0, 10), Ipv4Addr::new(192, 0, 2, 9)] {
            s.handle(0, &arp_request(target), Instant::now(), &mut out);
        }
        assert_eq!(out.len(), 2, "no answer for an address that is not ours");
        for (i, target) in [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(10, 96, 0, 10)].iter().enumerate() {
            let frame = EthernetFrame::new_checked(&out[i].1[..]).unwrap();
            assert_eq!(frame.dst_addr(), CLIENT_MAC);
            let reply = ArpRepr::parse(&ArpPacket::new_checked(frame.payload()).unwrap()).unwrap();
            let ArpRepr::EthernetIpv4 { operation, source_hardware_addr, source_protocol_addr, .. } = reply else {
                panic!()
            };
            assert_eq!(
                (operation, source_hardware_addr.0, source_protocol_addr),
                (ArpOperation::Reply, OUR_MAC.0, *target)
            );
        }
        let learned = s.take_changes().expect("a neighbour was learned");
        assert_eq!(learned[&Addr::from(Ipv4Addr::new(192, 0, 2, 50))].mac, MacAddr(CLIENT_MAC.0));
        assert!(s.take_changes().is_none());
        s.expire(Instant::now() + NEIGHBOUR_TTL);
        assert!(s.take_changes().is_some_and(|n| n.is_empty()));
    }

    #[test]
    fn resolves_on_link_backends_by_arp_and_learns_the_answer() {
        let mut snap = Snapshot::default();
        snap.ports.push(PortInfo {
            mac: OUR_MAC,
            ipv4: Some(Ipv4Addr::new(10, 244, 1, 254)),
            ipv6: None,
            masquerade: true,
        });
        let key = ServiceKey { vip: Ipv4Addr::new(10, 96, 0, 10).into(), port: 80, proto: proto::TCP };
        let backends = [Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 9, 9, 9)]
            .iter()
            .map(|ip| dataplane::tables::Backend {
                addr: (*ip).into(),
                port: 8080,
                weight: 1,
                state: dataplane::tables::BackendState::Ready,
            })
            .collect();
        let spec = ServiceSpec { name: "default/web".into(), key, backends, affinity_timeout_s: 0 };
        snap.services.insert(key, Arc::new(Service::build(spec, 1 << 17)));
        let mut s = SlowPath::new();
        s.update_tables(&snap);
        s.set_on_link(vec![(0, Ipv4Addr::new(10, 244, 1, 0), 24)]);

        let t0 = Instant::now();
        let mut out = Vec::new();
        s.resolve(t0, &mut out);
        assert_eq!(out.len(), 1, "only the on-link backend is asked for");
        let frame = EthernetFrame::new_checked(&out[0].1[..]).unwrap();
        let ArpRepr::EthernetIpv4 { operation, target_protocol_addr, .. } =
            ArpRepr::parse(&ArpPacket::new_checked(frame.payload()).unwrap()).unwrap()
        else {
            panic!()
        };
        assert_eq!((operation, target_protocol_addr), (ArpOperation::Request, Ipv4Addr::new(10, 244, 1, 5)));
        s.resolve(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out.len(), 1, "not asked again within a second");

        // The pod answers; the next resolve leaves it alone.
        let pod_mac = EthernetAddress([2, 0, 0, 0, 0, 5]);
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: pod_mac,
            source_protocol_addr: Ipv4Addr::new(10, 244, 1, 5),
            target_hardware_addr: EthernetAddress(OUR_MAC.0),
            target_protocol_addr: Ipv4Addr::new(10, 244, 1, 254),
        };
        let eth =
            EthernetRepr { src_addr: pod_mac, dst_addr: EthernetAddress(OUR_MAC.0), ethertype: EthernetProtocol::Arp };
        let mut buf = vec![0u8; eth.buffer_len() + reply.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut f);
        reply.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        s.handle(0, &buf, t0, &mut out);
        assert_eq!(out.len(), 1, "a reply is not answered");
        let learned = s.take_changes().unwrap();
        assert_eq!(learned[&Addr::from(Ipv4Addr::new(10, 244, 1, 5))], NextHop { port: 0, mac: MacAddr(pod_mac.0) });
        s.resolve(t0 + Duration::from_secs(2), &mut out);
        assert_eq!(out.len(), 1, "resolved: no more requests");
        s.resolve(t0 + NEIGHBOUR_TTL / 2 + Duration::from_secs(1), &mut out);
        assert_eq!(out.len(), 2, "refreshed half-way to expiry");
    }

    #[test]
    fn answers_ping_and_ignores_garbage() {
        let mut s = slow_path();
        let caps = ChecksumCapabilities::default();
        let echo = Icmpv4Repr::EchoRequest { ident: 7, seq_no: 3, data: b"ping!" };
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 50),
            dst_addr: Ipv4Addr::new(10, 96, 0, 10),
            next_header: IpProtocol::Icmp,
            payload_len: echo.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: CLIENT_MAC,
            dst_addr: EthernetAddress(OUR_MAC.0),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + echo.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut frame);
        let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
        ip.emit(&mut packet, &caps);
        echo.emit(&mut Icmpv4Packet::new_unchecked(packet.payload_mut()), &caps);

        let mut out = Vec::new();
        s.handle(0, &buf, Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        let frame = EthernetFrame::new_checked(&out[0].1[..]).unwrap();
        let ip = Ipv4Packet::new_checked(frame.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (Ipv4Addr::new(10, 96, 0, 10), Ipv4Addr::new(192, 0, 2, 50)));
        let reply = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap(), &caps).unwrap();
        assert_eq!(reply, Icmpv4Repr::EchoReply { ident: 7, seq_no: 3, data: b"ping!" });

        for junk in [&b""[..], &[0xffu8; 13][..], &buf[..20]] {
            s.handle(0, junk, Instant::now(), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert!(s.counters.malformed >= 2);
    }
}
