//! Arrays in DPDK's memory: hugepages when the EAL has them, on a chosen
//! NUMA socket. The flow tables live here. A table of a few hundred
//! thousand entries spans tens of MiB; on 4 KiB pages every lookup would
//! miss the TLB as well as the cache, on 2 MiB pages a handful of TLB
//! entries cover it.

use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::{strerror, DpdkError};

/// A fixed-length array of `T` in DPDK memory, freed with `rte_free`.
pub struct DpdkArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the array owns its elements exclusively, as a Box<[T]> does;
// DPDK's allocator may be called from any thread.
unsafe impl<T: Copy + Send> Send for DpdkArray<T> {}
// SAFETY: shared access only hands out &T, as for a Box<[T]>.
unsafe impl<T: Copy + Sync> Sync for DpdkArray<T> {}

impl<T: Copy> DpdkArray<T> {
    /// `len` copies of `value` on `socket` (`SOCKET_ID_ANY` for any), at
    /// least cache-line aligned. Needs a started EAL.
    pub fn filled(len: usize, value: T, socket: i32) -> Result<DpdkArray<T>, DpdkError> {
        let bytes = size_of::<T>().checked_mul(len.max(1)).ok_or(DpdkError::Call {
            call: "rte_zmalloc_socket",
            code: 0,
            message: "size overflows".into(),
        })?;
        let align = align_of::<T>().max(64) as u32;
        // SAFETY: the EAL is started (the caller holds an Eal); a null type
        // name is allowed; size and alignment (a power of two) are valid.
        let raw = unsafe { sys::rte_zmalloc_socket(std::ptr::null(), bytes, align, socket) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            // SAFETY: reads the calling thread's rte_errno.
            let code = unsafe { sys::shim_errno() };
            return Err(DpdkError::Call { call: "rte_zmalloc_socket", code, message: strerror(code) });
        };
        for i in 0..len {
            // SAFETY: `ptr` points at room for `len` (at least one) values
            // of T, suitably aligned; writing initialises slot i without
            // reading or dropping what was there (T is Copy).
            unsafe { ptr.as_ptr().add(i).write(value) };
        }
        Ok(DpdkArray { ptr, len })
    }
}

impl<T: Copy> Deref for DpdkArray<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised values live at `ptr` for as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for DpdkArray<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for DpdkArray<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from rte_zmalloc_socket and is freed once;
        // T is Copy, so there is nothing to drop in place.
        unsafe { sys::rte_free(self.ptr.as_ptr().cast()) };
    }
}
