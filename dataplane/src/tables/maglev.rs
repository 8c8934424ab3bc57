//! Maglev consistent hashing (Eisenbud et al., NSDI 2016).
//!
//! Each backend gets a permutation of the ring's slots derived from its
//! identity alone; backends take turns claiming their next preferred free
//! slot. Because a backend's preferences do not depend on who else is in the
//! set, removing one backend moves (almost) only the slots it held, so most
//! new flows keep hashing to the same backend across endpoint changes.
//!
//! Weights: in each round a backend earns credit equal to its weight and
//! claims one slot per `max_weight` of credit, so its share of the ring is
//! proportional to its weight. Weight 0 takes no new flows.

use crate::hash::hash_bytes;

/// Below this many slots per backend the balance gets coarse (the paper's
/// analysis and Katran use ≥ 100).
pub const SLOTS_PER_BACKEND: usize = 100;

/// Ring sizes: the largest prime below each power of two from 2^7 to 2^20.
pub const RING_SIZES: [usize; 14] =
    [127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131_071, 262_139, 524_287, 1_048_573];

/// Default cap on a ring's size: 2^17 − 1, a Mersenne prime (enough for
/// 1,310 backends at 100 slots each).
pub const DEFAULT_MAX_RING_SIZE: usize = 131_071;

/// A ring slot that no backend holds (only when no backend has weight > 0).
pub const EMPTY_SLOT: u16 = u16::MAX;

/// The largest number of backends one ring can index.
pub const MAX_BACKENDS: usize = EMPTY_SLOT as usize;

const OFFSET_SEED: u64 = 0x6d61_676c_6576_0001;
const SKIP_SEED: u64 = 0x6d61_676c_6576_0002;

/// A backend as Maglev sees it: a stable identity (e.g. "10.0.0.7:8080") and
/// a weight.
#[derive(Clone, Copy, Debug)]
pub struct MaglevBackend<'a> {
    pub id: &'a [u8],
    pub weight: u32,
}

/// A built lookup ring: slot → index into the service's backend list.
#[derive(Clone, Debug, Default)]
pub struct MaglevRing {
    slots: Box<[u16]>,
}

impl MaglevRing {
    /// The ring size for `backends` backends: the smallest prime of
    /// [`RING_SIZES`] ≥ 100 × backends, but at most the largest one ≤
    /// `max_size`.
    ///
    /// Sizes come from a coarse ladder rather than "the next prime" because a
    /// ring of another size maps every hash anew: with a ladder, adding or
    /// removing a backend keeps the size, and so keeps Maglev's promise that
    /// only that backend's share of new flows moves.
    pub fn size_for(backends: usize, max_size: usize) -> usize {
        let wanted = backends.max(1).saturating_mul(SLOTS_PER_BACKEND);
        let cap = RING_SIZES.iter().copied().filter(|&s| s <= max_size).max().unwrap_or(RING_SIZES[0]);
        RING_SIZES.iter().copied().find(|&s| s >= wanted).unwrap_or(cap).min(cap)
    }

