//! Switchyard's dataplane: everything a forwarding core needs.
//!
//! - [`wire`]: typed views over packet bytes, checksums.
//! - [`tables`]: the snapshot the control side publishes (Services, Maglev
//!   rings, neighbours) and its RCU-style publication.
//! - [`flow`]: a core's flow table and source ports.
//! - [`pipeline`]: one packet from parse to verdict.
//! - [`port`]: burst I/O (DPDK, in-memory); [`lcore`]: the run loop;
//!   [`stats`]: the counters; [`prefetch`]: cache hints.
//!
//! The crate is usable without DPDK: tests and benches drive the same
//! pipeline through the in-memory port.

pub mod flow;
pub mod hash;
pub mod lcore;
pub mod pipeline;
pub mod port;
pub mod prefetch;
pub mod stats;
pub mod tables;
pub mod wire;
