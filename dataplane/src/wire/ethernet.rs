//! Ethernet II frames, MAC addresses and 802.1Q / 802.1ad VLAN tags.

use core::fmt;

use super::{read_array, read_u16, write_bytes, write_u16, Error, Result};

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xFF; 6]);
    /// 00:00:00:00:00:00, e.g. the unknown target hardware address of an ARP
    /// request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six octets, in wire order.
    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True for group addresses (the I/G bit, the lowest bit of the first
    /// octet). Broadcast is a multicast address too.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl From<[u8; 6]> for MacAddr {
    #[inline]
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// Names for EtherType values.
///
/// The ethertype stays a plain `u16` in the API so unknown values pass
/// through; this type only namespaces the constants (usable in `match`).
pub enum EtherType {}

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86DD;
    /// 802.1ad service VLAN tag, the outer tag of a QinQ pair.
    pub const QINQ: u16 = 0x88A8;
}

mod field {
    pub const DST_ADDR: usize = 0;
    pub const SRC_ADDR: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Layout of one VLAN tag, relative to its start (just after the ethertype
/// field that announced it).
mod vlan_field {
    /// Tag control information: PCP (3 bits), DEI (1 bit), VLAN id (12 bits).
    pub const TCI: usize = 0;
    /// Ethertype of what follows the tag.
    pub const ETHERTYPE: usize = 2;
    pub const LEN: usize = 4;
    pub const VLAN_ID_MASK: u16 = 0x0FFF;
}

/// A view of an Ethernet II frame: destination and source MAC, ethertype,
/// payload. VLAN tags are not interpreted here; use [`parse_l2`] to find the
/// network-layer header behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the untagged header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking that it holds a full header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr(read_array(self.buffer.as_ref(), field::DST_ADDR))
    }

    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr(read_array(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// The ethertype field right after the addresses (a VLAN TPID for tagged
    /// frames).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header, including any VLAN tags.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        write_bytes(self.buffer.as_mut(), field::DST_ADDR, &addr.0);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        write_bytes(self.buffer.as_mut(), field::SRC_ADDR, &addr.0);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut().get_mut(field::PAYLOAD..).unwrap_or(&mut [])
    }
}

/// Where the network layer starts in a frame, after any VLAN tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L2Header {
    /// Ethertype of the network-layer header (after the tags).
    pub ethertype: u16,
    /// VLAN id (12 bits) of the innermost tag, if the frame was tagged.
    pub vlan: Option<u16>,
    /// Offset of the network-layer header in the frame.
    pub l3_offset: usize,
}

