//! DPDK: the EAL, the packet pool, ports with one rx/tx queue pair per
//! worker core (RSS spreads flows over the queues), mbufs as
//! [`PacketBuf`]s (so a DPDK port is a [`PortQueue`]), and arrays in DPDK's
//! hugepage memory ([`DpdkArray`]) for the flow tables.
//!
//! With `dpdk-sys`, this is the only module with unsafe code. Every unsafe
//! block says why it is sound. The rest of the crate sees DPDK only through
//! the port traits and `DpdkArray`.

#![allow(unsafe_code)]

mod memory;
pub use memory::DpdkArray;

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use crate::port::{BufPool, PacketBuf, PortQueue, BURST};
use crate::wire::MacAddr;

#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("{call} failed: {message} (errno {code})")]
    Call { call: &'static str, code: i32, message: String },
    #[error("no DPDK port is named {0:?} (check the --vdev / -a EAL arguments)")]
    NoSuchPort(String),
    #[error("an EAL argument contains a NUL byte: {0:?}")]
    BadArgument(String),
    #[error("the EAL was already started in this process; DPDK allows it once")]
    AlreadyStarted,
    #[error(
        "port {port:?} has {has} queue pair(s) but {wanted} worker cores need one each; \
         run at most {has} worker(s) (dataplane.workers) or give the device more queues"
    )]
    TooFewQueues { port: String, wanted: u16, has: u16 },
}

type Result<T> = std::result::Result<T, DpdkError>;

/// The message DPDK has for an errno value.
fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any input; we copy it out at once.
    unsafe {
        let msg = sys::rte_strerror(code);
        if msg.is_null() {
            return format!("errno {code}");
        }
        CStr::from_ptr(msg).to_string_lossy().into_owned()
    }
}

/// Turns a DPDK return value (negative errno, or -1 with rte_errno) into an
/// error.
fn check(call: &'static str, ret: i32) -> Result<i32> {
    if ret >= 0 {
        return Ok(ret);
    }
    let code = if ret == -1 {
        // SAFETY: reads the calling thread's rte_errno; no preconditions.
        unsafe { sys::shim_errno() }
    } else {
        -ret
    };
    Err(DpdkError::Call { call, code, message: strerror(code) })
}

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The started EAL. Dropping it runs `rte_eal_cleanup`; close ports first.
pub struct Eal {
    // EAL state is tied to the process and its main thread.
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// Starts the EAL with `args` (without the program name).
    pub fn init(args: &[String]) -> Result<Eal> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyStarted);
        }
        let mut owned = vec![CString::new("switchyard").map_err(|_| DpdkError::BadArgument("switchyard".into()))?];
        for a in args {
            owned.push(CString::new(a.as_str()).map_err(|_| DpdkError::BadArgument(a.clone()))?);
        }
        // EAL may keep pointers into argv (device arguments) for the life of
        // the process, so the strings are leaked on purpose.
        let argv: Vec<*mut c_char> = owned.into_iter().map(|s| s.into_raw()).collect();
        let argv = Box::leak(argv.into_boxed_slice());
        // SAFETY: argv holds argc valid, NUL-terminated, never-freed strings;
        // rte_eal_init may reorder the array, which it owns from here on.
        let ret = unsafe { sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        check("rte_eal_init", ret)?;
        Ok(Eal { _not_send: PhantomData })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the EAL was initialised by this process; cleanup is allowed
        // once, after the worker threads have stopped using it.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

/// Registers the calling (non-EAL) thread as an lcore, so that it gets a
/// per-lcore mempool cache. Call it on each worker thread after pinning.
pub fn register_thread() -> Result<u32> {
    // SAFETY: the EAL is initialised before workers start; registration
    // only touches the calling thread's lcore state.
    check("rte_thread_register", unsafe { sys::rte_thread_register() })?;
    // SAFETY: reads the calling thread's lcore id.
    Ok(unsafe { sys::shim_lcore_id() })
}

/// The NUMA socket of the calling thread's CPUs (as the EAL sees them; 0 on
/// a single-socket machine): where a worker's tables belong.
pub fn current_socket() -> i32 {
    // SAFETY: reads the calling thread's per-lcore socket; the EAL is
    // initialised. It is SOCKET_ID_ANY (-1) when unknown.
    unsafe { sys::rte_socket_id() as i32 }
}

/// Undoes [`register_thread`] before the thread exits.
pub fn unregister_thread() {
    // SAFETY: called on a thread that registered; harmless otherwise.
    unsafe { sys::rte_thread_unregister() }
}

/// A pool of packet buffers on one NUMA socket.
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
}

