//! Pipeline throughput on synthetic bursts, in packets per second.
//!
//! Run: `cargo bench -p switchyard-dataplane --bench pipeline`
//! (about 75 s; add `-- --quick` for a ~15 s pass).
//!
//! What is measured (each bench processes one burst of [`BURST`] = 32
//! 60-byte frames per iteration; throughput is reported as elements, i.e.
//! packets, so criterion prints Melem/s = Mpps):
//!
//! - `copy_only/*`: restoring a burst's frame bytes from the template
//!   buffers (plus, for new flows, stamping a fresh source address and port).
//!   `Pipeline::process` rewrites frames in place, so every measured burst
//!   must first be restored; this baseline is that cost alone. **Subtract
//!   its time per packet from the `established/*` and `new_flows/*` times**
//!   to get the pipeline's own cost:
//!   `pipeline ns/pkt = bench ns/pkt − copy_only ns/pkt`.
//! - `established/{masq_off,masq_on}`: 4,096 IPv4 TCP flows (ACK segments)
//!   to 8 VIPs × 16 backends, all created by a warm-up pass; the bursts
//!   cycle through them, so every packet is a flow-table hit followed by the
//!   NAT rewrite.
//! - `new_flows/{masq_off,masq_on}`: every packet is a SYN of a new 5-tuple
//!   (source address and port from a counter): flow-table miss, Service
//!   lookup, Maglev, route lookup, (masquerade: source-port allocation with
//!   a reply-key lookup), insertion of both directions, rewrite.
//!   The flow table has the appliance's default capacity (2^18 entries) and
//!   the bench's clock advances one second every 1,024 packets, so with the
//!   30 s `tcp_new` timeout about 30k flows (60k entries, ~23% of the table)
//!   are live at any time: old entries expire and their slots are reused.
//!   This is the (nearly) no-eviction steady state: the counters printed
//!   after the bench show evictions for ~0.1% of new flows (8-way buckets
//!   that fill up by chance, expired entries counting until reused).
//! - `worker/poll_once`: the whole `Worker::poll_once` over in-memory ports:
//!   port 0 replays the established-flow frames (`Source::Replay`, which
//!   copies each frame into a pool buffer, like a NIC's DMA), port 1
//!   discards what is sent to it (`Sink::Discard`). Includes the burst loop,
//!   the per-port tx batching, counter publication and the snapshot load /
//!   quiescent point. No subtraction here: the copy is part of the rx path.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::queue::ArrayQueue;
use dataplane::lcore::{handoff_rings, SlowPathRing, Worker};
use dataplane::pipeline::{Pipeline, PipelineConfig, Verdict};
use dataplane::port::mem::{mem_pool, MemQueue, Sink, Source};
use dataplane::port::BURST;
use dataplane::stats::CoreStats;
use dataplane::tables::{
    proto, Backend, BackendState, NextHop, PortInfo, Route, Service, ServiceKey, ServiceSpec, Snapshot,
    SnapshotPublisher, DEFAULT_MAX_RING_SIZE,
};
use dataplane::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, TcpFlags, TcpPacket};

const VIPS: u8 = 8;
const BACKENDS_PER_VIP: u8 = 16;
const FLOWS: usize = 4096;
/// Ethernet + IPv4 + TCP + 6 bytes of payload: a minimum-size (64 B with
/// FCS) frame.
const FRAME_LEN: usize = 14 + 20 + 20 + 6;
/// The new-flow bench's clock advances one second every this many packets.
const PACKETS_PER_SECOND: u64 = 1024;

const CLIENT_PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const BACKEND_PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 1, 0x01]);
const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 1, 0xfe]);
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 2, 0x01]);

fn vip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, 1 + i)
}

/// Two ports (0: clients, 1: backends), 8 TCP Services on port 80 with 16
/// backends each in 10.244.0.0/16, routed via port 1.
fn snapshot(masquerade: bool) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.ports.push(PortInfo {
        mac: CLIENT_PORT_MAC,
        ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ipv6: None,
        masquerade: false,
    });
    snap.ports.push(PortInfo {
        mac: BACKEND_PORT_MAC,
        ipv4: Some(Ipv4Addr::new(10, 244, 255, 254)),
        ipv6: None,
        masquerade,
    });
    snap.routes.push(Route {
        prefix: Ipv4Addr::new(10, 244, 0, 0).into(),
        len: 16,
        via: NextHop { port: 1, mac: GATEWAY_MAC },
    });
    snap.sort_routes();
    for v in 0..VIPS {
        let key = ServiceKey { vip: vip(v).into(), port: 80, proto: proto::TCP };
        let backends = (0..BACKENDS_PER_VIP)
            .map(|b| Backend {
                addr: Ipv4Addr::new(10, 244, v, 10 + b).into(),
                port: 8080,
                weight: 1,
                state: BackendState::Ready,
            })
            .collect();
        let spec = ServiceSpec { name: format!("bench/svc{v}:http"), key, backends, affinity_timeout_s: 0 };
        snap.services.insert(key, Arc::new(Service::build(spec, DEFAULT_MAX_RING_SIZE)));
    }
    snap
}

/// One client → VIP TCP frame with correct checksums.
fn tcp_frame(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, flags: u8) -> Vec<u8> {
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
fn established_templates() -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|i| {
            let src = Ipv4Addr::new(198, 18, (i / 200) as u8, (i % 200) as u8 + 1);
            let src_port = 20_000 + (i as u16 % 40_000);
            tcp_frame(src, src_port, vip((i % usize::from(VIPS)) as u8), TcpFlags::ACK | TcpFlags::PSH)
        })
        .collect()
}

