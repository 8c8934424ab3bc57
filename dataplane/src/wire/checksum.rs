//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! # Convention
//!
//! A checksum is handled as the host-order `u16` whose big-endian encoding
//! is the two bytes of the header field: `u16::from_be_bytes(field)`. Every
//! getter (`Ipv4Packet::checksum`, `TcpPacket::checksum`, ...), setter and
//! helper in this module uses that same value, so they compose directly.
//!
//! Sums are one's-complement sums of the data read as big-endian 16-bit
//! words, folded to 16 bits but *not* complemented ([`sum`],
//! [`pseudo_header_v4`], ...). Combine partial sums with [`add`]; the field
//! value is the complement of the total (`!total`, or [`checksum`] for plain
//! data). A received header verifies when the sum over it, checksum field
//! included, is `0xFFFF`.
//!
//! # Incremental updates
//!
//! When a NAT rewrites a field it need not re-read the packet: RFC 1624
//! eqn. 3, `HC' = ~(~HC + ~m + m')`, gives the new checksum from the old one
//! and the old and new field values ([`update_u16`], [`update_4`] for IPv4
//! addresses, [`update_16`] for IPv6 addresses; [`Delta`] to sum several
//! changes once and apply them to more than one checksum). The result equals a
//! from-scratch computation whenever the covered data is not all zero, which
//! is always the case for IP headers (version nibble) and TCP/UDP/ICMPv6
//! (the pseudo-header carries a non-zero protocol number).
//!
//! # UDP's zero rule
//!
//! UDP gives the checksum value 0 a meaning of its own: over IPv4 it says
//! "no checksum was computed" (RFC 768), and such a packet must keep 0 after
//! a rewrite, since the receiver skips the check. A checksum that computes to
//! 0 is therefore sent as `0xFFFF`, which is the same number in one's
//! complement arithmetic (RFC 768; RFC 8200 §8.1 for IPv6, where 0 is never
//! valid). Use [`udp_on_wire`] after a from-scratch computation and
//! [`update_udp`] around an incremental one. TCP and ICMP have no such rule:
//! a computed 0 is sent as 0.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a wide accumulator of 16-bit words to 16 bits with end-around
/// carry.
///
/// Any width works because 2^16 ≡ 1 (mod 0xFFFF): bits above 16 are just
/// carries still to be added back in. Zero stays zero; a non-zero multiple
/// of 0xFFFF folds to 0xFFFF ("negative zero").
#[inline(always)]
pub fn fold(acc: u64) -> u16 {
    // A fixed number of rounds, no loop: this runs twice per forwarded
    // packet. Bounds: < 2^33 after the first, < 2^17 + 2^16 after the
    // second, at most 0x1_0001 after the third, at most 0xFFFF after the
    // fourth.
    let acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    acc as u16
}

/// The change of some 16-bit-aligned fields, summed once and applied to
/// every checksum that covers them (RFC 1624 eqn. 3 with the field terms
/// added before folding). A NAT rewrite changes the addresses, which both
/// the IPv4 header checksum and the TCP/UDP pseudo-header cover: their
/// delta is computed once and shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// A 16-bit field went from `old` to `new`.
    #[inline(always)]
    pub fn u16(self, old: u16, new: u16) -> Delta {
        Delta(self.0 + u64::from(!old) + u64::from(new))
    }

    /// A 32-bit, 16-bit-aligned field (an IPv4 address, two adjacent ports)
    /// went from `old` to `new`. Complementing a 32-bit number negates both
    /// of its 16-bit halves (0xFFFF_FFFF is a multiple of 0xFFFF).
    #[inline(always)]
    pub fn u32(self, old: u32, new: u32) -> Delta {
        Delta(self.0 + u64::from(!old) + u64::from(new))
    }

    /// A 16-byte field (an IPv6 address) went from `old` to `new`.
    #[inline(always)]
    pub fn bytes16(self, old: &[u8; 16], new: &[u8; 16]) -> Delta {
        Delta(self.0 + complement_words32_sum(old) + words32_sum(new))
    }

    /// The checksum `check` after the changes.
    #[inline(always)]
    pub fn apply(self, check: u16) -> u16 {
        !fold(u64::from(!check) + self.0)
    }

    /// The changes as one folded 16-bit one's-complement sum, for a delta
    /// computed once and applied to many packets ([`apply_folded`]).
    #[inline]
    pub fn folded(self) -> u16 {
        fold(self.0)
    }
}

