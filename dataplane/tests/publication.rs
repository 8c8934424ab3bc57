//! Table publication under load: a worker thread forwards while the control
//! side keeps publishing new snapshots. Nothing is lost, nothing misrouted,
//! flows keep their backends, and old snapshots are freed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use dataplane::lcore::{handoff_rings, Worker};
use dataplane::pipeline::PipelineConfig;
use dataplane::port::mem::{mem_pool, MemQueue, Sink, Source};
use dataplane::stats::CoreStats;
use dataplane::tables::{proto, Snapshot, SnapshotPublisher};
use dataplane::wire::build::{FrameSpec, Transport};
use dataplane::wire::{Ipv4Packet, MacAddr};
use testing::tables::{add_service, backend, TwoPorts};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn snapshot(backends: &[u8]) -> Snapshot {
    let mut snap = TwoPorts {
        client_mac: MacAddr([2, 0, 0, 0, 0, 0]),
        client_ipv4: Ipv4Addr::new(192, 0, 2, 1),
        pod_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        pod_ipv4: Ipv4Addr::new(192, 0, 2, 2),
        pod_ipv6: None,
        masquerade: false,
        gateway_mac: MacAddr([2, 0, 0, 0, 0, 0xb0]),
    }
    .snapshot();
    let backends = backends.iter().map(|&b| backend(Ipv4Addr::new(10, 244, 1, b), 8080)).collect();
    add_service(&mut snap, "default/web:http", (IpAddr::V4(VIP), 80, proto::TCP), backends, 0);
    snap
}

fn frame(flow: u16) -> Vec<u8> {
    FrameSpec {
        src_mac: MacAddr([2, 0, 0, 0, 0, 0xc0]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 0]),
        src: IpAddr::V4(Ipv4Addr::new(198, 51, 100, (flow % 250) as u8 + 1)),
        dst: IpAddr::V4(VIP),
        ttl: 64,
        transport: Transport::Tcp { src_port: 10_000 + flow, dst_port: 80, flags: 0x10, seq: 1, ack: 1 },
        payload: &flow.to_be_bytes(),
    }
    .build()
    .unwrap()
}

#[test]
fn publishing_while_forwarding_loses_and_misroutes_nothing() {
    const FLOWS: u16 = 2000;
    const ROUNDS: usize = 25;
    let (mut publisher, mut readers) = SnapshotPublisher::new(snapshot(&[1, 2, 3, 4]), 1);
    let reader = readers.remove(0);
    let stats = CoreStats::new(1);
    let pool = mem_pool(4096);
    let input = Arc::new(ArrayQueue::new(1 << 16));
    let output = Arc::new(ArrayQueue::new(1 << 17));
    let queues = vec![
        MemQueue::new(pool.clone(), Source::Queue(input.clone()), Sink::Capture(output.clone())),
        MemQueue::new(pool.clone(), Source::None, Sink::Capture(output.clone())),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (stats, stop) = (stats.clone(), stop.clone());
        let slow_path = Arc::new(ArrayQueue::new(16));
        thread::spawn(move || {
            let config = PipelineConfig { flow_capacity: 1 << 16, ..PipelineConfig::default() };
            Worker::new(&config, queues, reader, stats, slow_path, handoff_rings(1, 16), Arc::new(ArrayQueue::new(16)))
                .run(&stop)
        })
    };

    // The control side: publish as fast as it can, alternating endpoint sets
    // (backend 5 comes and goes; 1–4 stay).
    let publishing = Arc::new(AtomicBool::new(true));
    let published = Arc::new(AtomicU64::new(0));
    let control = {
        let (publishing, published) = (publishing.clone(), published.clone());
        thread::spawn(move || {
            let (mut n, mut most_retired) = (0u64, 0usize);
            while publishing.load(Ordering::Relaxed) {
                let set: &[u8] = if n % 2 == 0 { &[1, 2, 3, 4, 5] } else { &[1, 2, 3, 4] };
                publisher.publish(snapshot(set));
                most_retired = most_retired.max(publisher.retired());
                n += 1;
                published.store(n, Ordering::Relaxed);
            }
            (n, most_retired, publisher)
        })
    };

    let mut sent = 0usize;
    for round in 0..ROUNDS {
        // Each round overlaps several publications, however the threads are
        // scheduled on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(10);
        while published.load(Ordering::Relaxed) < 8 * round as u64 && Instant::now() < deadline {
            thread::yield_now();
        }
        for flow in 0..FLOWS {
            let f = frame(flow);
            while input.push(f.clone()).is_err() {
                thread::yield_now();
            }
            sent += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.read(0).rx_packets < sent as u64 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    publishing.store(false, Ordering::Relaxed);
    let (publications, most_retired, mut publisher) = control.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    publisher.reclaim();

    let counters = stats.read(0);
    assert_eq!(counters.rx_packets, sent as u64);
    assert_eq!(counters.total_drops(), 0, "{counters:?}");
    assert_eq!(output.len(), sent, "every packet forwarded");
    assert!(publications > 100, "only {publications} publications overlapped the traffic");
    // Reclamation keeps up while the core runs, and frees everything once
    // the core is offline.
    assert!(most_retired < 1000, "{most_retired} snapshots waited for the core at once");
    assert_eq!(publisher.retired(), 0, "old snapshots were not freed");

    let mut backend_of: HashMap<u16, Ipv4Addr> = HashMap::new();
    while let Some(out) = output.pop() {
        let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert!(ip.verify_checksum());
        let flow = u16::from_be_bytes([out[out.len() - 2], out[out.len() - 1]]);
        let dst = ip.dst_addr();
        assert!((1..=5).contains(&dst.octets()[3]) && dst.octets()[..3] == [10, 244, 1], "{dst}");
        let first = *backend_of.entry(flow).or_insert(dst);
        assert_eq!(first, dst, "flow {flow} changed backend while the tables changed");
    }
    assert_eq!(backend_of.len(), usize::from(FLOWS));
}
