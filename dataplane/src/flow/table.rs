//! A core's flow table: fixed capacity, set-associative, never allocates
//! after it is built.
//!
//! Layout: buckets of [`WAYS`] slots. Each bucket has one 64-byte metadata
//! line — the ways' tags (32-bit hash fragments, 0 = empty) and expiry
//! seconds — so a lookup, and the choice of a way for an insert, touch one
//! line; only a tag match reads a slot. A slot is split in two arrays by
//! how often it is read: the entry ([`FlowEntry`], one aligned cache line:
//! key, compiled IPv4 rewrite, egress port, state) that every packet of an
//! established flow reads, and the rest (the full [`NatAction`] and the
//! peer's slot) that only new flows, state changes, a new second and the
//! less common frames read. A full bucket evicts the entry closest to
//! expiry (counted by the caller). Entries never move, so a slot index is a
//! stable handle: the two entries of a NAT flow (forward and reply) point
//! at each other by index and live and die together.

use super::key::FlowKey;
use super::memory::{Array, Placement};
use super::rewrite::Ipv4Rewrite;
use crate::tables::{Addr, PortId};
use crate::wire::MacAddr;

pub const WAYS: usize = 8;
const NO_PEER: u32 = u32::MAX;

/// What to do with a packet of this flow: the header values to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatAction {
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub tx_port: PortId,
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
}

/// TCP progress, for timeouts. UDP and affinity entries stay `Open`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum FlowState {
    /// First packet seen, no reply yet.
    #[default]
    New,
    /// Both directions seen.
    Open,
    /// FIN or RST seen: kept briefly for the last segments.
    Closing,
}

/// The part of a slot every packet of an established flow reads: one
/// cache line.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct FlowEntry {
    pub key: FlowKey,
    /// The action compiled for the common IPv4 frame; meaningful when
    /// [`FlowEntry::is_compiled`].
    pub rewrite: Ipv4Rewrite,
    /// The action's egress port.
    pub tx_port: PortId,
    pub state: FlowState,
    flags: u8,
}

const REPLY: u8 = 1;
const COMPILED: u8 = 2;

impl FlowEntry {
    fn new(key: FlowKey, action: &NatAction, state: FlowState, is_reply: bool) -> FlowEntry {
        let compiled = Ipv4Rewrite::compile(&key, action);
        let flags = if is_reply { REPLY } else { 0 } | if compiled.is_some() { COMPILED } else { 0 };
        FlowEntry { key, rewrite: compiled.unwrap_or_default(), tx_port: action.tx_port, state, flags }
    }

    /// Whether this is the reply direction of its flow.
    #[inline]
    pub fn is_reply(&self) -> bool {
        self.flags & REPLY != 0
    }

    /// Whether `rewrite` holds the action (IPv4 TCP and UDP flows).
    #[inline]
    pub fn is_compiled(&self) -> bool {
        self.flags & COMPILED != 0
    }
}

/// The rest of a slot: one cache line too (aligned, so that writing a new
/// flow's never straddles two).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct SlotRest {
    action: NatAction,
    peer: u32,
}

/// A bucket's tags and expiry seconds: one cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct BucketMeta {
    tags: [u32; WAYS],
    /// Second (of the core's clock) after which the way's entry is dead.
    expires: [u32; WAYS],
}

/// A slot index; valid until the entry is removed or evicted.
pub type SlotId = u32;

pub struct FlowTable {
    meta: Array<BucketMeta>,
    slots: Array<FlowEntry>,
    rest: Array<SlotRest>,
    bucket_mask: usize,
    live: usize,
}

/// What an insert displaced to make room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Live entries evicted because their bucket was full.
    pub evicted: u32,
}

#[inline]
fn tag_of(hash: u64) -> u32 {
    // Never 0: that marks an empty way.
    ((hash >> 32) as u32) | 1
}

#[inline]
fn split(slot: usize) -> (usize, usize) {
    (slot / WAYS, slot % WAYS)
}

impl FlowTable {
    /// A table of at least `capacity` entries (rounded up to a power of two,
    /// at least one bucket) on the heap.
    pub fn new(capacity: usize) -> FlowTable {
        FlowTable::new_in(capacity, Placement::Heap).0
    }

