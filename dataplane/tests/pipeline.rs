//! The forwarding pipeline, packet by packet: NAT, replies, drops, the slow
//! path, affinity, and table changes under established flows.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::pipeline::{Pipeline, PipelineConfig, Verdict};
use dataplane::stats::DropReason;
use dataplane::tables::{proto, Backend, BackendState, ServiceKey, Snapshot};
use dataplane::wire::build::{FrameSpec, Transport};
use dataplane::wire::{Ipv4Packet, Ipv6Packet, MacAddr, TcpPacket, UdpPacket};
use proptest::prelude::*;
use testing::tables::{self, add_service, TwoPorts};

const PORT_MAC: [MacAddr; 2] = [MacAddr([2, 0, 0, 0, 0, 0xa0]), MacAddr([2, 0, 0, 0, 0, 0xa1])];
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc0]);
const POD_GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb0]);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x10);
const MASQ: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

fn backend(last: u8) -> Backend {
    tables::backend(Ipv4Addr::new(10, 244, 1, last), 8080)
}

/// Port 0 faces clients, port 1 the pods (10.244.0.0/16, fd00:244::/32).
fn snapshot(masquerade: bool, backends: Vec<Backend>) -> Snapshot {
    let mut snap = TwoPorts {
        client_mac: PORT_MAC[0],
        client_ipv4: Ipv4Addr::new(192, 0, 2, 1),
        pod_mac: PORT_MAC[1],
        pod_ipv4: MASQ,
        pod_ipv6: Some(Ipv6Addr::new(0xfd00, 0x244, 0, 0, 0, 0, 0, 1)),
        masquerade,
        gateway_mac: POD_GW_MAC,
    }
    .snapshot();
    add_service(&mut snap, "default/svc-80", (IpAddr::V4(VIP), 80, proto::TCP), backends.clone(), 0);
    add_service(&mut snap, "default/svc-53", (IpAddr::V4(VIP), 53, proto::UDP), backends, 0);
    let v6_backends = (1..=3).map(|i| tables::backend(Ipv6Addr::new(0xfd00, 0x244, 0, 1, 0, 0, 0, i), 8080)).collect();
    add_service(&mut snap, "default/svc-80", (IpAddr::V6(VIP6), 80, proto::TCP), v6_backends, 0);
    let sticky = (IpAddr::V4(Ipv4Addr::new(10, 96, 0, 20)), 80, proto::TCP);
    add_service(&mut snap, "default/svc-80", sticky, (1..=4).map(backend).collect(), 600);
    snap
}

fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8, src_mac: MacAddr) -> Vec<u8> {
    FrameSpec {
        src_mac,
        dst_mac: PORT_MAC[0],
        src,
        dst,
        ttl: 64,
        transport: Transport::Tcp { src_port: sport, dst_port: dport, flags, seq: 1000, ack: 0 },
        payload: b"GET / HTTP/1.1\r\n\r\n",
    }
    .build()
    .unwrap()
}

fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Vec<u8> {
    FrameSpec {
        src_mac: CLIENT_MAC,
        dst_mac: PORT_MAC[0],
        src,
        dst,
        ttl: 64,
        transport: Transport::Udp { src_port: sport, dst_port: dport },
        payload: b"query",
    }
    .build()
    .unwrap()
}

fn client(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, i))
}

/// What a frame says, after checking every checksum from scratch.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Seen {
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    ttl: u8,
}

fn inspect(frame: &[u8]) -> Seen {
    let macs = (MacAddr(frame[6..12].try_into().unwrap()), MacAddr(frame[0..6].try_into().unwrap()));
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let (src, dst, ttl, protocol, l4): (IpAddr, IpAddr, u8, u8, &[u8]) = if ethertype == 0x0800 {
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        let l4 = &frame[14 + ip.header_len()..14 + usize::from(ip.total_len())];
        (ip.src_addr().into(), ip.dst_addr().into(), ip.ttl(), ip.protocol(), l4)
    } else {
        let ip = Ipv6Packet::new_checked(&frame[14..]).unwrap();
        (ip.src_addr().into(), ip.dst_addr().into(), ip.hop_limit(), ip.next_header(), &frame[54..])
    };
    let (sport, dport) = match (protocol, src, dst) {
        (6, IpAddr::V4(s), IpAddr::V4(d)) => {
            let t = TcpPacket::new_checked(l4).unwrap();
            assert!(t.verify_checksum_v4(s, d), "TCP checksum");
            (t.src_port(), t.dst_port())
        }
        (6, IpAddr::V6(s), IpAddr::V6(d)) => {
            let t = TcpPacket::new_checked(l4).unwrap();
            assert!(t.verify_checksum_v6(s, d), "TCP checksum");
            (t.src_port(), t.dst_port())
        }
        (17, IpAddr::V4(s), IpAddr::V4(d)) => {
            let u = UdpPacket::new_checked(l4).unwrap();
            assert!(u.verify_checksum_v4(s, d), "UDP checksum");
            (u.src_port(), u.dst_port())
        }
        other => panic!("unexpected {other:?}"),
    };
    Seen { src_mac: macs.0, dst_mac: macs.1, src, dst, sport, dport, ttl }
}