/// SYNs to each VIP; the bench stamps a fresh source on each copy.
fn syn_templates() -> Vec<Vec<u8>> {
    (0..VIPS).map(|v| tcp_frame(Ipv4Addr::new(100, 64, 0, 1), 1024, vip(v), TcpFlags::SYN)).collect()
}

/// A burst of frame buffers the pipeline works on in place.
struct Burst {
    bufs: Vec<[u8; FRAME_LEN]>,
}

impl Burst {
    fn new() -> Burst {
        Burst { bufs: vec![[0u8; FRAME_LEN]; BURST] }
    }

    /// Restores the burst from `templates[next..next + BURST]` (cyclically).
    #[inline]
    fn restore(&mut self, templates: &[Vec<u8>], next: &mut usize) {
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
    fn restore_new(&mut self, templates: &[Vec<u8>], counter: &mut u64) {
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

    #[inline]
    fn process(&mut self, pipeline: &mut Pipeline, snap: &Snapshot, now: u32) -> usize {
        let mut forwarded = 0;
        for buf in self.bufs.iter_mut() {
            if let Verdict::Forward(_) = pipeline.process(snap, 0, &mut buf[..], now) {
                forwarded += 1;
            }
        }
        forwarded
    }
}

fn pipeline_config() -> PipelineConfig {
    // The appliance's defaults: 2^18 flow entries, one core, ports 1024-65535.
    PipelineConfig::default()
}

fn mode(masquerade: bool) -> &'static str {
    if masquerade {
        "masq_on"
    } else {
        "masq_off"
    }
}

fn report(what: &str, pipeline: &Pipeline) {
    let c = &pipeline.counters;
    eprintln!(
        "    [{what}] flows_created {} flow_evictions {} flow_entries {} drops {}",
        c.flows_created,
        c.flow_evictions,
        pipeline.flows().len(),
        c.total_drops()
    );
}

fn bench_copy(c: &mut Criterion) {
    let mut g = c.benchmark_group("copy_only");
    g.throughput(Throughput::Elements(BURST as u64));
    let templates = established_templates();
    let mut burst = Burst::new();
    let mut next = 0;
    g.bench_function("established", |b| {
        b.iter(|| {
            burst.restore(&templates, &mut next);
            black_box(&mut burst.bufs);
        })
    });
    let syns = syn_templates();
    let mut counter = 0u64;
    g.bench_function("new_flows", |b| {
        b.iter(|| {
            burst.restore_new(&syns, &mut counter);
            black_box(&mut burst.bufs);
        })
    });
    g.finish();
}

fn bench_established(c: &mut Criterion) {
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(BURST as u64));
    let templates = established_templates();
    for masquerade in [false, true] {
        let snap = snapshot(masquerade);
        let mut pipeline = Pipeline::new(&pipeline_config());
        let mut burst = Burst::new();
        let mut next = 0;
        // Warm-up: one pass over every flow creates them all.
        for _ in 0..FLOWS / BURST {
            burst.restore(&templates, &mut next);
            assert_eq!(burst.process(&mut pipeline, &snap, 0), BURST, "warm-up packets must be forwarded");
        }
        assert_eq!(pipeline.counters.flows_created, FLOWS as u64);
        g.bench_function(BenchmarkId::from_parameter(mode(masquerade)), |b| {
            b.iter(|| {
                burst.restore(&templates, &mut next);
                black_box(burst.process(&mut pipeline, &snap, 0))
            })
        });
        assert_eq!(pipeline.counters.flows_created, FLOWS as u64, "established bench created flows");
        report(mode(masquerade), &pipeline);
    }
    g.finish();
}

fn bench_new_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_flows");
    g.throughput(Throughput::Elements(BURST as u64));
    let syns = syn_templates();
    for masquerade in [false, true] {
        let snap = snapshot(masquerade);
        let mut pipeline = Pipeline::new(&pipeline_config());
        let mut burst = Burst::new();
        let mut counter = 0u64;
        g.bench_function(BenchmarkId::from_parameter(mode(masquerade)), |b| {
            b.iter(|| {
                let now = (counter / PACKETS_PER_SECOND) as u32;
                burst.restore_new(&syns, &mut counter);
                black_box(burst.process(&mut pipeline, &snap, now))
            })
        });
        report(mode(masquerade), &pipeline);
    }
    g.finish();
}

fn bench_worker(c: &mut Criterion) {
    let mut g = c.benchmark_group("worker");
    g.throughput(Throughput::Elements(BURST as u64));
    let templates = established_templates();
    let pool = mem_pool(1024);
    let queues = vec![
        MemQueue::new(pool.clone(), Source::Replay { frames: templates, next: 0 }, Sink::Discard),
        MemQueue::new(pool.clone(), Source::None, Sink::Discard),
    ];
    let (_publisher, mut readers) = SnapshotPublisher::new(snapshot(false), 1);
    let stats = CoreStats::new(1);
    let slow_path: SlowPathRing<_> = Arc::new(ArrayQueue::new(64));
    let handoff = handoff_rings(1, 64);
    let mut worker = Worker::new(
        &pipeline_config(),
        queues,
        readers.remove(0),
        stats,
        slow_path,
        handoff,
        Arc::new(ArrayQueue::new(16)),
    );
    // Warm-up: one pass over the replayed frames creates every flow.
    for _ in 0..FLOWS / BURST {
        assert_eq!(worker.poll_once(), BURST);
    }
    assert_eq!(worker.pipeline().counters.tx_packets, FLOWS as u64, "warm-up packets must be sent");
    g.bench_function("poll_once", |b| b.iter(|| black_box(worker.poll_once())));
    let counters = &worker.pipeline().counters;
    assert_eq!(counters.rx_packets, counters.tx_packets, "every packet must be sent");
    report("poll_once", worker.pipeline());
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench_copy, bench_established, bench_new_flows, bench_worker
}
criterion_main!(benches);