/// Parses the link-layer header of `frame`, skipping one 802.1Q tag, one
/// 802.1ad tag, or a QinQ pair (0x88A8 then 0x8100).
///
/// Errors: [`Error::Truncated`] if the frame ends inside a header or tag;
/// [`Error::Unsupported`] if more VLAN tags follow than that (for instance
/// two 0x8100 tags).
///
/// Ethertypes below 0x0600 (802.3 length fields) are returned as they are;
/// the caller drops them like any other ethertype it does not handle.
pub fn parse_l2(frame: &[u8]) -> Result<L2Header> {
    let header = EthernetFrame::new_checked(frame)?;
    let mut ethertype = header.ethertype();
    let mut offset = field::PAYLOAD;
    let mut vlan = None;

    // Tags nest outer to inner, so the service tag can only come first.
    for tag_type in [EtherType::QINQ, EtherType::VLAN] {
        if ethertype != tag_type {
            continue;
        }
        let tag = frame.get(offset..offset + vlan_field::LEN).ok_or(Error::Truncated)?;
        vlan = Some(read_u16(tag, vlan_field::TCI) & vlan_field::VLAN_ID_MASK);
        ethertype = read_u16(tag, vlan_field::ETHERTYPE);
        offset += vlan_field::LEN;
    }

    if ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
        return Err(Error::Unsupported);
    }
    Ok(L2Header { ethertype, vlan, l3_offset: offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    const SRC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn frame_with(tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&DST);
        frame.extend_from_slice(&SRC);
        for &(tpid, tci) in tags {
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&tci.to_be_bytes());
        }
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(&[0x45, 0, 0, 20]);
        frame
    }

    #[test]
    fn mac_display_and_kinds() {
        let mac = MacAddr([0xaa, 0xbb, 0x0c, 0x00, 0x01, 0xff]);
        assert_eq!(mac.to_string(), "aa:bb:0c:00:01:ff");
        assert_eq!(format!("{mac:?}"), "MacAddr(aa:bb:0c:00:01:ff)");
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(MacAddr(SRC).is_unicast());
        assert!(!MacAddr(SRC).is_broadcast());
    }

    #[test]
    fn frame_getters_and_setters() {
        let mut bytes = frame_with(&[], EtherType::IPV4);
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr(DST));
        assert_eq!(frame.src_addr(), MacAddr(SRC));
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.payload(), &[0x45, 0, 0, 20]);

        frame.set_dst_addr(MacAddr(SRC));
        frame.set_src_addr(MacAddr::BROADCAST);
        frame.set_ethertype(EtherType::ARP);
        frame.payload_mut()[0] = 0x46;
        assert_eq!(frame.dst_addr(), MacAddr(SRC));
        assert_eq!(frame.src_addr(), MacAddr::BROADCAST);
        assert_eq!(frame.ethertype(), EtherType::ARP);
        assert_eq!(bytes[14], 0x46);
    }

    #[test]
    fn short_frame_is_truncated() {
        assert_eq!(EthernetFrame::new_checked(&[0u8; 13][..]), Err(Error::Truncated));
        assert_eq!(parse_l2(&[0u8; 13]), Err(Error::Truncated));
        let empty_payload = [0u8; 14];
        let frame = EthernetFrame::new_checked(&empty_payload[..]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn parse_untagged() {
        let frame = frame_with(&[], EtherType::IPV6);
        assert_eq!(parse_l2(&frame), Ok(L2Header { ethertype: EtherType::IPV6, vlan: None, l3_offset: 14 }));
    }

    #[test]
    fn parse_single_tag() {
        // PCP 5 and DEI set: only the low 12 bits are the VLAN id.
        let frame = frame_with(&[(EtherType::VLAN, 0xB000 | 100)], EtherType::IPV4);
        assert_eq!(parse_l2(&frame), Ok(L2Header { ethertype: EtherType::IPV4, vlan: Some(100), l3_offset: 18 }));
    }

    #[test]
    fn parse_qinq_reports_inner_vlan() {
        let frame = frame_with(&[(EtherType::QINQ, 300), (EtherType::VLAN, 42)], EtherType::ARP);
        assert_eq!(parse_l2(&frame), Ok(L2Header { ethertype: EtherType::ARP, vlan: Some(42), l3_offset: 22 }));
    }

    #[test]
    fn parse_lone_service_tag() {
        let frame = frame_with(&[(EtherType::QINQ, 7)], EtherType::IPV4);
        let l2 = parse_l2(&frame).unwrap();
        assert_eq!((l2.ethertype, l2.vlan, l2.l3_offset), (EtherType::IPV4, Some(7), 18));
    }

    #[test]
    fn parse_rejects_extra_tags_and_truncated_tags() {
        let double_8021q = frame_with(&[(EtherType::VLAN, 1), (EtherType::VLAN, 2)], 0x0800);
        assert_eq!(parse_l2(&double_8021q), Err(Error::Unsupported));
        let triple = frame_with(&[(EtherType::QINQ, 1), (EtherType::VLAN, 2), (EtherType::VLAN, 3)], 0x0800);
        assert_eq!(parse_l2(&triple), Err(Error::Unsupported));

        let tagged = frame_with(&[(EtherType::VLAN, 5)], EtherType::IPV4);
        assert_eq!(parse_l2(&tagged[..17]), Err(Error::Truncated));
        let qinq = frame_with(&[(EtherType::QINQ, 1), (EtherType::VLAN, 2)], 0x0800);
        assert_eq!(parse_l2(&qinq[..21]), Err(Error::Truncated));
        // Exactly up to the end of the tags is fine: an empty network layer
        // is for the next parser to reject.
        assert_eq!(parse_l2(&qinq[..22]).unwrap().l3_offset, 22);
    }
}
