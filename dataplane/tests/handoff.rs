//! Two cores, RSS-style: a reply to a masqueraded flow that arrives on the
//! core that does not own the flow is handed to the owner, which un-NATs it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use dataplane::lcore::{handoff_rings, Worker};
use dataplane::pipeline::PipelineConfig;
use dataplane::port::mem::{mem_pool, MemQueue, Sink, Source};
use dataplane::stats::CoreStats;
use dataplane::tables::{proto, Snapshot, SnapshotPublisher};
use dataplane::wire::build::{FrameSpec, Transport};
use dataplane::wire::{Ipv4Packet, MacAddr, UdpPacket};
use testing::tables::{add_service, backend, TwoPorts};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const MASQ: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

fn snapshot() -> Snapshot {
    let mut snap = TwoPorts {
        client_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        client_ipv4: Ipv4Addr::new(192, 0, 2, 1),
        pod_mac: MacAddr([2, 0, 0, 0, 0, 2]),
        pod_ipv4: MASQ,
        pod_ipv6: None,
        masquerade: true,
        gateway_mac: MacAddr([2, 0, 0, 0, 0, 0xb0]),
    }
    .snapshot();
    let dns = (IpAddr::V4(VIP), 53, proto::UDP);
    add_service(&mut snap, "kube-system/dns:dns", dns, vec![backend(Ipv4Addr::new(10, 244, 1, 1), 5353)], 0);
    snap
}

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    FrameSpec {
        src_mac: MacAddr([2, 0, 0, 0, 0, 0xc0]),
        dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl: 64,
        transport: Transport::Udp { src_port: sport, dst_port: dport },
        payload: b"q",
    }
    .build()
    .unwrap()
}

#[test]
fn replies_reach_the_core_that_owns_their_flow() {
    let (_publisher, readers) = SnapshotPublisher::new(snapshot(), 2);
    let stats = CoreStats::new(2);
    let pool = mem_pool(256);
    let handoff = handoff_rings(2, 64);
    let inputs: Vec<_> = (0..2).map(|_| Arc::new(ArrayQueue::new(64))).collect();
    let outputs: Vec<_> = (0..2).map(|_| Arc::new(ArrayQueue::new(64))).collect();
    let mut workers: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(core, reader)| {
            // Each core has a queue on both ports; all input arrives on port 0
            // or port 1 of the core the test picks, as RSS would.
            let queues = vec![
                MemQueue::new(pool.clone(), Source::Queue(inputs[core].clone()), Sink::Capture(outputs[core].clone())),
                MemQueue::new(pool.clone(), Source::None, Sink::Capture(outputs[core].clone())),
            ];
            let config = PipelineConfig { core, cores: 2, flow_capacity: 1024, ..PipelineConfig::default() };
            Worker::new(
                &config,
                queues,
                reader,
                stats.clone(),
                Arc::new(ArrayQueue::new(8)),
                handoff.clone(),
                Arc::new(ArrayQueue::new(8)),
            )
        })
        .collect();

    // The request lands on core 1, which allocates an odd source port.
    inputs[1].push(udp(Ipv4Addr::new(198, 51, 100, 7), 40000, VIP, 53)).unwrap();
    workers[1].poll_at(1);
    let request = outputs[1].pop().expect("forwarded");
    let ip = Ipv4Packet::new_checked(&request[14..]).unwrap();
    let sport = UdpPacket::new_checked(ip.payload()).unwrap().src_port();
    assert_eq!((ip.src_addr(), sport % 2), (MASQ, 1));

    // The reply lands on core 0 (as RSS may put it): handed to core 1.
    inputs[0].push(udp(Ipv4Addr::new(10, 244, 1, 1), 5353, MASQ, sport)).unwrap();
    workers[0].poll_at(1);
    assert!(outputs[0].is_empty());
    assert_eq!(stats.read(0).handed_off, 1);
    workers[1].poll_at(1);
    let reply = outputs[1].pop().expect("un-NATed by the owner");
    let ip = Ipv4Packet::new_checked(&reply[14..]).unwrap();
    let udp_reply = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((ip.src_addr(), udp_reply.src_port()), (VIP, 53));
    assert_eq!((ip.dst_addr(), udp_reply.dst_port()), (Ipv4Addr::new(198, 51, 100, 7), 40000));
    assert_eq!(stats.total().total_drops(), 0);
}
