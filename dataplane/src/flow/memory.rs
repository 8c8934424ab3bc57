//! Where a flow table's arrays live: the heap, or DPDK's memory (hugepages
//! when the EAL has them). The table looks the same either way; only the
//! TLB sees the difference, and on a table of tens of MiB that difference
//! is a page walk per packet.

use std::ops::{Deref, DerefMut};

#[cfg(feature = "dpdk")]
use crate::dpdk::DpdkArray;

/// Where to put a flow table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// The process heap: tests, benches, builds without DPDK.
    #[default]
    Heap,
    /// DPDK's memory on a NUMA socket (a worker's own), which needs a
    /// started EAL. Falls back to the heap if DPDK cannot give it.
    Dpdk { socket: i32 },
}

/// A fixed-length array in one of the placements.
pub(crate) enum Array<T: Copy> {
    Heap(Box<[T]>),
    #[cfg(feature = "dpdk")]
    Dpdk(DpdkArray<T>),
}

impl<T: Copy> Array<T> {
    /// `len` copies of `value` where `placement` says, or on the heap with
    /// the reason DPDK could not.
    pub(crate) fn filled(len: usize, value: T, placement: Placement) -> (Array<T>, Option<String>) {
        match placement {
            Placement::Heap => (Array::Heap(vec![value; len].into_boxed_slice()), None),
            #[cfg(feature = "dpdk")]
            Placement::Dpdk { socket } => match DpdkArray::filled(len, value, socket) {
                Ok(array) => (Array::Dpdk(array), None),
                Err(e) => (Array::Heap(vec![value; len].into_boxed_slice()), Some(e.to_string())),
            },
            #[cfg(not(feature = "dpdk"))]
            Placement::Dpdk { .. } => {
                (Array::Heap(vec![value; len].into_boxed_slice()), Some("built without DPDK".into()))
            }
        }
    }

    pub(crate) fn placement_name(&self) -> &'static str {
        match self {
            Array::Heap(_) => "heap",
            #[cfg(feature = "dpdk")]
            Array::Dpdk(_) => "dpdk",
        }
    }
}

impl<T: Copy> Deref for Array<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        match self {
            Array::Heap(b) => b,
            #[cfg(feature = "dpdk")]
            Array::Dpdk(d) => d,
        }
    }
}

impl<T: Copy> DerefMut for Array<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Array::Heap(b) => b,
            #[cfg(feature = "dpdk")]
            Array::Dpdk(d) => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_arrays_are_filled() {
        let (a, why) = Array::filled(5, 7u32, Placement::Heap);
        assert!(why.is_none());
        assert_eq!(&*a, &[7; 5]);
        assert_eq!(a.placement_name(), "heap");
    }
}
