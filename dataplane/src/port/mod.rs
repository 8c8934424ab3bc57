//! Ports: where bursts of packets come from and go to.
//!
//! A core owns one [`PortQueue`] per port (its own rx/tx queue pair), so
//! nothing here is shared between cores. Two implementations:
//! [`crate::dpdk`] (poll-mode drivers; the only unsafe code outside the
//! bindings) and [`mem`] (in-memory, for tests and benches).

pub mod mem;

/// Packets per receive burst.
pub const BURST: usize = 32;

/// A packet buffer a port hands out and takes back (an mbuf for DPDK).
/// Dropping it returns it to its pool.
pub trait PacketBuf: Send {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
}

/// One core's receive/transmit queue pair on one port.
pub trait PortQueue {
    type Buf: PacketBuf;

    /// Receives up to `bufs.capacity() - bufs.len()` packets (at most
    /// [`BURST`]) and appends them to `bufs`. Returns how many.
    fn rx_burst(&mut self, bufs: &mut Vec<Self::Buf>) -> usize;

    /// Transmits packets from the front of `bufs` and removes those the
    /// queue took; the ones left were refused (queue full). Returns how many
    /// were sent.
    fn tx_burst(&mut self, bufs: &mut Vec<Self::Buf>) -> usize;
}

/// Where the control side gets buffers for frames it originates (the slow
/// path's replies), to hand to a core for transmission.
pub trait BufPool: Send + Sync {
    type Buf: PacketBuf;

    /// A buffer holding a copy of `bytes`, or `None` when the pool is empty
    /// or the frame does not fit.
    fn alloc_from(&self, bytes: &[u8]) -> Option<Self::Buf>;
}
