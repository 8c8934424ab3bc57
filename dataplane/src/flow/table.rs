//! A core's flow table: fixed capacity, set-associative, never allocates
//! after it is built.
//!
//! Layout: buckets of [`WAYS`] slots. A slot is split in two arrays by how
//! often it is read: the entry ([`FlowEntry`], one aligned cache line: the
//! key, the action compiled for the common IPv4 frame, the egress port, the
//! state and the expiry second) that every packet of an established flow
//! reads, and the rest (the full [`NatAction`] and the peer's slot) that
//! only new flows, state changes and the less common frames read. Each
//! bucket also has one metadata line: the ways' tags (32-bit hash
//! fragments, 0 = empty) and expiry seconds, so that searching a bucket,
//! and choosing a way for an insert, read one line to find the candidates.
//! The expiry is kept in both places, and both are written together: the
//! entry's copy serves the established-flow path, the metadata's the rest.
//!
//! Each key has a preferred way in its bucket, chosen by its hash
//! ([`preferred_way`]). An insert takes it when it is free or dead, and the
//! established-flow lookup ([`FlowTable::lookup_ipv4`]) tries it first:
//! while the table is not crowded, an established flow is found by reading
//! its entry's line alone, one cache miss per packet instead of two (the
//! metadata, then the entry), and the burst's prefetch of that one line is
//! all the lookup needs. A key elsewhere in its bucket is found through the
//! metadata. The general lookup, which new flows make and which mostly
//! misses, reads the metadata first: one line to learn that a key is not
//! there.
//!
//! A full bucket evicts the entry closest to expiry (counted by the
//! caller). Entries never move, so a slot index is a stable handle: the two
//! entries of a NAT flow (forward and reply) point at each other by index
//! and live and die together.

use super::action::NatAction;
use super::key::{FlowKey, Ipv4FlowKey};
use super::memory::{Array, Placement};
use super::rewrite::Ipv4Rewrite;
use crate::tables::PortId;

pub const WAYS: usize = 8;
const NO_PEER: u32 = u32::MAX;

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

/// How an entry is matched, and for IPv4 TCP/UDP flows, the rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowMatch {
    /// An IPv4 TCP or UDP flow: its key in wire form and its action
    /// compiled for the common frame. Both fit the entry's line with room
    /// to spare, where the general key alone takes 38 bytes.
    Ipv4 { key: Ipv4FlowKey, rewrite: Ipv4Rewrite },
    /// Any other entry (IPv6, SCTP, affinity records): the key. Its packets
    /// take the general rewrite, from the slot's full action.
    General(FlowKey),
}

impl Default for FlowMatch {
    fn default() -> FlowMatch {
        FlowMatch::General(FlowKey::default())
    }
}

/// The part of a slot every packet of an established flow reads: one
/// cache line.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct FlowEntry {
    /// Second (of the core's clock) after which the entry is dead; 0 in an
    /// empty slot, which is therefore never live.
    expires: u32,
    /// The action's egress port.
    pub tx_port: PortId,
    pub state: FlowState,
    is_reply: bool,
    pub flow: FlowMatch,
}

impl FlowEntry {
    fn new(key: FlowKey, action: &NatAction, state: FlowState, is_reply: bool, expires: u32) -> FlowEntry {
        let flow = match (key.to_ipv4(), Ipv4Rewrite::compile(&key, action)) {
            (Some(key), Some(rewrite)) => FlowMatch::Ipv4 { key, rewrite },
            _ => FlowMatch::General(key),
        };
        FlowEntry { expires, tx_port: action.tx_port, state, is_reply, flow }
    }

    /// Whether this is the reply direction of its flow.
    #[inline]
    pub fn is_reply(&self) -> bool {
        self.is_reply
    }

    /// The flow's key.
    pub fn key(&self) -> FlowKey {
        match &self.flow {
            FlowMatch::Ipv4 { key, .. } => key.to_flow_key(),
            FlowMatch::General(key) => *key,
        }
    }

    /// The second after which the entry is dead.
    #[inline(always)]
    pub fn expires(&self) -> u32 {
        self.expires
    }

    #[inline]
    fn is_live(&self, now: u32) -> bool {
        self.expires > now
    }

    #[inline]
    fn matches(&self, key: &FlowKey) -> bool {
        match &self.flow {
            FlowMatch::Ipv4 { key: k, .. } => key.to_ipv4().as_ref() == Some(k),
            FlowMatch::General(k) => k == key,
        }
    }

