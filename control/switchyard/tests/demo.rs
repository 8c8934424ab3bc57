//! The README's main command, end to end: `scripts/demo` starts pods on a
//! private containerd through the node agent, gives them a standalone
//! Service, and sends real TCP from a client namespace through the DPDK
//! appliance (af_xdp or af_packet ports on a veth lab, see `scripts/lab/net
//! pmd`). Every request must be answered and spread over the pods, and the
//! demo must clean up after itself.
//!
//! Needs root, DPDK, containerd (scripts/install-deps).

use std::process::Command;

#[test]
fn the_demo_answers_every_request_through_the_appliance() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(format!("{root}/scripts/demo"))
        .env("SWITCHYARD_BIN", env!("CARGO_BIN_EXE_switchyard"))
        .env("DEMO_REQUESTS", "100")
        .output()
        .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("answered: 100, failed: 0"), "{stdout}");
    assert!(stdout.contains("demo OK"), "{stdout}");
    // Each pod answered some of the requests.
    for pod in ["web-1-demo", "web-2-demo", "web-3-demo"] {
        assert!(stdout.lines().any(|l| l.trim_start().starts_with(pod)), "{pod} answered nothing:\n{stdout}");
    }
    // Cleaned up: no lab namespace, no appliance veths left.
    let netns = Command::new("ip").args(["netns", "list"]).output().expect("ip netns");
    assert!(!String::from_utf8_lossy(&netns.stdout).contains("sy-client"), "the lab namespace was left behind");
    let links = Command::new("ip").args(["-br", "link"]).output().expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("sy-c0") && !links.contains("sy-p0"), "the lab's veths were left behind:\n{links}");
}
