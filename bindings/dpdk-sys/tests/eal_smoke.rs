//! End-to-end check that the bindings, the shim and the link flags work:
//! start EAL with a `net_null` vdev, pass packets through it, shut down.
//!
//! One test only: EAL can be initialised once per process. It needs no NIC
//! and no hugepages, but it does need root (or equivalent capabilities).

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::ptr;

use dpdk_sys::*;

const BURST: usize = 32;

/// Text for the calling thread's rte_errno.
fn last_error() -> String {
    // SAFETY: shim_errno reads a thread-local int; rte_strerror returns a
    // pointer to a static or thread-local NUL-terminated string, copied out
    // before anything else on this thread can overwrite it.
    unsafe {
        let errno = shim_errno();
        let msg = CStr::from_ptr(rte_strerror(errno)).to_string_lossy();
        format!("rte_errno {errno}: {msg}")
    }
}

#[test]
fn eal_null_vdev_round_trip() {
    // No hugepages here, and --no-huge cannot be combined with --in-memory;
    // --no-shconf gives the same "no files, no multi-process" isolation, so
    // parallel DPDK test processes on the machine cannot collide.
    let args = [
        "dpdk-sys-smoke",
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-pci",
        "--vdev",
        "net_null0",
        "-l",
        "0",
        "--no-telemetry",
        "--log-level",
        "lib.eal:error",
    ];
    let args: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    // EAL's getopt may permute argv, so it gets its own pointer array; the
    // CStrings above own the bytes and outlive EAL's use of them.
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    let argc = c_int::try_from(argv.len()).unwrap();

    // SAFETY: argv holds argc valid NUL-terminated strings that stay alive
    // for the whole test; this is the only rte_eal_init call in the process.
    let ret = unsafe { rte_eal_init(argc, argv.as_mut_ptr()) };
    assert!(ret >= 0, "rte_eal_init failed: {}", last_error());

    // SAFETY: EAL is initialised; these only read EAL state.
    let (ports, lcore, socket) = unsafe { (rte_eth_dev_count_avail(), shim_lcore_id(), rte_socket_id()) };
    assert_eq!(ports, 1, "expected exactly the net_null0 vdev");
    // rte_eal_init makes its calling thread the main lcore (-l 0).
    assert_eq!(lcore, 0);

    let pool_name = CString::new("smoke_pool").unwrap();
    // SAFETY: EAL is initialised and the name is a valid C string; the
    // sizes are DPDK's defaults. socket_id from rte_socket_id is valid.
    let pool =
        unsafe { rte_pktmbuf_pool_create(pool_name.as_ptr(), 1023, 32, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket as c_int) };
    assert!(!pool.is_null(), "rte_pktmbuf_pool_create failed: {}", last_error());

    let port: u16 = 0;
    // Zeroed config = no offloads, no RSS: what a null device accepts.
    let conf = rte_eth_conf::default();
    // SAFETY: port 0 exists (checked above); conf is a valid, initialised
    // rte_eth_conf that DPDK only reads during the call.
    let ret = unsafe { rte_eth_dev_configure(port, 1, 1, &conf) };
    assert_eq!(ret, 0, "rte_eth_dev_configure: {ret}");

    // SAFETY: the port is configured with one queue each way; NULL queue
    // configs select the driver defaults; the pool outlives the port.
    let (rx, tx) = unsafe {
        (
            rte_eth_rx_queue_setup(port, 0, 256, socket, ptr::null(), pool),
            rte_eth_tx_queue_setup(port, 0, 256, socket, ptr::null()),
        )
    };
    assert_eq!((rx, tx), (0, 0), "queue setup");

    // SAFETY: the port is configured and its queues are set up.
    let ret = unsafe { rte_eth_dev_start(port) };
    assert_eq!(ret, 0, "rte_eth_dev_start: {ret}");

    let mut mbufs: [*mut rte_mbuf; BURST] = [ptr::null_mut(); BURST];
    // SAFETY: the port is started; queue 0 exists and is polled only from
    // this thread; mbufs has room for BURST pointers.
    let n = unsafe { shim_eth_rx_burst(port, 0, mbufs.as_mut_ptr(), BURST as u16) };
    // net_null fabricates a full burst of 64-byte packets on every poll.
    assert!(n > 0, "net_null returned no packets");
    let received = &mbufs[..usize::from(n)];

    for &m in received {
        assert!(!m.is_null());
        // SAFETY: m is a valid mbuf just handed to us by rx_burst and not
        // yet passed on, so reading it (and its buffer) is sound.
        unsafe {
            let data = shim_pktmbuf_data(m);
            let (data_len, pkt_len) = (shim_pktmbuf_data_len(m), shim_pktmbuf_pkt_len(m));
            assert!(!data.is_null());
            assert!(data_len > 0 && u32::from(data_len) == pkt_len, "len {data_len}/{pkt_len}");
            // The data must lie inside the mbuf's own buffer.
            let buf = (*m).buf_addr.cast::<u8>();
            let end = buf.add(usize::from((*m).buf_len));
            assert!(data >= buf && data.add(usize::from(data_len)) <= end);
            assert_eq!(shim_pktmbuf_port(m), port);
            // Writing the first byte proves the pointer is usable.
            *data = 0xff;
        }
    }

    // SAFETY: the first n entries are mbufs we own; tx_burst takes
    // ownership of the first `sent` of them and we free only the rest.
    unsafe {
        let sent = shim_eth_tx_burst(port, 0, mbufs.as_mut_ptr(), n);
        assert!(sent <= n);
        for &m in &mbufs[usize::from(sent)..usize::from(n)] {
            shim_pktmbuf_free(m);
        }
    }

    // The single-segment length setter and its refusal path.
    // SAFETY: the mbuf comes from our pool and is freed exactly once below.
    unsafe {
        let m = shim_pktmbuf_alloc(pool);
        assert!(!m.is_null(), "pool exhausted");
        assert_eq!(shim_pktmbuf_set_len(m, 100), 0);
        assert_eq!((shim_pktmbuf_data_len(m), shim_pktmbuf_pkt_len(m)), (100, 100));
        assert!(shim_pktmbuf_set_len(m, u16::MAX) < 0);
        assert_eq!(shim_pktmbuf_data_len(m), 100);
        shim_pktmbuf_free(m);
    }

    // SAFETY: the port is started and no other thread uses it; no DPDK
    // object is used after rte_eal_cleanup.
    unsafe {
        assert_eq!(rte_eth_dev_stop(port), 0);
        assert_eq!(rte_eth_dev_close(port), 0);
        rte_mempool_free(pool);
        assert_eq!(rte_eal_cleanup(), 0);
    }
}
