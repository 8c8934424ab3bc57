//! Whether the cores hand the slow path what it answers: each frame runs
//! through the real pipeline first (with the snapshot the slow path reads),
//! must come out as `Verdict::SlowPath`, and is then answered.

use std::net::Ipv6Addr;
use std::time::Instant;

use dataplane::pipeline::{Pipeline, PipelineConfig, Verdict};
use dataplane::wire::build::Transport;

use super::ndp::{link_local, multicast_mac, solicited_node};
use super::testing::*;
use super::SlowPath;

/// The pipeline's verdict on `frame`, then the slow path's answers to it.
fn through_the_cores(frame: &[u8]) -> (Verdict, Vec<Vec<u8>>) {
    let snap = snapshot(true);
    let mut pipeline = Pipeline::new(&PipelineConfig::default());
    let mut copy = frame.to_vec();
    let verdict = pipeline.process(&snap, 0, &mut copy, 1);
    assert_eq!(copy, frame, "what goes to the slow path is not rewritten");
    let mut s = SlowPath::new();
    s.update_tables(&snap);
    let mut out = Vec::new();
    s.handle(0, &copy, Instant::now(), &mut out);
    (verdict, out.into_iter().map(|(_, f)| f).collect())
}

#[test]
fn ndp_and_icmpv6_reach_the_slow_path_and_are_answered() {
    let asker = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x50);
    let mut cases = Vec::new();
    for target in [PORT_V6, VIP_V6, link_local(OUR_MAC)] {
        let group = solicited_node(target);
        cases.push((
            "multicast NS",
            neighbor_solicit(CLIENT_MAC, multicast_mac(group).0, asker, group, target, Some(CLIENT_MAC), 255),
        ));
    }
    cases.push(("unicast NS", neighbor_solicit(CLIENT_MAC, OUR_MAC.0, asker, VIP_V6, VIP_V6, None, 255)));
    let group = solicited_node(PORT_V6);
    cases.push((
        "duplicate address detection",
        neighbor_solicit(CLIENT_MAC, multicast_mac(group).0, Ipv6Addr::UNSPECIFIED, group, PORT_V6, None, 255),
    ));
    cases.push(("ping to the port", echo_request_v6(CLIENT_V6, PORT_V6, 1, 1, b"x")));
    cases.push(("ping to a VIP", echo_request_v6(CLIENT_V6, VIP_V6, 1, 2, b"x")));
    cases.push(("ping to the link-local address", echo_request_v6(CLIENT_V6, link_local(OUR_MAC), 1, 3, b"x")));
    let syn = Transport::Tcp { src_port: 40000, dst_port: 80, flags: 0x02, seq: 1, ack: 0 };
    cases.push(("TCP to a VIP without endpoints", frame_v6(CLIENT_V6, VIP_V6, syn, b"")));
    let udp = Transport::Udp { src_port: 40000, dst_port: 53 };
    cases.push(("UDP to a VIP without endpoints", frame_v6(CLIENT_V6, VIP_V6, udp, b"q")));
    for (what, frame) in cases {
        let (verdict, answers) = through_the_cores(&frame);
        assert_eq!(verdict, Verdict::SlowPath, "{what}");
        assert_eq!(answers.len(), 1, "{what} is answered");
    }
}

#[test]
fn an_advertisement_reaches_the_slow_path_and_is_learned() {
    let pod_mac = MacAddr([2, 0, 0, 0, 0, 5]);
    let na = advertisement(pod_mac, OUR_MAC.0, POD_V6, PORT_V6, POD_V6, Some(pod_mac), 0x60, 255);
    let snap = snapshot(true);
    let mut pipeline = Pipeline::new(&PipelineConfig::default());
    assert_eq!(pipeline.process(&snap, 0, &mut na.clone(), 1), Verdict::SlowPath);
    let mut s = SlowPath::new();
    s.update_tables(&snap);
    s.handle(0, &na, Instant::now(), &mut Vec::new());
    let learned = s.take_changes().expect("the pod was learned");
    assert_eq!(learned[&dataplane::tables::Addr::from(POD_V6)].mac, pod_mac);
}