    /// As [`FlowTable::new`], where `placement` says; if that fails, on the
    /// heap, with the reason.
    pub fn new_in(capacity: usize, placement: Placement) -> (FlowTable, Option<String>) {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        let (meta, meta_fallback) = Array::filled(buckets, BucketMeta::default(), placement);
        let (slots, slots_fallback) = Array::filled(buckets * WAYS, FlowEntry::default(), placement);
        let (rest, rest_fallback) = Array::filled(buckets * WAYS, SlotRest::default(), placement);
        let table = FlowTable { meta, slots, rest, bucket_mask: buckets - 1, live: 0 };
        (table, meta_fallback.or(slots_fallback).or(rest_fallback))
    }

    /// Where the entries are: "heap" or "dpdk".
    pub fn placement(&self) -> &'static str {
        self.slots.placement_name()
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries in the table, including expired ones not yet reused.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        (hash as usize) & self.bucket_mask
    }

    /// Starts loading `hash`'s bucket metadata line into the cache (the
    /// first of a burst's two prefetch passes).
    #[inline]
    pub fn prefetch_bucket(&self, hash: u64) {
        if let Some(meta) = self.meta.get(self.bucket(hash)) {
            crate::prefetch::prefetch0(meta);
        }
    }

    /// Starts loading the entry whose tag matches `hash` (the second pass,
    /// once the metadata line is in). A tag that matches a different key
    /// costs a wasted line, nothing more.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        let bucket = self.bucket(hash);
        let tag = tag_of(hash);
        let Some(meta) = self.meta.get(bucket) else { return };
        if let Some(way) = meta.tags.iter().position(|&t| t == tag) {
            if let Some(entry) = self.slots.get(bucket * WAYS + way) {
                crate::prefetch::prefetch0(entry);
            }
        }
    }

    /// Finds a live entry for `key`.
    #[inline(always)]
    pub fn lookup(&self, key: &FlowKey, hash: u64, now: u32) -> Option<SlotId> {
        let bucket = self.bucket(hash);
        let tag = tag_of(hash);
        let meta = &self.meta[bucket];
        for way in 0..WAYS {
            if meta.tags[way] == tag && meta.expires[way] > now {
                let slot = bucket * WAYS + way;
                if self.slots[slot].key == *key {
                    return Some(slot as SlotId);
                }
            }
        }
        None
    }

    /// The entry in `slot`, if there is one.
    #[inline]
    pub fn get(&self, slot: SlotId) -> Option<&FlowEntry> {
        let (bucket, way) = split(slot as usize);
        let occupied = self.meta.get(bucket).is_some_and(|m| m.tags[way] != 0);
        occupied.then(|| &self.slots[slot as usize])
    }

    /// The entry in a slot that [`FlowTable::lookup`] just returned (no
    /// occupancy check; an out-of-range slot panics, which a slot from
    /// lookup never is).
    #[inline]
    pub fn entry(&self, slot: SlotId) -> &FlowEntry {
        &self.slots[slot as usize]
    }

    /// The full action of a slot that [`FlowTable::lookup`] just returned
    /// (as [`FlowTable::entry`]).
    #[inline]
    pub fn action(&self, slot: SlotId) -> &NatAction {
        &self.rest[slot as usize].action
    }

    /// The full action in `slot`, if there is an entry.
    #[inline]
    pub fn get_action(&self, slot: SlotId) -> Option<&NatAction> {
        self.get(slot).map(|_| &self.rest[slot as usize].action)
    }

    /// When the entry in `slot` expires (0 when empty).
    pub fn expires_at(&self, slot: SlotId) -> u32 {
        let (bucket, way) = split(slot as usize);
        self.meta.get(bucket).map_or(0, |m| if m.tags[way] != 0 { m.expires[way] } else { 0 })
    }

    /// Refreshes an entry and its peer: same state, same expiry, so a flow
    /// whose traffic runs one way only keeps both directions alive. When
    /// nothing changes (another packet in the same second) the peer's lines
    /// are not touched at all.
    #[inline]
    pub fn touch(&mut self, slot: SlotId, state: FlowState, expires_at: u32) {
        let (bucket, way) = split(slot as usize);
        let Some(meta) = self.meta.get_mut(bucket) else { return };
        if meta.tags[way] == 0 {
            return;
        }
        let entry = &mut self.slots[slot as usize];
        if meta.expires[way] == expires_at && entry.state == state {
            return;
        }
        meta.expires[way] = expires_at;
        entry.state = state;
        let peer = self.rest[slot as usize].peer as usize;
        if peer != NO_PEER as usize {
            let (pb, pw) = split(peer);
            if let Some(m) = self.meta.get_mut(pb) {
                if m.tags[pw] != 0 {
                    m.expires[pw] = expires_at;
                    self.slots[peer].state = state;
                }
            }
        }
    }

    /// Extends an open entry and its peer to `expires_at`. Another packet
    /// in the same second, the common case, only compares.
    #[inline(always)]
    pub fn refresh(&mut self, slot: SlotId, expires_at: u32) {
        let (bucket, way) = split(slot as usize);
        if self.meta.get(bucket).is_some_and(|m| m.expires[way] == expires_at) {
            return;
        }
        self.touch(slot, FlowState::Open, expires_at);
    }

    /// Removes an entry and its peer.
    pub fn remove(&mut self, slot: SlotId) {
        let peer = self.clear(slot as usize);
        if peer != NO_PEER {
            self.clear(peer as usize);
        }
    }

    fn clear(&mut self, slot: usize) -> u32 {
        let (bucket, way) = split(slot);
        match self.meta.get_mut(bucket) {
            Some(m) if m.tags[way] != 0 => {
                m.tags[way] = 0;
                m.expires[way] = 0;
                self.live -= 1;
                self.rest[slot].peer
            }
            _ => NO_PEER,
        }
    }

    /// Picks the way to write in `hash`'s bucket: an empty one, else an
    /// expired one, else the one closest to expiry (evicting it and its
    /// peer). `avoid` is a slot already claimed by this same insert. Only
    /// the bucket's metadata line is read to decide.
    fn claim(&mut self, hash: u64, now: u32, avoid: usize, outcome: &mut InsertOutcome) -> usize {
        let bucket = self.bucket(hash);
        let base = bucket * WAYS;
        let meta = self.meta[bucket];
        let candidates = (0..WAYS).filter(|w| base + w != avoid);
        if let Some(way) = candidates.clone().find(|&w| meta.tags[w] == 0) {
            return base + way;
        }
        if let Some(way) = candidates.clone().find(|&w| meta.expires[w] <= now) {
            self.remove((base + way) as SlotId);
            return base + way;
        }
        let way = candidates.min_by_key(|&w| meta.expires[w]).unwrap_or(0);
        outcome.evicted += 1;
        self.remove((base + way) as SlotId);
        base + way
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        slot: usize,
        hash: u64,
        key: FlowKey,
        action: NatAction,
        state: FlowState,
        is_reply: bool,
        peer: u32,
        expires_at: u32,
    ) {
        let (bucket, way) = split(slot);
        self.meta[bucket].tags[way] = tag_of(hash);
        self.meta[bucket].expires[way] = expires_at;
        self.slots[slot] = FlowEntry::new(key, &action, state, is_reply);
        self.rest[slot] = SlotRest { action, peer };
        self.live += 1;
    }

    /// Inserts a single entry (an affinity record) with no peer.
    pub fn insert(
        &mut self,
        key: FlowKey,
        hash: u64,
        action: NatAction,
        expires_at: u32,
        now: u32,
    ) -> (SlotId, InsertOutcome) {
        let mut outcome = InsertOutcome::default();
        let slot = self.claim(hash, now, usize::MAX, &mut outcome);
        self.write(slot, hash, key, action, FlowState::Open, false, NO_PEER, expires_at);
        (slot as SlotId, outcome)
    }

    /// Inserts the two directions of a NAT flow, linked to each other.
    /// Returns the forward entry's slot.
    pub fn insert_pair(
        &mut self,
        forward: (FlowKey, u64, NatAction),
        reply: (FlowKey, u64, NatAction),
        state: FlowState,
        expires_at: u32,
        now: u32,
    ) -> (SlotId, InsertOutcome) {
        let mut outcome = InsertOutcome::default();
        let f = self.claim(forward.1, now, usize::MAX, &mut outcome);
        // Written before the reply's way is chosen, so that an eviction there
        // cannot pick the forward entry's way.
        self.write(f, forward.1, forward.0, forward.2, state, false, NO_PEER, expires_at);
        let r = self.claim(reply.1, now, f, &mut outcome);
        self.write(r, reply.1, reply.0, reply.2, state, true, f as u32, expires_at);
        self.rest[f].peer = r as u32;
        (f as SlotId, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::from(0x0a00_0000 + i).into(),
            dst: Ipv4Addr::new(10, 96, 0, 1).into(),
            src_port: 1000,
            dst_port: 80,
            proto: 6,
        }
    }

    fn action(i: u16) -> NatAction {
        NatAction {
            src: Addr::UNSPECIFIED,
            dst: Addr::UNSPECIFIED,
            src_port: i,
            dst_port: i,
            tx_port: 0,
            src_mac: MacAddr([0; 6]),
            dst_mac: MacAddr([0; 6]),
        }
    }

    #[test]
    fn pair_lives_and_dies_together() {
        let mut t = FlowTable::new(64);
        let (f, r) = (key(1), key(2));
        let (slot, out) = t.insert_pair((f, f.hash(), action(1)), (r, r.hash(), action(2)), FlowState::New, 30, 0);
        assert_eq!(out.evicted, 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(&f, f.hash(), 1), Some(slot));
        let rs = t.lookup(&r, r.hash(), 1).expect("reply entry");
        assert!(t.get(rs).map(|e| e.is_reply()).unwrap_or(false));
        assert_eq!(t.get_action(rs).map(|a| a.src_port), Some(2));
        t.touch(rs, FlowState::Open, 100);
        assert_eq!((t.get(slot).map(|e| e.state), t.expires_at(slot)), (Some(FlowState::Open), 100));
        assert_eq!(t.expires_at(rs), 100, "the peer is refreshed too");
        assert_eq!(t.lookup(&f, f.hash(), 100), None, "expired at 100");
        t.remove(slot);
        assert!(t.is_empty());
    }

    #[test]
    fn entries_and_metadata_are_one_cache_line_each() {
        assert_eq!(std::mem::size_of::<Ipv4Rewrite>(), 22);
        assert_eq!(std::mem::size_of::<FlowEntry>(), 64);
        assert_eq!(std::mem::align_of::<FlowEntry>(), 64);
        assert_eq!(std::mem::size_of::<BucketMeta>(), 64);
        assert_eq!(std::mem::size_of::<SlotRest>(), 64);
    }

    #[test]
    fn an_expired_entry_before_the_live_one_does_not_hide_it() {
        // One bucket; the same key inserted twice, the first copy expired:
        // the lookup must skip it and find the second.
        let mut t = FlowTable::new(WAYS);
        let k = key(7);
        t.insert(k, k.hash(), action(1), 10, 0);
        let (second, _) = t.insert(k, k.hash(), action(2), 100, 20);
        assert_eq!(t.lookup(&k, k.hash(), 20), Some(second));
        assert_eq!(t.get_action(second).map(|a| a.src_port), Some(2));
    }

    #[test]
    fn a_tag_shared_with_another_key_does_not_hide_the_entry() {
        // Two keys forced to the same bucket and tag (same hash given): the
        // lookup compares keys and finds each.
        let mut t = FlowTable::new(WAYS);
        let (a, b) = (key(1), key(2));
        let hash = a.hash();
        let (sa, _) = t.insert(a, hash, action(1), 100, 0);
        let (sb, _) = t.insert(b, hash, action(2), 100, 0);
        assert_eq!(t.lookup(&a, hash, 1), Some(sa));
        assert_eq!(t.lookup(&b, hash, 1), Some(sb));
        assert_eq!(t.lookup(&key(3), hash, 1), None);
    }

    #[test]
    fn full_bucket_evicts_the_entry_closest_to_expiry() {
        // One bucket: every key lands in it.
        let mut t = FlowTable::new(WAYS);
        for i in 0..WAYS as u32 {
            let k = key(i);
            let (_, out) = t.insert(k, k.hash(), action(i as u16), 100 + i, 0);
            assert_eq!(out.evicted, 0);
        }
        let k = key(99);
        let (_, out) = t.insert(k, k.hash(), action(99), 500, 0);
        assert_eq!(out.evicted, 1);
        assert_eq!(t.len(), WAYS);
        assert_eq!(t.lookup(&key(0), key(0).hash(), 1), None, "the soonest to expire went");
        assert!(t.lookup(&key(1), key(1).hash(), 1).is_some());
        // Expired entries are reused without counting an eviction.
        let k = key(100);
        let (_, out) = t.insert(k, k.hash(), action(100), 900, 200);
        assert_eq!(out.evicted, 0);
    }

    #[test]
    fn pair_in_a_full_single_bucket_table_never_overlaps() {
        let mut t = FlowTable::new(WAYS);
        for i in 0..50u32 {
            let (f, r) = (key(2 * i), key(2 * i + 1));
            let (slot, _) =
                t.insert_pair((f, f.hash(), action(1)), (r, r.hash(), action(2)), FlowState::New, 1000 + i, 0);
            assert_eq!(t.lookup(&f, f.hash(), 1), Some(slot));
            assert!(t.lookup(&r, r.hash(), 1).is_some());
            assert!(t.len() <= WAYS && t.len().is_multiple_of(2));
        }
    }
}