fn pipeline() -> Pipeline {
    Pipeline::new(&PipelineConfig { flow_capacity: 1 << 14, ..PipelineConfig::default() })
}

fn backends_of(snap: &Snapshot, vip: IpAddr, port: u16, protocol: u8) -> HashSet<(IpAddr, u16)> {
    let key = ServiceKey { vip: vip.into(), port, proto: protocol };
    snap.service(&key).unwrap().backends.iter().map(|b| (b.addr.to_ip(), b.port)).collect()
}

#[test]
fn tcp_flow_is_dnated_and_its_reply_un_nated() {
    let snap = snapshot(false, (1..=3).map(backend).collect());
    let mut p = pipeline();
    let mut syn = tcp(client(7), 40000, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
    assert_eq!(p.process(&snap, 0, &mut syn, 1), Verdict::Forward(1));
    let out = inspect(&syn);
    assert!(backends_of(&snap, IpAddr::V4(VIP), 80, proto::TCP).contains(&(out.dst, out.dport)));
    assert_eq!((out.src, out.sport), (client(7), 40000), "no masquerade: the client's address stays");
    assert_eq!((out.src_mac, out.dst_mac, out.ttl), (PORT_MAC[1], POD_GW_MAC, 63));

    let mut reply = tcp(out.dst, out.dport, client(7), 40000, 0x12, POD_GW_MAC);
    assert_eq!(p.process(&snap, 1, &mut reply, 1), Verdict::Forward(0));
    let back = inspect(&reply);
    assert_eq!((back.src, back.sport, back.dst, back.dport), (IpAddr::V4(VIP), 80, client(7), 40000));
    assert_eq!((back.src_mac, back.dst_mac), (PORT_MAC[0], CLIENT_MAC));
    assert_eq!(p.counters.flows_created, 1);

    // More packets of the flow go to the same backend.
    for _ in 0..5 {
        let mut data = tcp(client(7), 40000, IpAddr::V4(VIP), 80, 0x10, CLIENT_MAC);
        assert_eq!(p.process(&snap, 0, &mut data, 2), Verdict::Forward(1));
        assert_eq!(inspect(&data).dst, out.dst);
    }
    assert_eq!(p.counters.flows_created, 1);
}

#[test]
fn masquerade_uses_the_port_address_and_this_cores_ports() {
    let snap = snapshot(true, (1..=3).map(backend).collect());
    let mut p =
        Pipeline::new(&PipelineConfig { core: 1, cores: 2, flow_capacity: 1 << 14, ..PipelineConfig::default() });
    let mut used = HashSet::new();
    for i in 0..200u16 {
        let mut f = udp(client(9), 10000 + i, IpAddr::V4(VIP), 53);
        assert_eq!(p.process(&snap, 0, &mut f, 1), Verdict::Forward(1));
        let out = inspect(&f);
        assert_eq!(out.src, IpAddr::V4(MASQ));
        assert_eq!(out.sport & 1, 1, "core 1 of 2 owns odd ports");
        assert!(used.insert((out.dst, out.sport)), "a (backend, port) pair was handed out twice");

        let mut reply = udp(out.dst, out.dport, out.src, out.sport);
        assert_eq!(p.process(&snap, 1, &mut reply, 1), Verdict::Forward(0));
        let back = inspect(&reply);
        assert_eq!((back.src, back.sport, back.dst, back.dport), (IpAddr::V4(VIP), 53, client(9), 10000 + i));
    }
}

#[test]
fn flows_spread_over_backends_and_keep_theirs_when_endpoints_change() {
    let before = snapshot(false, (1..=4).map(backend).collect());
    let mut p = pipeline();
    let mut chosen = HashMap::new();
    for i in 0..400u16 {
        let mut f = tcp(client((i % 200) as u8 + 1), 20000 + i, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
        assert_eq!(p.process(&before, 0, &mut f, 1), Verdict::Forward(1));
        chosen.insert(i, inspect(&f).dst);
    }
    let spread: HashSet<_> = chosen.values().collect();
    assert_eq!(spread.len(), 4, "every backend gets flows");

    // Backend .4 goes away and .5 arrives: established flows stay put.
    let after = snapshot(false, vec![backend(1), backend(2), backend(3), backend(5)]);
    for i in 0..400u16 {
        let mut f = tcp(client((i % 200) as u8 + 1), 20000 + i, IpAddr::V4(VIP), 80, 0x10, CLIENT_MAC);
        assert_eq!(p.process(&after, 0, &mut f, 2), Verdict::Forward(1));
        assert_eq!(inspect(&f).dst, chosen[&i], "flow {i} moved");
    }
    // New flows avoid the removed backend.
    for i in 0..200u16 {
        let mut f = tcp(client(250), 30000 + i, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
        p.process(&after, 0, &mut f, 2);
        assert_ne!(inspect(&f).dst, IpAddr::V4(Ipv4Addr::new(10, 244, 1, 4)));
    }
}

#[test]
fn terminating_backend_keeps_its_flows_but_gets_no_new_ones() {
    let mut p = pipeline();
    let before = snapshot(false, (1..=2).map(backend).collect());
    let mut on_two = Vec::new();
    for i in 0..100u16 {
        let mut f = tcp(client(3), 5000 + i, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
        p.process(&before, 0, &mut f, 1);
        if inspect(&f).dst == IpAddr::V4(Ipv4Addr::new(10, 244, 1, 2)) {
            on_two.push(5000 + i);
        }
    }
    assert!(!on_two.is_empty());
    let mut terminating = backend(2);
    terminating.state = BackendState::Terminating;
    let after = snapshot(false, vec![backend(1), terminating]);
    for &sport in &on_two {
        let mut f = tcp(client(3), sport, IpAddr::V4(VIP), 80, 0x10, CLIENT_MAC);
        p.process(&after, 0, &mut f, 2);
        assert_eq!(inspect(&f).dst, IpAddr::V4(Ipv4Addr::new(10, 244, 1, 2)));
    }
    for i in 0..100u16 {
        let mut f = tcp(client(4), 6000 + i, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
        p.process(&after, 0, &mut f, 2);
        assert_eq!(inspect(&f).dst, IpAddr::V4(Ipv4Addr::new(10, 244, 1, 1)));
    }
}

#[test]
fn a_new_connection_on_a_closed_flows_ports_gets_a_backend_of_now() {
    // A client reuses a source port whose last connection went to a pod
    // that has since been scaled away: the SYN must not follow the old
    // flow there.
    let mut p = pipeline();
    let before = snapshot(false, (1..=2).map(backend).collect());
    let two = IpAddr::V4(Ipv4Addr::new(10, 244, 1, 2));
    let sport = (7000..8000u16)
        .find(|&sport| {
            let mut syn = tcp(client(5), sport, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
            p.process(&before, 0, &mut syn, 1);
            inspect(&syn).dst == two
        })
        .expect("some port lands on backend 2");
    let mut fin = tcp(client(5), sport, IpAddr::V4(VIP), 80, 0x11, CLIENT_MAC);
    assert_eq!(p.process(&before, 0, &mut fin, 2), Verdict::Forward(1));
    assert_eq!(inspect(&fin).dst, two);
    let created = p.counters.flows_created;

    // With the endpoints unchanged, the reopened connection lands where the
    // hash says: the same backend, through a new flow.
    let mut syn = tcp(client(5), sport, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
    assert_eq!(p.process(&before, 0, &mut syn, 3), Verdict::Forward(1));
    assert_eq!(inspect(&syn).dst, two);
    assert_eq!(p.counters.flows_created, created + 1);

    // Closed again, and backend 2 gone: the next SYN goes to backend 1.
    let mut fin = tcp(client(5), sport, IpAddr::V4(VIP), 80, 0x11, CLIENT_MAC);
    p.process(&before, 0, &mut fin, 4);
    let after = snapshot(false, vec![backend(1)]);
    let mut syn = tcp(client(5), sport, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
    assert_eq!(p.process(&after, 0, &mut syn, 5), Verdict::Forward(1));
    assert_eq!(inspect(&syn).dst, IpAddr::V4(Ipv4Addr::new(10, 244, 1, 1)));
    // An open flow's packets still stay on their backend (only a SYN on a
    // closed flow starts over).
    let mut data = tcp(client(5), sport, IpAddr::V4(VIP), 80, 0x10, CLIENT_MAC);
    assert_eq!(p.process(&before, 0, &mut data, 6), Verdict::Forward(1));
    assert_eq!(inspect(&data).dst, IpAddr::V4(Ipv4Addr::new(10, 244, 1, 1)));
}

#[test]
fn client_ip_affinity_keeps_a_client_on_one_backend() {
    let snap = snapshot(false, vec![]);
    let vip = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 20));
    let mut p = pipeline();
    for c in 1..=20u8 {
        let mut seen = HashSet::new();
        for i in 0..20u16 {
            let mut f = tcp(client(c), 1000 + i, vip, 80, 0x02, CLIENT_MAC);
            assert_eq!(p.process(&snap, 0, &mut f, 1), Verdict::Forward(1));
            seen.insert(inspect(&f).dst);
        }
        assert_eq!(seen.len(), 1, "client {c} was spread over {seen:?}");
    }
}

#[test]
fn ipv6_flows_are_nated_with_valid_checksums() {
    let snap = snapshot(true, vec![backend(1)]);
    let mut p = pipeline();
    let c6 = IpAddr::V6("2001:db8::7".parse().unwrap());
    let mut f = tcp(c6, 41000, IpAddr::V6(VIP6), 80, 0x02, CLIENT_MAC);
    assert_eq!(p.process(&snap, 0, &mut f, 1), Verdict::Forward(1));
    let out = inspect(&f);
    assert_eq!(out.src, IpAddr::V6("fd00:244::1".parse().unwrap()));
    assert_eq!(out.ttl, 63);
    let mut reply = tcp(out.dst, out.dport, out.src, out.sport, 0x12, POD_GW_MAC);
    assert_eq!(p.process(&snap, 1, &mut reply, 1), Verdict::Forward(0));
    let back = inspect(&reply);
    assert_eq!((back.src, back.sport, back.dst, back.dport), (IpAddr::V6(VIP6), 80, c6, 41000));
}

#[test]
fn udp_without_checksum_keeps_none() {
    let snap = snapshot(false, vec![backend(1)]);
    let mut p = pipeline();
    let mut f = udp(client(1), 999, IpAddr::V4(VIP), 53);
    f[14 + 20 + 6] = 0;
    f[14 + 20 + 7] = 0;
    assert_eq!(p.process(&snap, 0, &mut f, 1), Verdict::Forward(1));
    assert_eq!(&f[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    assert_eq!(&f[14 + 16..14 + 20], &[10, 244, 1, 1]);
}

#[test]
fn bad_and_foreign_packets_are_counted_drops_or_go_to_the_slow_path() {
    let snap = snapshot(false, vec![backend(1)]);
    let mut p = pipeline();
    let good = tcp(client(1), 1234, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);

    let mut truncated = good[..30].to_vec();
    assert_eq!(p.process(&snap, 0, &mut truncated, 1), Verdict::Drop(DropReason::Truncated));
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    assert_eq!(p.process(&snap, 0, &mut bad_ihl, 1), Verdict::Drop(DropReason::BadHeaderLength));
    let mut fragment = good.clone();
    fragment[14 + 6] = 0x20; // more fragments
    assert_eq!(p.process(&snap, 0, &mut fragment, 1), Verdict::Drop(DropReason::Fragment));
    let mut no_service = tcp(client(1), 1234, IpAddr::V4(Ipv4Addr::new(10, 96, 0, 99)), 80, 0x02, CLIENT_MAC);
    assert_eq!(p.process(&snap, 0, &mut no_service, 1), Verdict::Drop(DropReason::NoService));
    let mut ttl_one = good.clone();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut ttl_one[14..]);
        ip.set_ttl(1);
        ip.fill_checksum();
    }
    assert_eq!(p.process(&snap, 0, &mut ttl_one, 1), Verdict::Drop(DropReason::TtlExpired));
    let empty = snapshot(false, vec![]);
    let mut no_endpoint = good.clone();
    assert_eq!(p.process(&empty, 0, &mut no_endpoint, 1), Verdict::SlowPath, "refused by the slow path");

    let mut to_us = tcp(client(1), 1234, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 22, 0x02, CLIENT_MAC);
    assert_eq!(p.process(&snap, 0, &mut to_us, 1), Verdict::SlowPath);
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(p.process(&snap, 0, &mut arp, 1), Verdict::SlowPath);

    for reason in [
        DropReason::Truncated,
        DropReason::BadHeaderLength,
        DropReason::Fragment,
        DropReason::NoService,
        DropReason::TtlExpired,
    ] {
        assert_eq!(p.counters.dropped(reason), 1, "{reason:?}");
    }
}

#[test]
fn a_full_flow_table_evicts_and_counts() {
    let snap = snapshot(false, vec![backend(1)]);
    let mut p = Pipeline::new(&PipelineConfig { flow_capacity: 64, ..PipelineConfig::default() });
    for i in 0..1000u16 {
        let mut f = tcp(client(1), i + 1, IpAddr::V4(VIP), 80, 0x02, CLIENT_MAC);
        assert_eq!(p.process(&snap, 0, &mut f, 1), Verdict::Forward(1));
    }
    assert_eq!(p.counters.flows_created, 1000);
    assert!(p.counters.flow_evictions > 900);
    assert!(p.flows().len() <= 64);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..160), ethertype in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x1234])) {
        let snap = snapshot(true, (1..=3).map(backend).collect());
        let mut p = pipeline();
        let mut frame = frame;
        if frame.len() >= 14 {
            frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        }
        let _ = p.process(&snap, 0, &mut frame, 1);
    }

    #[test]
    fn every_rewritten_packet_has_valid_checksums(
        c in 1u8..255, sport in 1u16.., ttl in 2u8.., udp_flow in any::<bool>(), masquerade in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let snap = snapshot(masquerade, (1..=3).map(backend).collect());
        let mut p = pipeline();
        let transport = if udp_flow {
            Transport::Udp { src_port: sport, dst_port: 53 }
        } else {
            Transport::Tcp { src_port: sport, dst_port: 80, flags: 0x18, seq: 7, ack: 9 }
        };
        let mut f = FrameSpec { src_mac: CLIENT_MAC, dst_mac: PORT_MAC[0], src: client(c), dst: IpAddr::V4(VIP), ttl, transport, payload: &payload }.build().unwrap();
        let mut again = f.clone();
        prop_assert_eq!(p.process(&snap, 0, &mut f, 1), Verdict::Forward(1));
        let out = inspect(&f); // asserts the checksums
        prop_assert_eq!(out.ttl, ttl - 1);
        // The next packet takes the established flow's compiled rewrite:
        // the same bytes as the first packet's rewrite, computed apart.
        prop_assert_eq!(p.process(&snap, 0, &mut again, 1), Verdict::Forward(1));
        prop_assert_eq!(again, f);
    }
}

#[test]
fn sctp_flows_are_nated_with_a_fresh_crc() {
    use dataplane::wire::SctpPacket;
    let mut snap = snapshot(true, vec![backend(1)]);
    add_service(&mut snap, "default/svc-36412", (IpAddr::V4(VIP), 36412, proto::SCTP), vec![backend(1)], 0);
    let mut p = pipeline();
    // A UDP frame reshaped into SCTP: protocol 132, a 12-byte common header.
    let mut f = udp(client(5), 5000, IpAddr::V4(VIP), 36412);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.set_protocol(proto::SCTP);
        ip.fill_checksum();
    }
    let l4 = &mut f[34..];
    l4[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    SctpPacket::new_unchecked(&mut *l4).fill_checksum();
    assert_eq!(p.process(&snap, 0, &mut f, 1), Verdict::Forward(1));
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), MASQ);
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 244, 1, 1));
    let sctp = SctpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(sctp.dst_port(), 8080);
    assert!(sctp.verify_checksum(), "the CRC32c was recomputed after the port change");
    assert_eq!(sctp.verification_tag(), 0xdead_beef);
}
