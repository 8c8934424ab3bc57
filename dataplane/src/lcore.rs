//! A worker core's run loop: poll every port's queue, run each burst to
//! completion through the pipeline, transmit, publish counters, and pass a
//! quiescent point so old snapshots can be freed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam::queue::ArrayQueue;

use crate::pipeline::{Pipeline, PipelineConfig, Verdict};
use crate::port::{PacketBuf, PortQueue, BURST};
use crate::stats::{CoreStats, DropReason};
use crate::tables::{PortId, SnapshotReader};

/// A packet handed to the slow path, with the port it came in on.
pub struct SlowPacket<B> {
    pub port: PortId,
    pub buf: B,
}

/// The bounded ring from the cores to the slow path. A full ring is a
/// counted drop: the slow path can never hold up forwarding.
pub type SlowPathRing<B> = Arc<ArrayQueue<SlowPacket<B>>>;

pub struct Worker<Q: PortQueue> {
    core: usize,
    /// This core's queue on each port, indexed by [`PortId`].
    queues: Vec<Q>,
    pipeline: Pipeline,
    snapshots: SnapshotReader,
    stats: CoreStats,
    slow_path: SlowPathRing<Q::Buf>,
    started: Instant,
    rx: Vec<Q::Buf>,
    /// Packets waiting for transmission, one batch per egress port.
    tx: Vec<Vec<Q::Buf>>,
}

impl<Q: PortQueue> Worker<Q> {
    pub fn new(
        config: &PipelineConfig,
        queues: Vec<Q>,
        snapshots: SnapshotReader,
        stats: CoreStats,
        slow_path: SlowPathRing<Q::Buf>,
    ) -> Worker<Q> {
        let ports = queues.len();
        Worker {
            core: config.core,
            queues,
            pipeline: Pipeline::new(config),
            snapshots,
            stats,
            slow_path,
            started: Instant::now(),
            rx: Vec::with_capacity(BURST),
            // Room for every port's burst to land on one egress port.
            tx: (0..ports).map(|_| Vec::with_capacity(BURST * ports.max(1))).collect(),
        }
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Seconds since the worker started: the flow table's clock. Reading
    /// the monotonic clock goes through the vDSO, not a system call.
    #[inline]
    fn now(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    /// One round over all ports. Returns the packets received.
    #[inline]
    pub fn poll_once(&mut self) -> usize {
        let now = self.now();
        self.poll_at(now)
    }

    /// One round at a given clock reading (tests drive time with this).
    pub fn poll_at(&mut self, now: u32) -> usize {
        let Worker { queues, pipeline, snapshots, slow_path, rx, tx, .. } = self;
        let snap = snapshots.load();
        pipeline.counters.generation = snap.generation;
        let mut received = 0;

        for (port, queue) in queues.iter_mut().enumerate() {
            rx.clear();
            received += queue.rx_burst(rx);
            for mut buf in rx.drain(..) {
                let counters = &mut pipeline.counters;
                counters.rx_packets += 1;
                counters.rx_bytes += buf.data().len() as u64;
                match pipeline.process(snap, port as PortId, buf.data_mut(), now) {
                    Verdict::Forward(out) => {
                        let Some(batch) = tx.get_mut(usize::from(out)) else {
                            pipeline.counters.drop(DropReason::NoRoute);
                            continue;
                        };
                        if batch.len() == batch.capacity() {
                            pipeline.counters.drop(DropReason::TxFull);
                            continue;
                        }
                        batch.push(buf);
                    }
                    Verdict::SlowPath => {
                        if slow_path.push(SlowPacket { port: port as PortId, buf }).is_err() {
                            pipeline.counters.drop(DropReason::SlowPathFull);
                        } else {
                            pipeline.counters.slow_path_packets += 1;
                        }
                    }
                    // Dropping the buffer returns it to its pool.
                    Verdict::Drop(_) => {}
                }
            }
        }

        for (queue, batch) in queues.iter_mut().zip(tx.iter_mut()) {
            if batch.is_empty() {
                continue;
            }
            let offered: u64 = batch.iter().map(|b| b.data().len() as u64).sum();
            let sent = queue.tx_burst(batch);
            let refused: u64 = batch.iter().map(|b| b.data().len() as u64).sum();
            let counters = &mut pipeline.counters;
            counters.tx_packets += sent as u64;
            counters.tx_bytes += offered - refused;
            for _ in batch.drain(..) {
                counters.drop(DropReason::TxFull);
            }
        }

        pipeline.counters.flow_entries = pipeline.flows().len() as u64;
        self.stats.publish(self.core, &self.pipeline.counters);
        self.snapshots.quiescent();
        received
    }

    /// Polls until `stop` is set, then marks the core offline.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.poll_once();
        }
        self.snapshots.offline();
    }
}