    #[inline(always)]
    fn is_ipv4(&self, key: &Ipv4FlowKey) -> bool {
        matches!(&self.flow, FlowMatch::Ipv4 { key: k, .. } if k == key)
    }

    /// The action compiled for the common IPv4 frame, if the flow has one.
    #[inline(always)]
    pub fn rewrite(&self) -> Option<&Ipv4Rewrite> {
        match &self.flow {
            FlowMatch::Ipv4 { rewrite, .. } => Some(rewrite),
            FlowMatch::General(_) => None,
        }
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
    /// Which ways hold an entry, and a fragment of its hash.
    tags: [u32; WAYS],
    /// The entries' expiry seconds (as in [`FlowEntry`]).
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

/// The way a key with this hash takes in its bucket when it can, and a
/// lookup tries first. Bits 29–31: above the bucket index of any table
/// smaller than 2^29 buckets, below the tag.
#[inline(always)]
pub fn preferred_way(hash: u64) -> usize {
    ((hash >> 29) as usize) & (WAYS - 1)
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

    #[inline(always)]
    fn bucket(&self, hash: u64) -> usize {
        (hash as usize) & self.bucket_mask
    }

    #[inline(always)]
    fn preferred_slot(&self, hash: u64) -> usize {
        self.bucket(hash) * WAYS + preferred_way(hash)
    }

    /// Starts loading the line of `hash`'s preferred slot into the cache,
    /// for [`FlowTable::lookup_ipv4`]: a burst does this for all its
    /// packets before looking any up, so that their misses overlap instead
    /// of queuing one behind the other.
    #[inline(always)]
    pub fn prefetch_entry(&self, hash: u64) {
        if let Some(entry) = self.slots.get(self.preferred_slot(hash)) {
            crate::prefetch::prefetch0(entry);
        }
    }

    /// Starts loading `hash`'s bucket metadata line, for
    /// [`FlowTable::lookup`] and inserts.
    #[inline(always)]
    pub fn prefetch_bucket(&self, hash: u64) {
        if let Some(meta) = self.meta.get(self.bucket(hash)) {
            crate::prefetch::prefetch0(meta);
        }
    }

    /// Finds a live entry for `key`: the metadata line first, then the
    /// entries whose tag matches.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, hash: u64, now: u32) -> Option<SlotId> {
        self.find_in_bucket(hash, now, usize::MAX, |entry| entry.matches(key))
    }

    /// Finds the live entry of an IPv4 TCP/UDP flow, and its compiled
    /// rewrite: the established-flow path. The preferred slot first, then
    /// the rest of the bucket through its metadata. Finds only
    /// [`FlowMatch::Ipv4`] entries, which every IPv4 TCP or UDP flow has.
    #[inline(always)]
    pub fn lookup_ipv4(&self, key: &Ipv4FlowKey, hash: u64, now: u32) -> Option<(SlotId, &FlowEntry, &Ipv4Rewrite)> {
        let preferred = self.preferred_slot(hash);
        let entry = self.slots.get(preferred)?;
        match &entry.flow {
            FlowMatch::Ipv4 { key: k, rewrite } if k == key && entry.is_live(now) => {
                Some((preferred as SlotId, entry, rewrite))
            }
            _ => self.lookup_ipv4_elsewhere(*key, hash, now, preferred),
        }
    }

    /// [`FlowTable::lookup_ipv4`] past the preferred slot. Out of line, and
    /// given the key by value, so that the common case keeps the key in
    /// registers.
    #[inline(never)]
    fn lookup_ipv4_elsewhere(
        &self,
        key: Ipv4FlowKey,
        hash: u64,
        now: u32,
        preferred: usize,
    ) -> Option<(SlotId, &FlowEntry, &Ipv4Rewrite)> {
        let slot = self.find_in_bucket(hash, now, preferred, |entry| entry.is_ipv4(&key))?;
        let entry = self.slots.get(slot as usize)?;
        Some((slot, entry, entry.rewrite()?))
    }

    /// The live slot of `hash`'s bucket, other than `skip`, whose tag is
    /// the hash's and whose entry passes `matching`.
    #[inline(never)]
    fn find_in_bucket(
        &self,
        hash: u64,
        now: u32,
        skip: usize,
        matching: impl Fn(&FlowEntry) -> bool,
    ) -> Option<SlotId> {
        let bucket = self.bucket(hash);
        let tag = tag_of(hash);
        let meta = self.meta.get(bucket)?;
        (0..WAYS)
            .filter(|&way| meta.tags[way] == tag && meta.expires[way] > now)
            .map(|way| bucket * WAYS + way)
            .filter(|&slot| slot != skip)
            .find(|&slot| self.slots.get(slot).is_some_and(&matching))
            .map(|slot| slot as SlotId)
    }

    /// The entry in `slot`, if there is one.
    #[inline]
    pub fn get(&self, slot: SlotId) -> Option<&FlowEntry> {
        self.occupied(slot as usize).then(|| &self.slots[slot as usize])
    }

    #[inline]
    fn occupied(&self, slot: usize) -> bool {
        let (bucket, way) = split(slot);
        self.meta.get(bucket).is_some_and(|m| m.tags[way] != 0)
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
        self.get(slot).map_or(0, |e| e.expires)
    }

    /// Refreshes an entry and its peer: same state, same expiry, so a flow
    /// whose traffic runs one way only keeps both directions alive. When
    /// nothing changes (another packet in the same second) the peer's lines
    /// are not touched at all.
    #[inline]
    pub fn touch(&mut self, slot: SlotId, state: FlowState, expires_at: u32) {
        let slot = slot as usize;
        if !self.occupied(slot) {
            return;
        }
        if self.slots[slot].expires == expires_at && self.slots[slot].state == state {
            return;
        }
        self.set(slot, state, expires_at);
        let peer = self.rest[slot].peer as usize;
        if peer != NO_PEER as usize && self.occupied(peer) {
            self.set(peer, state, expires_at);
        }
    }

    /// Writes an occupied slot's state and expiry, in both places.
    fn set(&mut self, slot: usize, state: FlowState, expires_at: u32) {
        let (bucket, way) = split(slot);
        self.meta[bucket].expires[way] = expires_at;
        self.slots[slot].expires = expires_at;
        self.slots[slot].state = state;
    }

    /// Removes an entry and its peer.
    pub fn remove(&mut self, slot: SlotId) {
        let peer = self.clear(slot as usize);
        if peer != NO_PEER {
            self.clear(peer as usize);
        }
    }

    fn clear(&mut self, slot: usize) -> u32 {
        if !self.occupied(slot) {
            return NO_PEER;
        }
        let (bucket, way) = split(slot);
        self.meta[bucket].tags[way] = 0;
        self.meta[bucket].expires[way] = 0;
        // An empty slot is never live, whatever its key.
        self.slots[slot].expires = 0;
        self.live -= 1;
        self.rest[slot].peer
    }

    /// Picks the slot to write for `hash`: the preferred way if it is free
    /// or dead, else an empty way, else an expired one, else the one
    /// closest to expiry (evicting it and its peer). `avoid` is a slot
    /// already claimed by this same insert. Only the bucket's metadata line
    /// is read to decide.
    ///
    /// A dead entry is reused without clearing its peer: the two always
    /// share their expiry (they are written and refreshed together), so the
    /// peer is dead too and will be reused in its turn. Its link back is
    /// never followed, because only live entries' links are (lookups find
    /// only live entries). This spares a new flow the three lines of
    /// another bucket that clearing the peer would touch.
    fn claim(&mut self, hash: u64, now: u32, avoid: usize, outcome: &mut InsertOutcome) -> usize {
        let bucket = self.bucket(hash);
        let base = bucket * WAYS;
        let meta = self.meta[bucket];
        let preferred = preferred_way(hash);
        if base + preferred != avoid && (meta.tags[preferred] == 0 || meta.expires[preferred] <= now) {
            self.clear(base + preferred);
            return base + preferred;
        }
        let candidates = (0..WAYS).filter(|w| base + w != avoid);
        if let Some(way) = candidates.clone().find(|&w| meta.tags[w] == 0) {
            return base + way;
        }
        if let Some(way) = candidates.clone().find(|&w| meta.expires[w] <= now) {
            self.clear(base + way);
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
        self.slots[slot] = FlowEntry::new(key, &action, state, is_reply, expires_at);
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
    use crate::wire::MacAddr;
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
            src: Ipv4Addr::new(10, 0, 0, 1).into(),
            dst: Ipv4Addr::new(10, 244, 0, 1).into(),
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
        // The entry's copy of the expiry says the same as the metadata's.
        let f4 = f.to_ipv4().expect("an IPv4 key");
        assert_eq!(t.lookup_ipv4(&f4, f.hash(), 99).map(|(s, _, _)| s), Some(slot));
        assert_eq!(t.lookup_ipv4(&f4, f.hash(), 100).map(|(s, _, _)| s), None);
        t.remove(slot);
        assert!(t.is_empty());
    }

    #[test]
    fn entries_and_metadata_are_one_cache_line_each() {
        assert_eq!(std::mem::size_of::<Ipv4Rewrite>(), 28);
        assert_eq!(std::mem::size_of::<FlowEntry>(), 64);
        assert_eq!(std::mem::align_of::<FlowEntry>(), 64);
        assert_eq!(std::mem::size_of::<BucketMeta>(), 64);
        assert_eq!(std::mem::size_of::<SlotRest>(), 64);
    }

    #[test]
    fn an_expired_entry_in_the_preferred_way_does_not_hide_the_live_one() {
        // One bucket; the same key inserted twice, the first copy (in the
        // preferred way) then expired: the lookup must skip it and find the
        // second, elsewhere in the bucket.
        let mut t = FlowTable::new(WAYS);
        let k = key(7);
        let (first, _) = t.insert(k, k.hash(), action(1), 10, 0);
        assert_eq!(first as usize, preferred_way(k.hash()));
        let (second, _) = t.insert(k, k.hash(), action(2), 100, 5);
        assert_ne!(first, second);
        assert_eq!(t.lookup(&k, k.hash(), 20), Some(second));
        assert_eq!(t.get_action(second).map(|a| a.src_port), Some(2));
        let v4 = k.to_ipv4().expect("an IPv4 key");
        assert_eq!(t.lookup_ipv4(&v4, k.hash(), 20).map(|(slot, _, _)| slot), Some(second));
        // A dead preferred way is reused first.
        let (third, _) = t.insert(key(8), k.hash(), action(3), 100, 20);
        assert_eq!(third, first);
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
    fn ipv4_tcp_entries_are_compiled_and_others_keep_the_general_key() {
        let mut t = FlowTable::new(64);
        let tcp = key(1);
        let sctp = FlowKey { proto: crate::tables::proto::SCTP, ..key(2) };
        let v6 = FlowKey { dst: std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(), ..key(3) };
        for k in [tcp, sctp, v6] {
            let (slot, _) = t.insert(k, k.hash(), action(1), 100, 0);
            assert_eq!(t.lookup(&k, k.hash(), 1), Some(slot));
            let entry = t.get(slot).expect("an entry");
            assert_eq!(entry.key(), k, "the key as inserted");
            let v4 = k.to_ipv4();
            assert_eq!(entry.rewrite().is_some(), k == tcp, "{k:?}");
            // The established lookup finds only the compiled entry.
            let fast = v4.and_then(|v4| t.lookup_ipv4(&v4, k.hash(), 1)).map(|(s, _, _)| s);
            assert_eq!(fast, (k == tcp).then_some(slot), "{k:?}");
        }
    }

    /// A hash that lands in bucket 0 with the given preferred way and tag.
    fn hash_for(way: usize, tag: u32) -> u64 {
        u64::from(tag) << 32 | (way as u64) << 29
    }

    #[test]
    fn reusing_a_dead_entry_leaves_its_peers_slot_to_its_new_owner() {
        let mut t = FlowTable::new(WAYS);
        let (f, r, a, b, c) = (key(1), key(2), key(3), key(4), key(5));
        let (hf, hr, ha, hb, hc) = (hash_for(0, 1), hash_for(1, 2), hash_for(0, 3), hash_for(2, 4), hash_for(1, 5));
        t.insert_pair((f, hf, action(1)), (r, hr, action(2)), FlowState::Open, 10, 0);
        // At 20 both are dead: `a` reuses f's way; `b` takes an empty one.
        let (sa, _) = t.insert_pair((a, ha, action(3)), (b, hb, action(4)), FlowState::Open, 100, 20);
        assert_eq!(sa, 0);
        assert_eq!(t.len(), 3, "r is left in place until its way is reused");
        // Then r's way is reused. r's link pointed at f's slot, now a's:
        // following it would drop a live flow.
        let (sc, out) = t.insert(c, hc, action(5), 100, 30);
        assert_eq!((sc, out.evicted), (1, 0));
        assert_eq!(t.lookup(&a, ha, 30), Some(sa));
        assert!(t.lookup(&b, hb, 30).is_some());
        assert_eq!(t.lookup(&c, hc, 30), Some(sc));
        assert_eq!((t.lookup(&f, hf, 30), t.lookup(&r, hr, 30)), (None, None));
        // a's own peer is still b.
        t.remove(sa);
        assert_eq!((t.lookup(&a, ha, 30), t.lookup(&b, hb, 30)), (None, None));
        assert_eq!(t.lookup(&c, hc, 30), Some(sc));
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
