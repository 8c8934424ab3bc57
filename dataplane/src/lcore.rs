//! A worker core's run loop: poll every port's queue and this core's handoff
//! ring, run each burst to completion through the pipeline, transmit,
//! publish counters, and pass a quiescent point so old snapshots can be
//! freed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam::queue::ArrayQueue;

use crate::pipeline::{Pipeline, PipelineConfig, Prepared, Verdict};
use crate::port::{PacketBuf, PortQueue, BURST};
use crate::stats::{CoreStats, Counters, DropReason};
use crate::tables::{PortId, Snapshot, SnapshotReader};

/// A packet passed between threads with the port it came in on: to the slow
/// path, or from one core to another.
pub struct SlowPacket<B> {
    pub port: PortId,
    pub buf: B,
}

/// The bounded ring from the cores to the slow path. A full ring is a
/// counted drop: the slow path can never hold up forwarding.
pub type SlowPathRing<B> = Arc<ArrayQueue<SlowPacket<B>>>;

/// One inbound ring per core, for replies that RSS delivered to a core that
/// does not own their flow (see `flow::ports`).
pub type HandoffRings<B> = Arc<[ArrayQueue<SlowPacket<B>>]>;

/// Frames the control side (the slow path) wants sent, with their egress
/// port. Any core may take them; each sends what it takes on its own queue.
pub type InjectRing<B> = Arc<ArrayQueue<SlowPacket<B>>>;

/// Handoff rings for `cores` cores.
pub fn handoff_rings<B>(cores: usize, slots: usize) -> HandoffRings<B> {
    (0..cores).map(|_| ArrayQueue::new(slots.max(1))).collect()
}

/// Rounds between clock readings and between counter publications in
/// [`Worker::run`]: a few microseconds of traffic.
const CLOCK_EVERY: u32 = 16;
const PUBLISH_EVERY: u32 = 8;

pub struct Worker<Q: PortQueue> {
    core: usize,
    /// This core's queue on each port, indexed by [`PortId`].
    queues: Vec<Q>,
    pipeline: Pipeline,
    snapshots: SnapshotReader,
    stats: CoreStats,
    slow_path: SlowPathRing<Q::Buf>,
    handoff: HandoffRings<Q::Buf>,
    inject: InjectRing<Q::Buf>,
    started: Instant,
    rx: Vec<Q::Buf>,
    /// The first stage's results for the burst in `rx`.
    prepared: [Prepared; BURST],
    /// Packets waiting for transmission, one batch per egress port.
    tx: Vec<Vec<Q::Buf>>,
}

/// Where a processed packet goes; borrowed pieces of the worker.
struct Outputs<'a, B> {
    tx: &'a mut [Vec<B>],
    slow_path: &'a ArrayQueue<SlowPacket<B>>,
    handoff: &'a [ArrayQueue<SlowPacket<B>>],
}

