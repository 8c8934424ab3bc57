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

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::queue::ArrayQueue;
use dataplane::lcore::{handoff_rings, SlowPathRing, Worker};
use dataplane::pipeline::{Pipeline, PipelineConfig};
use dataplane::port::mem::{mem_pool, MemQueue, Sink, Source};
use dataplane::port::BURST;
use dataplane::stats::CoreStats;
use dataplane::tables::SnapshotPublisher;

mod workload;
use workload::*;

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