/// The checksum `check` after changes whose [`Delta::folded`] sum is
/// `delta`. One fold is enough: the sum of two 16-bit numbers fits in 17
/// bits. Both may be in either byte order, as long as it is the same one
/// (RFC 1071 §2(B)), so a field can be updated as read from memory.
#[inline(always)]
pub fn apply_folded(check: u16, delta: u16) -> u16 {
    let acc = u32::from(!check) + u32::from(delta);
    !(((acc & 0xFFFF) + (acc >> 16)) as u16)
}

/// One's-complement addition of two 16-bit sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// One's-complement sum of `data` read as big-endian 16-bit words, folded
/// but not complemented. An odd final byte counts as the high byte of a word
/// whose low byte is zero.
///
/// Cheap on long buffers: it adds eight bytes at a time into a `u64` with
/// end-around carry, in native byte order. The one's-complement sum commutes
/// with byte swapping (RFC 1071 §2(B)), so one swap of the folded result
/// converts it to the big-endian sum.
pub fn sum(data: &[u8]) -> u16 {
    let (blocks, tail) = data.as_chunks::<8>();
    let mut acc: u64 = 0;
    for block in blocks {
        let (total, carry) = acc.overflowing_add(u64::from_ne_bytes(*block));
        // When it carried, `total` is at most u64::MAX - 1, so this cannot
        // overflow.
        acc = total + u64::from(carry);
    }
    // The tail starts at an even offset, so zero-padding it at the end keeps
    // every byte in its place within its 16-bit word.
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    let (total, carry) = acc.overflowing_add(u64::from_ne_bytes(last));
    acc = total + u64::from(carry);
    u16::from_be(fold(acc))
}

/// The Internet checksum of `data` on its own: the value to store in a
/// checksum field covering exactly these bytes (with the field zeroed).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 / RFC 768):
/// source, destination, protocol and the upper-layer length in bytes.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    // Adding each address as one 32-bit number is the same as adding its
    // two 16-bit halves, since 2^16 ≡ 1 (mod 0xFFFF).
    let acc = u64::from(u32::from(src)) + u64::from(u32::from(dst)) + u64::from(protocol) + u64::from(length);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination,
/// the upper-layer packet length (32 bits) and the next-header value.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let acc = words32_sum(&src.octets()) + words32_sum(&dst.octets()) + u64::from(next_header) + u64::from(length);
    fold(acc)
}

/// Sum of a 16-byte value as four 32-bit big-endian numbers (unfolded).
#[inline]
fn words32_sum(bytes: &[u8; 16]) -> u64 {
    let (words, _) = bytes.as_chunks::<4>();
    words.iter().map(|word| u64::from(u32::from_be_bytes(*word))).sum()
}

/// Same as [`words32_sum`] over the complement of `bytes`: the
/// one's-complement negation of each word.
#[inline]
fn complement_words32_sum(bytes: &[u8; 16]) -> u64 {
    let (words, _) = bytes.as_chunks::<4>();
    words.iter().map(|word| u64::from(!u32::from_be_bytes(*word))).sum()
}

/// Incrementally updates checksum `check` after a 16-bit field covered by
/// it changed from `old` to `new` (RFC 1624 eqn. 3).
#[inline]
pub fn update_u16(check: u16, old: u16, new: u16) -> u16 {
    Delta::default().u16(old, new).apply(check)
}

/// Incrementally updates checksum `check` after a 4-byte, 16-bit-aligned
/// field (an IPv4 address) changed from `old` to `new`.
#[inline]
pub fn update_4(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    Delta::default().u32(u32::from_be_bytes(old), u32::from_be_bytes(new)).apply(check)
}

/// Incrementally updates checksum `check` after a 16-byte, 16-bit-aligned
/// field (an IPv6 address) changed from `old` to `new`.
#[inline]
pub fn update_16(check: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    Delta::default().bytes16(old, new).apply(check)
}

/// The value to store in a UDP checksum field for a freshly computed
/// checksum: a computed 0 is sent as `0xFFFF`, because 0 on the wire means
/// "no checksum" (see the module docs).
#[inline]
pub fn udp_on_wire(computed: u16) -> u16 {
    if computed == 0 {
        0xFFFF
    } else {
        computed
    }
}

