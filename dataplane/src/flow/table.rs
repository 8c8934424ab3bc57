//! A core's flow table: fixed capacity, set-associative, never allocates
//! after it is built.
//!
//! Layout: buckets of [`WAYS`] slots. A bucket's tags (32-bit hash
//! fragments, 0 = empty) fill half a cache line and are compared first, so a
//! lookup touches one tag line and, on a tag match, one slot. A full bucket
//! evicts the entry closest to expiry (counted by the caller). Entries never
//! move, so a slot index is a stable handle: the two entries of a NAT flow
//! (forward and reply) point at each other by index and live and die
//! together.

use super::key::FlowKey;
use crate::tables::{Addr, PortId};
use crate::wire::MacAddr;

pub const WAYS: usize = 8;
const NO_PEER: u32 = u32::MAX;

/// What to do with a packet of this flow: the header values to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FlowState {
    /// First packet seen, no reply yet.
    New,
    /// Both directions seen.
    Open,
    /// FIN or RST seen: kept briefly for the last segments.
    Closing,
}

#[derive(Clone, Copy, Debug)]
pub struct FlowEntry {
    pub key: FlowKey,
    pub action: NatAction,
    /// Second (of the core's clock) after which the entry is dead.
    pub expires_at: u32,
    pub state: FlowState,
    /// Whether this is the reply direction of its flow.
    pub is_reply: bool,
    peer: u32,
}

/// A slot index; valid until the entry is removed or evicted.
pub type SlotId = u32;

pub struct FlowTable {
    tags: Box<[[u32; WAYS]]>,
    slots: Box<[Option<FlowEntry>]>,
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

impl FlowTable {
    /// A table of at least `capacity` entries (rounded up to a power of two,
    /// at least one bucket).
    pub fn new(capacity: usize) -> FlowTable {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        FlowTable {
            tags: vec![[0u32; WAYS]; buckets].into_boxed_slice(),
            slots: vec![None; buckets * WAYS].into_boxed_slice(),
            bucket_mask: buckets - 1,
            live: 0,
        }
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

    /// Finds a live entry for `key`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, hash: u64, now: u32) -> Option<SlotId> {
        let bucket = self.bucket(hash);
        let tag = tag_of(hash);
        let tags = &self.tags[bucket];
        for (way, &t) in tags.iter().enumerate() {
            if t != tag {
                continue;
            }
            let slot = bucket * WAYS + way;
            if let Some(entry) = &self.slots[slot] {
                if entry.key == *key && entry.expires_at > now {
                    return Some(slot as SlotId);
                }
            }
        }
        None
    }

    #[inline]
    pub fn get(&self, slot: SlotId) -> Option<&FlowEntry> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Refreshes an entry and its peer: same state, same expiry, so a flow
    /// whose traffic runs one way only keeps both directions alive.
    #[inline]
    pub fn touch(&mut self, slot: SlotId, state: FlowState, expires_at: u32) {
        let peer = match self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
            Some(e) => {
                e.state = state;
                e.expires_at = expires_at;
                e.peer
            }
            None => return,
        };
        if let Some(p) = self.slots.get_mut(peer as usize).and_then(Option::as_mut) {
            p.state = state;
            p.expires_at = expires_at;
        }
    }

    /// Removes an entry and its peer.
    pub fn remove(&mut self, slot: SlotId) {
        let peer = self.clear(slot as usize);
        if peer != NO_PEER {
            self.clear(peer as usize);
        }
    }

    fn clear(&mut self, slot: usize) -> u32 {
        match self.slots.get_mut(slot).and_then(Option::take) {
            Some(e) => {
                self.tags[slot / WAYS][slot % WAYS] = 0;
                self.live -= 1;
                e.peer
            }
            None => NO_PEER,
        }
    }

    /// Picks the way to write in `hash`'s bucket: an empty or expired one,
    /// else the one closest to expiry (evicting it and its peer). `avoid`
    /// is a slot already claimed by this same insert.
    fn claim(&mut self, hash: u64, now: u32, avoid: usize, outcome: &mut InsertOutcome) -> usize {
        let bucket = self.bucket(hash);
        let mut victim = bucket * WAYS;
        let mut victim_expiry = u32::MAX;
        for way in 0..WAYS {
            let slot = bucket * WAYS + way;
            if slot == avoid {
                continue;
            }
            match &self.slots[slot] {
                None => return slot,
                Some(e) if e.expires_at <= now => {
                    self.remove(slot as SlotId);
                    return slot;
                }
                Some(e) if e.expires_at < victim_expiry => {
                    victim = slot;
                    victim_expiry = e.expires_at;
                }
                Some(_) => {}
            }
        }
        outcome.evicted += 1;
        self.remove(victim as SlotId);
        victim
    }

    fn write(&mut self, slot: usize, hash: u64, entry: FlowEntry) {
        self.tags[slot / WAYS][slot % WAYS] = tag_of(hash);
        self.slots[slot] = Some(entry);
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
        let entry = FlowEntry { key, action, expires_at, state: FlowState::Open, is_reply: false, peer: NO_PEER };
        self.write(slot, hash, entry);
        (slot as SlotId, outcome)
    }

    /// Inserts the two directions of a NAT flow, linked to each other.
    /// Returns the forward entry's slot.
    #[allow(clippy::too_many_arguments)]
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
        // Mark f taken before claiming r, so r cannot pick it.
        self.tags[f / WAYS][f % WAYS] = tag_of(forward.1);
        let r = self.claim(reply.1, now, f, &mut outcome);
        self.tags[f / WAYS][f % WAYS] = 0;
        let entry = |key, action, is_reply, peer: usize| FlowEntry {
            key,
            action,
            expires_at,
            state,
            is_reply,
            peer: peer as u32,
        };
        self.write(f, forward.1, entry(forward.0, forward.2, false, r));
        self.write(r, reply.1, entry(reply.0, reply.2, true, f));
        (f as SlotId, outcome)
    }

    /// Live (unexpired) entries, for the CLI's flow listing.
    pub fn iter_live(&self, now: u32) -> impl Iterator<Item = &FlowEntry> {
        self.slots.iter().flatten().filter(move |e| e.expires_at > now)
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
        assert!(t.get(rs).map(|e| e.is_reply).unwrap_or(false));
        t.touch(rs, FlowState::Open, 100);
        assert_eq!(t.get(slot).map(|e| (e.state, e.expires_at)), Some((FlowState::Open, 100)));
        assert_eq!(t.lookup(&f, f.hash(), 100), None, "expired at 100");
        t.remove(slot);
        assert!(t.is_empty());
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