impl<Q: PortQueue> Worker<Q> {
    pub fn new(
        config: &PipelineConfig,
        queues: Vec<Q>,
        snapshots: SnapshotReader,
        stats: CoreStats,
        slow_path: SlowPathRing<Q::Buf>,
        handoff: HandoffRings<Q::Buf>,
        inject: InjectRing<Q::Buf>,
    ) -> Worker<Q> {
        let ports = queues.len();
        Worker {
            core: config.core,
            queues,
            pipeline: Pipeline::new(config),
            snapshots,
            stats,
            slow_path,
            handoff,
            inject,
            started: Instant::now(),
            rx: Vec::with_capacity(BURST),
            prepared: [Prepared::default(); BURST],
            // Room for every port's burst, the handoff burst and the slow
            // path's burst to land on one egress port.
            tx: (0..ports).map(|_| Vec::with_capacity(BURST * (ports + 2))).collect(),
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

    /// One round at a given clock reading (tests drive time with this),
    /// counters published after it.
    pub fn poll_at(&mut self, now: u32) -> usize {
        let received = self.poll(now);
        self.publish();
        received
    }

    /// Copies this core's counters where the control side reads them.
    fn publish(&mut self) {
        self.pipeline.counters.flow_entries = self.pipeline.flows().len() as u64;
        self.stats.publish(self.core, &self.pipeline.counters);
    }

    /// One round over all ports at second `now`; counters not published.
    #[inline]
    fn poll(&mut self, now: u32) -> usize {
        let Worker { core, queues, pipeline, snapshots, slow_path, handoff, inject, rx, prepared, tx, .. } = self;
        let snap = snapshots.load();
        pipeline.counters.generation = snap.generation;
        let mut out = Outputs { tx, slow_path, handoff };
        let mut received = 0;

        for (port, queue) in queues.iter_mut().enumerate() {
            rx.clear();
            received += queue.rx_burst(rx);
            // The burst in three passes (see `Pipeline::prepare`): parse,
            // prefetch flow entries, forward.
            //
            // A port gives at most BURST packets (`rx_burst`); any beyond
            // would be unprepared, and processed in full below.
            let prepared = &mut prepared[..rx.len().min(BURST)];
            let mut bytes = 0;
            for (i, buf) in rx.iter().enumerate() {
                let frame = buf.data();
                bytes += frame.len() as u64;
                if let Some(p) = prepared.get_mut(i) {
                    *p = pipeline.prepare(frame);
                }
            }
            pipeline.counters.rx_packets += rx.len() as u64;
            pipeline.counters.rx_bytes += bytes;
            for p in prepared.iter() {
                pipeline.prefetch(p);
            }
            for (i, mut buf) in rx.drain(..).enumerate() {
                let p = prepared.get(i);
                match p.and_then(|p| pipeline.forward_established(buf.data_mut(), p, now)) {
                    Some(egress) => enqueue(&mut pipeline.counters, out.tx, egress, buf),
                    None => handle(pipeline, snap, &mut out, port as PortId, buf, p, now),
                }
            }
        }
        // Replies other cores received for flows of this one (counted as
        // received where they arrived).
        if let Some(inbound) = out.handoff.get(*core) {
            for _ in 0..BURST {
                let Some(p) = inbound.pop() else { break };
                received += 1;
                handle(pipeline, snap, &mut out, p.port, p.buf, None, now);
            }
        }

        // Frames from the slow path (ARP and ICMP replies).
        for _ in 0..BURST {
            let Some(p) = inject.pop() else { break };
            match out.tx.get_mut(usize::from(p.port)) {
                Some(batch) if batch.len() < batch.capacity() => batch.push(p.buf),
                _ => pipeline.counters.drop(DropReason::TxFull),
            }
        }

        for (queue, batch) in queues.iter_mut().zip(out.tx.iter_mut()) {
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

        self.snapshots.quiescent();
        received
    }

    /// Polls until `stop` is set, then publishes its last counters and
    /// marks the core offline.
    ///
    /// The clock is read, and the counters published, every few rounds
    /// rather than every round: each costs about as much as forwarding a
    /// packet, and neither a second-granular clock nor the metrics need
    /// microsecond freshness. The quiescent point stays per round, so old
    /// snapshots are freed as soon as possible.
    pub fn run(mut self, stop: &AtomicBool) {
        let mut rounds: u32 = 0;
        let mut now = self.now();
        while !stop.load(Ordering::Relaxed) {
            if rounds.is_multiple_of(CLOCK_EVERY) {
                now = self.now();
            }
            self.poll(now);
            if rounds.is_multiple_of(PUBLISH_EVERY) {
                self.publish();
            }
            rounds = rounds.wrapping_add(1);
        }
        self.publish();
        self.snapshots.offline();
    }
}

/// Queues a forwarded packet on its egress port's batch.
#[inline(always)]
fn enqueue<B>(counters: &mut Counters, tx: &mut [Vec<B>], egress: PortId, buf: B) {
    match tx.get_mut(usize::from(egress)) {
        Some(batch) if batch.len() < batch.capacity() => batch.push(buf),
        Some(_) => counters.drop(DropReason::TxFull),
        None => counters.drop(DropReason::NoRoute),
    }
}

/// Runs one packet through the pipeline (the rest of it, when the first
/// stage was run over the burst) and puts it where the verdict says.
/// Dropping a buffer returns it to its pool.
#[inline]
fn handle<B: PacketBuf>(
    pipeline: &mut Pipeline,
    snap: &Snapshot,
    out: &mut Outputs<'_, B>,
    port: PortId,
    mut buf: B,
    prepared: Option<&Prepared>,
    now: u32,
) {
    let verdict = match prepared {
        Some(p) => pipeline.finish(snap, port, buf.data_mut(), p, now),
        None => pipeline.process(snap, port, buf.data_mut(), now),
    };
    match verdict {
        Verdict::Forward(egress) => enqueue(&mut pipeline.counters, out.tx, egress, buf),
        Verdict::SlowPath => {
            if out.slow_path.push(SlowPacket { port, buf }).is_err() {
                pipeline.counters.drop(DropReason::SlowPathFull);
            } else {
                pipeline.counters.slow_path_packets += 1;
            }
        }
        Verdict::Handoff(core) => {
            let pushed = out.handoff.get(core).map(|ring| ring.push(SlowPacket { port, buf }).is_ok());
            if pushed == Some(true) {
                pipeline.counters.handed_off += 1;
            } else {
                pipeline.counters.drop(DropReason::HandoffFull);
            }
        }
        Verdict::Drop(_) => {}
    }
}
