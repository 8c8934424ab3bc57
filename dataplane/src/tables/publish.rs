//! Publishing snapshots to the cores, RCU style.
//!
//! The control side swaps in a new `Arc<Snapshot>` with one atomic store
//! (arc-swap). Each core keeps an `arc_swap::Cache`: loading it costs one
//! atomic load while nothing changed, and it never blocks or allocates.
//!
//! The one thing left is *where* an old snapshot is freed: dropping the last
//! `Arc` runs the destructor, and that must never happen on a core (it would
//! free memory on the packet path). So the publisher keeps every replaced
//! snapshot on a retired list, and each core bumps its quiescent counter once
//! per loop. A retired snapshot is dropped by the control side once every
//! core's counter has moved by two since it was retired: by then the core
//! has passed a load (which replaced its cached copy) and finished the burst
//! that used it, so the publisher's reference is the last.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Cache};
use crossbeam::utils::CachePadded;

use super::snapshot::Snapshot;

/// A core that has stopped reports this, so it never holds back reclamation.
const OFFLINE: u64 = u64::MAX;

/// One counter per core, each on its own cache line.
type QuiescentCounters = Arc<[CachePadded<AtomicU64>]>;

/// The control side's handle: publishes snapshots and frees old ones.
pub struct SnapshotPublisher {
    current: Arc<ArcSwap<Snapshot>>,
    quiescent: QuiescentCounters,
    retired: Vec<(Arc<Snapshot>, Box<[u64]>)>,
}

/// A core's handle: loads the current snapshot once per burst.
pub struct SnapshotReader {
    cache: Cache<Arc<ArcSwap<Snapshot>>, Arc<Snapshot>>,
    quiescent: QuiescentCounters,
    core: usize,
}

impl SnapshotPublisher {
    /// Starts with `initial` (generation as given) for `cores` readers.
    pub fn new(initial: Snapshot, cores: usize) -> (SnapshotPublisher, Vec<SnapshotReader>) {
        let current = Arc::new(ArcSwap::from_pointee(initial));
        let quiescent: QuiescentCounters = (0..cores).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
        let readers = (0..cores)
            .map(|core| SnapshotReader { cache: Cache::new(current.clone()), quiescent: quiescent.clone(), core })
            .collect();
        (SnapshotPublisher { current, quiescent, retired: Vec::new() }, readers)
    }

    /// The snapshot the cores see now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Publishes `next` with the next generation number and returns it.
    pub fn publish(&mut self, mut next: Snapshot) -> u64 {
        let generation = self.current.load().generation + 1;
        next.generation = generation;
        let old = self.current.swap(Arc::new(next));
        let marks = self.quiescent.iter().map(|q| q.load(Ordering::Acquire)).collect();
        self.retired.push((old, marks));
        self.reclaim();
        generation
    }

    /// Drops retired snapshots that no core can still be reading. Call it
    /// after a publish and now and then (the control loop's tick).
    pub fn reclaim(&mut self) {
        let quiescent = &self.quiescent;
        self.retired.retain(|(_, marks)| {
            !quiescent.iter().zip(marks.iter()).all(|(q, &mark)| {
                let now = q.load(Ordering::Acquire);
                now == OFFLINE || now >= mark.saturating_add(2)
            })
        });
    }

    /// Snapshots still waiting for the cores.
    pub fn retired(&self) -> usize {
        self.retired.len()
    }
}

impl SnapshotReader {
    /// The current snapshot. Call once per burst, before touching packets.
    #[inline]
    pub fn load(&mut self) -> &Arc<Snapshot> {
        self.cache.load()
    }

    /// Says this core holds no reference from an earlier burst any more.
    #[inline]
    pub fn quiescent(&self) {
        let q = &self.quiescent[self.core];
        // One writer per counter: a plain store, no locked read-modify-write.
        q.store(q.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// Marks this core as stopped, so it holds back no reclamation.
    pub fn offline(&self) {
        self.quiescent[self.core].store(OFFLINE, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Weak;

    #[test]
    fn old_snapshot_is_freed_only_after_every_core_moved_on() {
        let (mut publisher, mut readers) = SnapshotPublisher::new(Snapshot::default(), 2);
        let first: Weak<Snapshot> = Arc::downgrade(readers[0].load());
        let _ = readers[1].load();
        assert_eq!(publisher.publish(Snapshot::default()), 1);
        // Both cores may still be in the burst that uses generation 0.
        assert!(first.upgrade().is_some());
        for r in &mut readers {
            assert_eq!(r.load().generation, 1);
            r.quiescent();
        }
        publisher.reclaim();
        assert_eq!(publisher.retired(), 1, "one quiescent point is not enough");
        readers[0].quiescent();
        readers[1].offline();
        publisher.reclaim();
        assert_eq!(publisher.retired(), 0);
        assert!(first.upgrade().is_none(), "freed on the control side");
    }
}
