//! Hashes that must give the same answer on every core and in every process.
//!
//! `std`'s default hasher is randomly seeded per process, which would make a
//! Maglev ring built by the control thread disagree with one built after a
//! restart, and flows hash to different slots. These are small, fast and
//! fixed: a 64-bit multiply–xorshift mixer (the finaliser of SplitMix64) folded
//! over 8-byte words.

use std::hash::{BuildHasher, Hasher};

const WORD_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser: every input bit affects every output bit.
#[inline(always)]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The high and low halves of a 64 × 64 → 128-bit product, xored: one
/// multiply that spreads every input bit over the whole result (the folded
/// multiply of foldhash and wyhash). It is 0 when either input is 0, so
/// callers xor their inputs with odd constants first.
#[inline(always)]
pub fn fold_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// 128 bits of a stable hash of `bytes`, as 32 hex digits: the shape of a
/// Kubernetes UID without dashes (kubelet's static pod UIDs). The control
/// side names things derived from content with it (static pods, the ports of
/// standalone EndpointSlices), so the same content gets the same name after a
/// restart.
pub fn hash_hex(bytes: &[u8]) -> String {
    format!("{:016x}{:016x}", hash_bytes(bytes, 0x7374_6174_6963), hash_bytes(bytes, 0x706f_6473))
}

/// Hashes a byte string with a seed; stable across processes and versions.
pub fn hash_bytes(bytes: &[u8], seed: u64) -> u64 {
    let mut state = mix64(seed ^ (bytes.len() as u64).wrapping_mul(WORD_MIX));
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        state = mix64(state ^ u64::from_le_bytes(word)).wrapping_add(WORD_MIX);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        state = mix64(state ^ u64::from_le_bytes(word));
    }
    state
}

/// A `Hasher` for the lookup tables (service map, neighbours): fixed seed, so
/// lookups cost the same in every process and no random state is read.
#[derive(Default, Clone, Copy)]
pub struct StableHasher {
    state: u64,
}

impl Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.state)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.state = hash_bytes(bytes, self.state);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.state = mix64(self.state ^ i).wrapping_add(WORD_MIX);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

/// Builds [`StableHasher`]s; use it as the `S` of a `HashMap`.
#[derive(Default, Clone, Copy)]
pub struct StableState;

impl BuildHasher for StableState {
    type Hasher = StableHasher;

    #[inline]
    fn build_hasher(&self) -> StableHasher {
        StableHasher::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_seed_sensitive() {
        assert_eq!(hash_bytes(b"10.0.0.1:80", 1), hash_bytes(b"10.0.0.1:80", 1));
        assert_ne!(hash_bytes(b"10.0.0.1:80", 1), hash_bytes(b"10.0.0.1:80", 2));
        assert_ne!(hash_bytes(b"10.0.0.1:80", 1), hash_bytes(b"10.0.0.2:80", 1));
        // Same prefix, different length: the length is part of the hash.
        assert_ne!(hash_bytes(b"a", 0), hash_bytes(b"a\0", 0));
    }

    #[test]
    fn fold_mul_spreads_one_bit_over_both_halves() {
        let base = fold_mul(0x0123_4567_89ab_cdef, WORD_MIX);
        for bit in 0..64 {
            let flipped = fold_mul(0x0123_4567_89ab_cdef ^ (1 << bit), WORD_MIX);
            let changed = (base ^ flipped).count_ones();
            assert!((8..=56).contains(&changed), "bit {bit} changed {changed} bits");
        }
    }
}
