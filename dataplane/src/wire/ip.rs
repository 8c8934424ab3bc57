//! IP protocol numbers, shared by the IPv4 `protocol` field and the IPv6
//! `next_header` field (IANA "Assigned Internet Protocol Numbers").

/// Names for IP protocol numbers.
///
/// The fields themselves stay plain `u8` so unknown protocols pass through
/// untouched; this type only namespaces the constants. They work in `match`
/// patterns: `match ip.protocol() { IpProtocol::TCP => .., _ => .. }`.
pub enum IpProtocol {}

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options extension header.
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// IPv6 Routing extension header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment extension header.
    pub const IPV6_FRAG: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const IPV6_NO_NEXT: u8 = 59;
    /// IPv6 Destination Options extension header.
    pub const IPV6_DEST_OPTS: u8 = 60;
    pub const SCTP: u8 = 132;
}
