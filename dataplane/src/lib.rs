//! Switchyard's dataplane: everything a forwarding core needs.
//!
//! - [`wire`]: typed views over packet bytes, checksums.
//! - [`tables`]: the snapshot the control side publishes (Services, Maglev
//!   rings, neighbours) and its RCU-style publication.
//! - [`flow`]: a core's flow table and source ports.
//! - [`pipeline`]: one packet from parse to verdict.
//! - [`port`]: burst I/O traits and the in-memory port; `dpdk` (feature
//!   `dpdk`): the EAL, DPDK ports and hugepage arrays, the only module with
//!   unsafe code; [`lcore`]: the run loop; [`stats`]: the counters;
//!   [`prefetch`]: cache hints; [`hash`]: hashes stable across processes.
//!
//! The crate is usable without DPDK: tests and benches drive the same
//! pipeline through the in-memory port. It must not depend on the control
//! side: the control crates build [`tables::Snapshot`]s and publish them,
//! and that snapshot is all the cores know of them.

#![deny(unsafe_code)]

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod flow;
pub mod hash;
pub mod lcore;
pub mod pipeline;
pub mod port;
pub mod prefetch;
pub mod stats;
pub mod tables;
pub mod wire;
