//! The synthetic workload shared by the pipeline bench and the
//! `instructions` example: a snapshot of 8 VIPs × 16 backends, 4,096
//! established TCP flows, SYN templates for new flows, and bursts of frames
//! restored from templates before each pass (the pipeline rewrites in
//! place).

#![allow(dead_code)] // each user takes what it needs

use std::net::{IpAddr, Ipv4Addr};

use dataplane::pipeline::{Pipeline, Prepared, Verdict};
use dataplane::port::BURST;
use dataplane::tables::{proto, Snapshot};
use dataplane::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, TcpFlags, TcpPacket};
use testing::tables::{add_service, backend, TwoPorts};

pub const VIPS: u8 = 8;
pub const BACKENDS_PER_VIP: u8 = 16;
pub const FLOWS: usize = 4096;
/// Ethernet + IPv4 + TCP + 6 bytes of payload: a minimum-size (64 B with
/// FCS) frame.
pub const FRAME_LEN: usize = 14 + 20 + 20 + 6;
/// The new-flow bench's clock advances one second every this many packets.
pub const PACKETS_PER_SECOND: u64 = 1024;

pub const CLIENT_PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const BACKEND_PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 1, 0x01]);
pub const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 1, 0xfe]);
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 2, 0x01]);

pub fn vip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, 1 + i)
}

/// Two ports (0: clients, 1: backends), 8 TCP Services on port 80 with 16
/// backends each in 10.244.0.0/16, routed via port 1.
pub fn snapshot(masquerade: bool) -> Snapshot {
    let mut snap = TwoPorts {
        client_mac: CLIENT_PORT_MAC,
        client_ipv4: Ipv4Addr::new(192, 0, 2, 1),
        pod_mac: BACKEND_PORT_MAC,
        pod_ipv4: Ipv4Addr::new(10, 244, 255, 254),
        pod_ipv6: None,
        masquerade,
        gateway_mac: GATEWAY_MAC,
    }
    .snapshot();
    for v in 0..VIPS {
        let backends = (0..BACKENDS_PER_VIP).map(|b| backend(Ipv4Addr::new(10, 244, v, 10 + b), 8080)).collect();
        add_service(&mut snap, &format!("bench/svc{v}:http"), (IpAddr::V4(vip(v)), 80, proto::TCP), backends, 0);
    }
    snap
}

/// One client → VIP TCP frame with correct checksums.
pub fn tcp_frame(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, flags: u8) -> Vec<u8> {
    let mut frame = vec![0u8; FRAME_LEN];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(CLIENT_PORT_MAC);
        eth.set_src_addr(CLIENT_MAC);
        eth.set_ethertype(EtherType::IPV4);
    }
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len((FRAME_LEN - 14) as u16);
        ip.set_ident(0x1234);
        ip.set_dont_frag(true);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::TCP);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    }
    {
        let mut tcp = TcpPacket::new_unchecked(&mut frame[34..]);
        tcp.set_src_port(src_port);
        tcp.set_dst_port(80);
        tcp.set_seq_number(0x0102_0304);
        tcp.set_ack_number(if flags & TcpFlags::ACK != 0 { 0x0506_0708 } else { 0 });
        tcp.set_header_len(20);
        tcp.set_flags(flags);
        tcp.set_window(65535);
        tcp.payload_mut().copy_from_slice(b"bench!");
        tcp.fill_checksum_v4(src, dst);
    }
    frame
}

/// `FLOWS` established flows (ACK segments) spread over the VIPs.
pub fn established_templates() -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|i| {
            let src = Ipv4Addr::new(198, 18, (i / 200) as u8, (i % 200) as u8 + 1);
            let src_port = 20_000 + (i as u16 % 40_000);
            tcp_frame(src, src_port, vip((i % usize::from(VIPS)) as u8), TcpFlags::ACK | TcpFlags::PSH)
        })
        .collect()
}

/// SYNs to each VIP; the bench stamps a fresh source on each copy.
pub fn syn_templates() -> Vec<Vec<u8>> {
    (0..VIPS).map(|v| tcp_frame(Ipv4Addr::new(100, 64, 0, 1), 1024, vip(v), TcpFlags::SYN)).collect()
}

/// A burst of frame buffers the pipeline works on in place.
pub struct Burst {
    pub bufs: Vec<[u8; FRAME_LEN]>,
    prepared: Vec<Prepared>,
}

impl Burst {
    pub fn new() -> Burst {
        Burst { bufs: vec![[0u8; FRAME_LEN]; BURST], prepared: Vec::with_capacity(BURST) }
    }

    /// Restores the burst from `templates[next..next + BURST]` (cyclically).
    #[inline]
    pub fn restore(&mut self, templates: &[Vec<u8>], next: &mut usize) {
        for buf in self.bufs.iter_mut() {
            buf.copy_from_slice(&templates[*next]);
            *next += 1;
            if *next == templates.len() {
                *next = 0;
            }
        }
    }

    /// Restores the burst from the SYN templates and gives each frame a new
    /// source (address from 100.64.0.0/10, port from 1024 up): every packet
    /// is a 5-tuple never seen before (for 2^22 × 60,000 packets). The
    /// checksums are not fixed up; the pipeline does not verify them, it
    /// only updates them incrementally.
    #[inline]
    pub fn restore_new(&mut self, templates: &[Vec<u8>], counter: &mut u64) {
        for buf in self.bufs.iter_mut() {
            let c = *counter;
            *counter += 1;
            buf.copy_from_slice(&templates[(c % templates.len() as u64) as usize]);
            let addr = 0x6440_0000u32 | (c as u32 & 0x003f_ffff);
            let port = 1024 + ((c >> 22) % 60_000) as u16;
            buf[26..30].copy_from_slice(&addr.to_be_bytes());
            buf[34..36].copy_from_slice(&port.to_be_bytes());
        }
    }

    /// The burst through the pipeline in the worker's three passes.
    #[inline]
    pub fn process(&mut self, pipeline: &mut Pipeline, snap: &Snapshot, now: u32) -> usize {
        self.prepared.clear();
        for buf in self.bufs.iter() {
            self.prepared.push(pipeline.prepare(&buf[..]));
        }
        for p in self.prepared.iter() {
            pipeline.prefetch(p);
        }
        let mut forwarded = 0;
        for (buf, p) in self.bufs.iter_mut().zip(self.prepared.iter()) {
            if let Verdict::Forward(_) = pipeline.finish(snap, 0, &mut buf[..], p, now) {
                forwarded += 1;
            }
        }
        forwarded
    }
}
