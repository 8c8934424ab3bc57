//! A flow's NAT action: the header values its packets leave with. The table
//! stores it (in the slot's second line) and both rewrites read it: the
//! general one per packet, the compiled one once when the flow is created.

use crate::tables::{Addr, PortId};
use crate::wire::MacAddr;

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
