//! Instructions per packet of the worker loop, for callgrind: this machine
//! kind has no hardware counters (`perf stat` says "not supported") and its
//! timings are noisy, while callgrind's instruction counts repeat exactly.
//!
//! ```text
//! cargo build --release -p switchyard-dataplane --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instructions 0      # set-up only
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instructions 2000   # set-up + 2000 bursts
//! ```
//! (difference of the two "Collected" totals) / (bursts × 32) = instructions
//! per packet: established flows, masquerade on, in-memory ports (the
//! receive side copies each frame into a pool buffer, like a NIC's DMA).

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use dataplane::lcore::{handoff_rings, Worker};
use dataplane::pipeline::PipelineConfig;
use dataplane::port::mem::{mem_pool, MemQueue, Sink, Source};
use dataplane::port::BURST;
use dataplane::stats::CoreStats;
use dataplane::tables::SnapshotPublisher;

fn main() {
    let bursts: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: instructions [BURSTS]: {e}");
            std::process::exit(2);
        }
    };
    let pool = mem_pool(1024);
    let queues = vec![
        MemQueue::new(
            pool.clone(),
            Source::Replay { frames: workload::established_templates(), next: 0 },
            Sink::Discard,
        ),
        MemQueue::new(pool.clone(), Source::None, Sink::Discard),
    ];
    let (_publisher, mut readers) = SnapshotPublisher::new(workload::snapshot(true), 1);
    let mut worker = Worker::new(
        &PipelineConfig::default(),
        queues,
        readers.remove(0),
        CoreStats::new(1),
        Arc::new(ArrayQueue::new(64)),
        handoff_rings(1, 64),
        Arc::new(ArrayQueue::new(16)),
    );
    // Warm-up: one pass creates every flow.
    for _ in 0..workload::FLOWS / BURST {
        worker.poll_at(0);
    }
    for _ in 0..bursts {
        worker.poll_at(0);
    }
    let c = &worker.pipeline().counters;
    println!("{} bursts; rx {} tx {} drops {}", bursts, c.rx_packets, c.tx_packets, c.total_drops());
}
