//! Cache prefetch hints for the hot path. The instruction is unsafe to name
//! in Rust, so it lives in the bindings crate (as DPDK's `rte_prefetch0`);
//! a build without DPDK gets a no-op and the same code otherwise.

#[cfg(feature = "dpdk")]
pub use dpdk_sys::prefetch0;

/// Without the bindings: no hint, nothing else changes.
#[cfg(not(feature = "dpdk"))]
#[inline(always)]
pub fn prefetch0<T>(_p: *const T) {}