    /// Builds the ring. `backends.len()` must not exceed [`MAX_BACKENDS`];
    /// extra backends are ignored (the caller reports that).
    pub fn build(backends: &[MaglevBackend<'_>], max_size: usize) -> MaglevRing {
        let backends = &backends[..backends.len().min(MAX_BACKENDS)];
        let size = Self::size_for(backends.len(), max_size);
        let mut slots = vec![EMPTY_SLOT; size].into_boxed_slice();
        let max_weight = backends.iter().map(|b| b.weight).max().unwrap_or(0);
        if max_weight == 0 {
            return MaglevRing { slots };
        }

        // Each backend's permutation is (offset + j * skip) mod size; since
        // size is prime and 1 ≤ skip < size, it visits every slot once.
        let size64 = size as u64;
        let perms: Vec<(u64, u64)> = backends
            .iter()
            .map(|b| {
                let offset = hash_bytes(b.id, OFFSET_SEED) % size64;
                let skip = hash_bytes(b.id, SKIP_SEED) % (size64 - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; backends.len()];
        let mut credit = vec![0u64; backends.len()];
        let mut filled = 0usize;

        'rounds: loop {
            for (i, backend) in backends.iter().enumerate() {
                credit[i] += u64::from(backend.weight);
                while credit[i] >= u64::from(max_weight) {
                    credit[i] -= u64::from(max_weight);
                    let (offset, skip) = perms[i];
                    // Walk this backend's preferences to its next free slot.
                    let slot = loop {
                        let candidate = ((offset + next[i] * skip) % size64) as usize;
                        next[i] += 1;
                        if slots[candidate] == EMPTY_SLOT {
                            break candidate;
                        }
                    };
                    slots[slot] = i as u16;
                    filled += 1;
                    if filled == size {
                        break 'rounds;
                    }
                }
            }
        }
        MaglevRing { slots }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The backend index for a flow hash, or `None` when no backend takes new
    /// flows.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let slot = self.slots[(hash % self.slots.len() as u64) as usize];
        (slot != EMPTY_SLOT).then_some(slot as usize)
    }

    /// Slots held by each backend, for tests and the CLI.
    pub fn shares(&self, backends: usize) -> Vec<usize> {
        let mut shares = vec![0; backends];
        for &s in self.slots.iter() {
            if let Some(count) = shares.get_mut(s as usize) {
                *count += 1;
            }
        }
        shares
    }

    /// Bytes of memory the ring holds.
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u16>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256)).collect()
    }

    fn ring_of(ids: &[String], weights: impl Fn(usize) -> u32) -> MaglevRing {
        let backends: Vec<_> =
            ids.iter().enumerate().map(|(i, id)| MaglevBackend { id: id.as_bytes(), weight: weights(i) }).collect();
        MaglevRing::build(&backends, DEFAULT_MAX_RING_SIZE)
    }

    #[test]
    fn ring_size_is_prime_and_capped() {
        let is_prime = |n: usize| n > 1 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d));
        assert!(RING_SIZES.iter().all(|&s| is_prime(s)));
        assert_eq!(MaglevRing::size_for(1, DEFAULT_MAX_RING_SIZE), 127);
        assert_eq!(MaglevRing::size_for(10, DEFAULT_MAX_RING_SIZE), 1021);
        assert_eq!(MaglevRing::size_for(99, DEFAULT_MAX_RING_SIZE), 16381);
        assert_eq!(MaglevRing::size_for(100, DEFAULT_MAX_RING_SIZE), 16381);
        assert_eq!(MaglevRing::size_for(100_000, DEFAULT_MAX_RING_SIZE), 131_071);
        assert_eq!(MaglevRing::size_for(100, 10_000), 8191);
    }

    #[test]
    fn balance_within_a_few_percent_at_100_backends() {
        let ids = ids(100);
        let ring = ring_of(&ids, |_| 1);
        let shares = ring.shares(100);
        let (min, max) = (*shares.iter().min().unwrap(), *shares.iter().max().unwrap());
        assert!(min > 0);
        let spread = (max - min) as f64 / min as f64;
        assert!(spread <= 0.05, "max {max} min {min} spread {spread}");
    }

    #[test]
    fn weights_set_shares() {
        let ids = ids(4);
        let ring = ring_of(&ids, |i| if i == 0 { 3 } else { 1 });
        let shares = ring.shares(4);
        let ratio = shares[0] as f64 / shares[1] as f64;
        assert!((2.8..=3.2).contains(&ratio), "{shares:?}");
        let zero = ring_of(&ids, |i| u32::from(i != 2));
        assert_eq!(zero.shares(4)[2], 0);
        let none = ring_of(&ids, |_| 0);
        assert_eq!(none.lookup(12345), None);
    }

    #[test]
    fn removing_a_backend_moves_little_more_than_its_share() {
        let all = ids(100);
        let before = ring_of(&all, |_| 1);
        // Remove backend 37; rebuild with the rest (indices shift by one).
        let mut rest = all.clone();
        rest.remove(37);
        let after = ring_of(&rest, |_| 1);
        assert_eq!(before.len(), after.len(), "the ring size must not change");
        let size = before.len() as u64;
        let mut moved = 0;
        for h in 0..size {
            let b = &all[before.lookup(h).unwrap()];
            let a = &rest[after.lookup(h).unwrap()];
            if b != a && b != &all[37] {
                moved += 1;
            }
        }
        // Only the removed backend's ~1% must move; Maglev moves a little
        // more. Allow 3% of slots to change owner among the survivors.
        assert!((moved as f64) < 0.03 * size as f64, "moved {moved} of {size}");
    }
}
