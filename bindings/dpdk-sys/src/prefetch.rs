//! `rte_prefetch0` and friends, written in Rust rather than shimmed: they
//! are static-inline in DPDK, and a call through the C shim would cost more
//! than the prefetch saves. The hot path uses them to start the cache misses
//! of a whole burst (flow table lines, packet headers) before it needs them.

/// Brings the cache line holding `p` into every cache level
/// (`rte_prefetch0`). A hint: it never faults, whatever `p` is.
#[inline(always)]
pub fn prefetch0<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 belongs to SSE, which every x86_64 CPU has; a
    // prefetch reads nothing the program can observe and never faults, even
    // for an invalid or unmapped address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PRFM is a hint with no architectural effect; it never faults.
    unsafe {
        core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_of_any_address_is_harmless() {
        let data = [1u8; 256];
        super::prefetch0(data.as_ptr());
        super::prefetch0(std::ptr::null::<u8>());
        super::prefetch0(usize::MAX as *const u64);
        assert_eq!(data[255], 1);
    }
}