// SAFETY: DPDK mempools are designed for use from many threads at once
// (lock-free ring plus per-lcore caches).
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Mempool {
    pub fn new(name: &str, mbufs: u32, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.into()))?;
        // Room for a standard 1500-byte frame plus headroom, as DPDK's
        // RTE_MBUF_DEFAULT_BUF_SIZE.
        let data_room: u16 = 2048 + sys::RTE_PKTMBUF_HEADROOM;
        // SAFETY: the EAL is initialised; the name is a valid C string that
        // DPDK copies.
        let ptr = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), mbufs, 256, 0, data_room, socket) };
        NonNull::new(ptr).map(|ptr| Mempool { ptr }).ok_or_else(|| {
            // SAFETY: reads the calling thread's rte_errno.
            let code = unsafe { sys::shim_errno() };
            DpdkError::Call { call: "rte_pktmbuf_pool_create", code, message: strerror(code) }
        })
    }
}

impl BufPool for Mempool {
    type Buf = Mbuf;

    fn alloc_from(&self, bytes: &[u8]) -> Option<Mbuf> {
        let len = u16::try_from(bytes.len()).ok()?;
        // SAFETY: the pool is valid for the life of the process; a non-null
        // mbuf from it is ours (wrapped at once, so freed on every path).
        let mbuf = Mbuf(NonNull::new(unsafe { sys::shim_pktmbuf_alloc(self.ptr.as_ptr()) })?);
        // SAFETY: we own the fresh mbuf; append returns NULL (and changes
        // nothing) unless `len` bytes of tailroom follow the data, which it
        // then hands us to fill.
        let room = unsafe { sys::shim_pktmbuf_append(mbuf.0.as_ptr(), len) };
        if room.is_null() {
            return None;
        }
        // SAFETY: `room` points at `len` writable bytes inside our mbuf.
        unsafe { std::slice::from_raw_parts_mut(room, bytes.len()) }.copy_from_slice(bytes);
        Some(mbuf)
    }
}

/// Counters the driver keeps for a port.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC: rx queue full (the cores fell behind).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

/// A started port.
pub struct Port {
    pub id: u16,
    pub name: String,
    pub mac: MacAddr,
    pub queues: u16,
}

impl Port {
    /// Opens the port called `name` with `queues` rx/tx queue pairs, all
    /// receiving into `pool`, and starts it.
    pub fn open(name: &str, queues: u16, pool: &Mempool) -> Result<Port> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.into()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        if unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) } != 0 {
            return Err(DpdkError::NoSuchPort(name.into()));
        }
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: `id` is a valid port; `info` is a valid out-pointer.
        check("rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(id, &mut info) })?;

        if queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(DpdkError::TooFewQueues {
                port: name.into(),
                wanted: queues,
                has: info.max_rx_queues.min(info.max_tx_queues),
            });
        }
        let mut conf = sys::rte_eth_conf::default();
        if queues > 1 {
            // RSS spreads flows over the workers' queues. Replies to
            // masqueraded flows land on any queue and are handed to the
            // core that owns their source port (see `flow::ports`).
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf =
                (sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
        }
        // SAFETY: `conf` is a fully initialised configuration.
        check("rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(id, queues, queues, &conf) })?;

        let mut rx_desc: u16 = 1024;
        let mut tx_desc: u16 = 1024;
        // SAFETY: valid port and out-pointers; the driver clamps to its limits.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc)
        })?;
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) }.max(0) as u32;
        for q in 0..queues {
            // SAFETY: configured port, queue index below the configured count,
            // NULL asks for the driver's default queue configuration, and the
            // pool outlives the port (it is never freed before EAL cleanup).
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(id, q, rx_desc, socket, ptr::null(), pool.ptr.as_ptr())
            })?;
            // SAFETY: as above.
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket, ptr::null())
            })?;
        }
        // SAFETY: all queues are set up.
        check("rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
        // Some virtual devices have no promiscuous mode; they take all frames
        // anyway, so a refusal is not an error.
        // SAFETY: started port.
        let _ = unsafe { sys::rte_eth_promiscuous_enable(id) };

        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port and out-pointer.
        check("rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(id, &mut addr) })?;
        Ok(Port { id, name: name.into(), mac: MacAddr(addr.addr_bytes), queues })
    }

    /// The handle for queue pair `queue`; give each to exactly one core.
    pub fn queue(&self, queue: u16) -> DpdkQueue {
        DpdkQueue { port: self.id, queue }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port and out-pointer; reading stats is thread-safe.
        if unsafe { sys::rte_eth_stats_get(self.id, &mut s) } != 0 {
            return PortStats::default();
        }
        PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        }
    }

    /// Stops and closes the port (flushing what the driver buffered, e.g.
    /// pcap's output file). Call after the workers have stopped.
    pub fn close(&self) {
        // SAFETY: no core polls the port any more.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
    }
}

