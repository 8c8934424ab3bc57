//! Building whole frames: Ethernet + IPv4/IPv6 + TCP/UDP with correct
//! lengths and checksums. For the slow path (replies it originates), tests,
//! benches and traffic generators; not for the per-packet path (it
//! allocates).

use std::net::IpAddr;

use super::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr, TcpPacket, UdpPacket};

/// The transport part of a frame to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp { src_port: u16, dst_port: u16, flags: u8, seq: u32, ack: u32 },
    Udp { src_port: u16, dst_port: u16 },
}

/// A frame to build. Addresses must be of one family.
#[derive(Clone, Debug)]
pub struct FrameSpec<'a> {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub transport: Transport,
    pub payload: &'a [u8],
}

const ETH: usize = 14;
const IPV4: usize = 20;
const IPV6: usize = 40;
const TCP: usize = 20;
const UDP: usize = 8;

impl FrameSpec<'_> {
    /// The frame's bytes; `None` when the addresses are of two families or
    /// the payload does not fit an IP packet.
    pub fn build(&self) -> Option<Vec<u8>> {
        let (protocol, l4_len) = match self.transport {
            Transport::Tcp { .. } => (IpProtocol::TCP, TCP + self.payload.len()),
            Transport::Udp { .. } => (IpProtocol::UDP, UDP + self.payload.len()),
        };
        let l3_len = match self.src {
            IpAddr::V4(_) => IPV4,
            IpAddr::V6(_) => IPV6,
        };
        let l4_len16 = u16::try_from(l4_len).ok()?;
        let total16 = u16::try_from(l3_len + l4_len).ok()?;
        let mut frame = vec![0u8; ETH + l3_len + l4_len];

        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(self.dst_mac);
        eth.set_src_addr(self.src_mac);

        let (l3, l4) = frame[ETH..].split_at_mut(l3_len);
        let header_len = l4_len - self.payload.len();
        l4[header_len..].copy_from_slice(self.payload);
        match self.transport {
            Transport::Tcp { src_port, dst_port, flags, seq, ack } => {
                let mut tcp = TcpPacket::new_unchecked(&mut *l4);
                tcp.set_src_port(src_port);
                tcp.set_dst_port(dst_port);
                tcp.set_seq_number(seq);
                tcp.set_ack_number(ack);
                tcp.set_header_len(TCP);
                tcp.set_flags(flags);
                tcp.set_window(65535);
            }
            Transport::Udp { src_port, dst_port } => {
                let mut udp = UdpPacket::new_unchecked(&mut *l4);
                udp.set_src_port(src_port);
                udp.set_dst_port(dst_port);
                udp.set_length(l4_len16);
            }
        }

        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut ip = Ipv4Packet::new_unchecked(&mut *l3);
                ip.set_version(4);
                ip.set_header_len(IPV4);
                ip.set_total_len(total16);
                ip.set_dont_frag(true);
                ip.set_ttl(self.ttl);
                ip.set_protocol(protocol);
                ip.set_src_addr(src);
                ip.set_dst_addr(dst);
                ip.fill_checksum();
                match self.transport {
                    Transport::Tcp { .. } => TcpPacket::new_unchecked(&mut *l4).fill_checksum_v4(src, dst),
                    Transport::Udp { .. } => UdpPacket::new_unchecked(&mut *l4).fill_checksum_v4(src, dst),
                }
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut ip = Ipv6Packet::new_unchecked(&mut *l3);
                ip.set_version(6);
                ip.set_payload_len(l4_len16);
                ip.set_next_header(protocol);
                ip.set_hop_limit(self.ttl);
                ip.set_src_addr(src);
                ip.set_dst_addr(dst);
                match self.transport {
                    Transport::Tcp { .. } => TcpPacket::new_unchecked(&mut *l4).fill_checksum_v6(src, dst),
                    Transport::Udp { .. } => UdpPacket::new_unchecked(&mut *l4).fill_checksum_v6(src, dst),
                }
            }
            _ => return None,
        }
        let ethertype = if l3_len == IPV4 { EtherType::IPV4 } else { EtherType::IPV6 };
        EthernetFrame::new_unchecked(&mut frame[..]).set_ethertype(ethertype);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_l2;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn spec(src: IpAddr, dst: IpAddr, transport: Transport) -> FrameSpec<'static> {
        FrameSpec {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src,
            dst,
            ttl: 64,
            transport,
            payload: b"hello",
        }
    }

    #[test]
    fn built_frames_parse_and_verify() {
        let v4 = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let tcp = Transport::Tcp { src_port: 1234, dst_port: 80, flags: 0x02, seq: 1, ack: 0 };
        let frame = spec(v4.0, v4.1, tcp).build().unwrap();
        assert_eq!(parse_l2(&frame).unwrap().ethertype, EtherType::IPV4);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
        assert_eq!(t.dst_port(), 80);

        let v6 = (IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V6("fd00::2".parse().unwrap()));
        let frame = spec(v6.0, v6.1, Transport::Udp { src_port: 5, dst_port: 53 }).build().unwrap();
        let ip = Ipv6Packet::new_checked(&frame[14..]).unwrap();
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum_v6(ip.src_addr(), ip.dst_addr()));
        assert!(spec(v4.0, v6.1, tcp).build().is_none());
    }
}