/// Applies an incremental update to a UDP checksum field, honouring UDP's
/// zero rule: a field of 0 ("no checksum", IPv4) stays 0, and a result of 0
/// is stored as `0xFFFF`.
///
/// ```
/// use dataplane::wire::checksum::{update_u16, update_udp};
/// let (old_port, new_port) = (53, 5353);
/// assert_eq!(update_udp(0, |c| update_u16(c, old_port, new_port)), 0);
/// ```
#[inline]
pub fn update_udp(check: u16, update: impl FnOnce(u16) -> u16) -> u16 {
    if check == 0 {
        0
    } else {
        udp_on_wire(update(check))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: add big-endian words one at a time.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            acc += hi | lo;
        }
        fold(acc)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn sum_matches_reference_for_every_length_and_offset() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 151 + 7) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(sum(&data[start..end]), reference_sum(&data[start..end]));
            }
        }
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xAB]), 0xAB00);
        assert_eq!(sum(&[0xFF; 64]), 0xFFFF);
    }

    #[test]
    fn fold_matches_a_fold_until_it_fits() {
        let reference = |mut acc: u64| {
            while acc > 0xFFFF {
                acc = (acc & 0xFFFF) + (acc >> 16);
            }
            acc as u16
        };
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let edges = [0, 1, 0xFFFF, 0x1_0000, 0x1_FFFE, 0xFFFF_FFFF, 0x1_0000_0000, u64::MAX, u64::MAX - 1];
        for acc in edges.into_iter().chain((0..10_000).map(|_| {
            x = crate::hash::mix64(x);
            x >> (x % 48)
        })) {
            assert_eq!(fold(acc), reference(acc), "{acc:#x}");
        }
    }

    #[test]
    fn one_delta_updates_two_checksums_like_separate_updates() {
        let (old, new) = ([10u8, 0, 0, 1], [192u8, 168, 7, 9]);
        let delta = Delta::default().u32(u32::from_be_bytes(old), u32::from_be_bytes(new)).u16(80, 8080);
        for check in [0u16, 0x1234, 0xFFFF, 0xB861] {
            assert_eq!(delta.apply(check), update_u16(update_4(check, old, new), 80, 8080));
        }
    }

    #[test]
    fn fold_and_add() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xFFFF), 0xFFFF);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0xFFFF_FFFF_FFFF_FFFF), 0xFFFF);
        assert_eq!(add(0xFFFF, 1), 1);
        assert_eq!(add(0x8000, 0x8000), 1);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: the rest of the header sums to 0xCD7A and a field
        // changes from 0x5555 to 0x3285. Eqn. 3 must give 0x0000, the same
        // as recomputing, where the flawed eqn. 2 gave 0xFFFF.
        let check = !add(0xCD7A, 0x5555);
        assert_eq!(check, 0xDD2F);
        assert_eq!(update_u16(check, 0x5555, 0x3285), 0x0000);
        assert_eq!(update_u16(check, 0x5555, 0x3285), !add(0xCD7A, 0x3285));
    }

    #[test]
    fn address_updates_match_recomputation() {
        let mut data = [0x45u8, 0, 0, 40, 1, 2, 3, 4, 10, 0, 0, 1, 192, 168, 1, 1];
        let before = checksum(&data);
        let old: [u8; 4] = [10, 0, 0, 1];
        let new: [u8; 4] = [172, 16, 254, 3];
        data[8..12].copy_from_slice(&new);
        assert_eq!(update_4(before, old, new), checksum(&data));

        let mut data6 = [0u8; 34];
        data6[0] = 0x60;
        let old6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets();
        let new6 = Ipv6Addr::new(0xfd00, 0xffff, 1, 2, 3, 4, 5, 0xfffe).octets();
        data6[2..18].copy_from_slice(&old6);
        let before = checksum(&data6);
        data6[2..18].copy_from_slice(&new6);
        assert_eq!(update_16(before, &old6, &new6), checksum(&data6));
    }

    #[test]
    fn pseudo_headers_match_laid_out_bytes() {
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(198, 51, 100, 200);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 17, 0x12, 0x34]);
        assert_eq!(pseudo_header_v4(src, dst, 17, 0x1234), sum(&bytes));

        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xffff, 0xeeee, 0xdddd, 0xcccc);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(pseudo_header_v6(src, dst, 58, 0x0001_0203), sum(&bytes));
    }

    #[test]
    fn udp_zero_rule() {
        assert_eq!(udp_on_wire(0), 0xFFFF);
        assert_eq!(udp_on_wire(0x1234), 0x1234);
        assert_eq!(update_udp(0, |_| 0x1234), 0);
        assert_eq!(update_udp(0x1111, |_| 0), 0xFFFF);
        assert_eq!(update_udp(0x1111, |c| c + 1), 0x1112);
    }
}