/// One rx/tx queue pair of a port, owned by one core.
pub struct DpdkQueue {
    port: u16,
    queue: u16,
}

/// A received packet. Owns its mbuf; dropping it frees the mbuf.
///
/// Only the first segment is visible: the pool's buffers hold a full
/// 1500-byte frame, and the headers the pipeline reads are always there.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one `Mbuf` at a time, and freeing it
// from any thread is allowed (mempools are thread-safe).
unsafe impl Send for Mbuf {}

impl PacketBuf for Mbuf {
    // The fields are read in Rust rather than through the C shim: these run
    // several times per packet and a call into C cannot be inlined.

    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: we own the mbuf; its first segment holds data_len bytes at
        // buf_addr + data_off (rte_pktmbuf_mtod), valid while we hold it.
        unsafe {
            let m = &*self.0.as_ptr();
            let start = m.buf_addr.cast::<u8>().add(usize::from(m.data_off));
            std::slice::from_raw_parts(start, usize::from(m.data_len))
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive.
        unsafe {
            let m = &*self.0.as_ptr();
            let start = m.buf_addr.cast::<u8>().add(usize::from(m.data_off));
            std::slice::from_raw_parts_mut(start, usize::from(m.data_len))
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody uses it after this.
        unsafe { sys::shim_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PortQueue for DpdkQueue {
    type Buf = Mbuf;

    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<Mbuf>) -> usize {
        let room = (bufs.capacity() - bufs.len()).min(BURST);
        if room == 0 {
            return 0;
        }
        // SAFETY: `Mbuf` is a transparent NonNull<rte_mbuf>, laid out as
        // `*mut rte_mbuf`. The vector's spare capacity has `room` slots; the
        // driver writes n ≤ room non-null mbuf pointers there, and we take
        // ownership of exactly those n by extending the length.
        unsafe {
            let start = bufs.len();
            let slots = bufs.as_mut_ptr().add(start).cast::<*mut sys::rte_mbuf>();
            let n = usize::from(sys::shim_eth_rx_burst(self.port, self.queue, slots, room as u16));
            bufs.set_len(start + n);
            n
        }
    }

    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<Mbuf>) -> usize {
        let offered = bufs.len().min(usize::from(u16::MAX));
        if offered == 0 {
            return 0;
        }
        // SAFETY: the first `offered` elements are owned, initialised mbuf
        // pointers (same layout as above). The driver takes ownership of the
        // first `sent`; we then move the rest to the front without dropping
        // the sent ones, so each mbuf keeps exactly one owner.
        unsafe {
            let base = bufs.as_mut_ptr();
            let sent = usize::from(sys::shim_eth_tx_burst(
                self.port,
                self.queue,
                base.cast::<*mut sys::rte_mbuf>(),
                offered as u16,
            ));
            let rest = bufs.len() - sent;
            ptr::copy(base.add(sent), base, rest);
            bufs.set_len(rest);
            sent
        }
    }
}
