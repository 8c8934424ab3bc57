//! The real `switchyard` binary on DPDK `net_pcap` vdevs: thousands of TCP and
//! UDP flows to several VIPs, replies included, go in; every packet that
//! comes out is checked — backend of its VIP, the same backend for the whole
//! flow, replies from the VIP, valid checksums (by our parser and by scapy)
//! — while SIGHUP reloads republish the tables.
//!
//! Needs root and DPDK 22.11 (scripts/test installs it).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dataplane::flow::FlowKey;
use dataplane::tables::{proto, Backend, BackendState, Service, ServiceKey, ServiceSpec, DEFAULT_MAX_RING_SIZE};
use dataplane::wire::build::{FrameSpec, Transport};
use dataplane::wire::{Ipv4Packet, MacAddr, TcpPacket, UdpPacket};

const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x01]);
const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb0]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xc0]);

struct Vip {
    name: &'static str,
    vip: Ipv4Addr,
    port: u16,
    protocol: u8,
    backends: Vec<SocketAddr>,
}

fn vips() -> Vec<Vip> {
    let backends = |net: u8, n: u8, port: u16| {
        (1..=n).map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 244, net, i)), port)).collect()
    };
    vec![
        Vip {
            name: "default/web:http",
            vip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            protocol: proto::TCP,
            backends: backends(1, 3, 8080),
        },
        Vip {
            name: "kube-system/dns:udp",
            vip: Ipv4Addr::new(10, 96, 0, 11),
            port: 53,
            protocol: proto::UDP,
            backends: backends(2, 2, 5353),
        },
        Vip {
            name: "kube-system/dns:tcp",
            vip: Ipv4Addr::new(10, 96, 0, 11),
            port: 53,
            protocol: proto::TCP,
            backends: backends(2, 2, 5353),
        },
        Vip {
            name: "shop/api:https",
            vip: Ipv4Addr::new(10, 96, 0, 12),
            port: 443,
            protocol: proto::TCP,
            backends: backends(3, 5, 8443),
        },
    ]
}

fn config(dir: &Path, worker: usize) -> String {
    let mut c = format!(
        r#"
[dataplane]
eal_args = ["--no-huge", "-m", "512", "--no-shconf", "--no-pci", "-l", "0", "--no-telemetry",
            "--log-level", "lib.eal:error",
            "--vdev", "net_pcap0,rx_pcap={dir}/in.pcap,tx_pcap={dir}/out.pcap"]
workers = [{worker}]
run_seconds = 3

[[port]]
name = "net_pcap0"
mac = "{PORT_MAC}"
ipv4 = "192.0.2.1"
ipv4_subnet = "10.244.9.0/24"

[[route]]
prefix = "10.244.0.0/16"
port = "net_pcap0"
gateway_mac = "{GW_MAC}"

[metrics]
listen = ""
"#,
        dir = dir.display()
    );
    // A backend on the port's own subnet: resolved with ARP.
    c += "\n[[service]]\nname = \"default/near:http\"\nvip = \"10.96.0.14\"\nport = 80\nbackends = [\"10.244.9.7:80\"]\n";
    // A Service without endpoints: its connections are refused.
    c += "\n[[service]]\nname = \"default/empty:tcp\"\nvip = \"10.96.0.13\"\nport = 80\nbackends = []\n";
    c += "\n[[service]]\nname = \"default/empty:udp\"\nvip = \"10.96.0.13\"\nport = 53\nprotocol = \"UDP\"\nbackends = []\n";
    for v in vips() {
        let backends: Vec<String> = v.backends.iter().map(|b| format!("\"{b}\"")).collect();
        c += &format!(
            "\n[[service]]\nname = \"{}\"\nvip = \"{}\"\nport = {}\nprotocol = \"{}\"\nbackends = [{}]\n",
            v.name,
            v.vip,
            v.port,
            proto::name(v.protocol),
            backends.join(", ")
        );
    }
    c
}

/// The backend the dataplane's Maglev ring gives this flow: the replies in
/// the input must come from it.
fn predicted_backend(v: &Vip, client: Ipv4Addr, client_port: u16) -> SocketAddr {
    let key = ServiceKey { vip: v.vip.into(), port: v.port, proto: v.protocol };
    let backends = v
        .backends
        .iter()
        .map(|b| Backend { addr: b.ip().into(), port: b.port(), weight: 1, state: BackendState::Ready })
        .collect();
    let service = Service::build(
        ServiceSpec { name: v.name.into(), key, backends, affinity_timeout_s: 0 },
        DEFAULT_MAX_RING_SIZE,
    );
    let flow =
        FlowKey { src: client.into(), dst: v.vip.into(), src_port: client_port, dst_port: v.port, proto: v.protocol };
    let b = service.choose(flow.hash()).expect("a backend");
    SocketAddr::new(b.addr.to_ip(), b.port)
}

#[allow(clippy::too_many_arguments)]
fn frame(
    src_mac: MacAddr,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    protocol: u8,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let transport = if protocol == proto::TCP {
        Transport::Tcp { src_port: sport, dst_port: dport, flags, seq: 100, ack: 200 }
    } else {
        Transport::Udp { src_port: sport, dst_port: dport }
    };
    FrameSpec { src_mac, dst_mac: PORT_MAC, src: src.into(), dst: dst.into(), ttl: 64, transport, payload }
        .build()
        .expect("frame")
}

/// An ICMP echo request from a client.
fn ping(src: Ipv4Addr, dst: Ipv4Addr, seq: u16) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 20 + 8 + 4];
    frame[0..6].copy_from_slice(&PORT_MAC.0);
    frame[6..12].copy_from_slice(&CLIENT_MAC.0);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(32);
        ip.set_ttl(64);
        ip.set_protocol(1);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    }
    let icmp = &mut frame[34..];
    icmp[0] = 8; // echo request
    icmp[4..6].copy_from_slice(&0x5359u16.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    icmp[8..].copy_from_slice(b"ping");
    let mut icmp_view = dataplane::wire::Icmpv4Packet::new_unchecked(&mut *icmp);
    icmp_view.fill_checksum();
    frame
}

struct Flow {
    vip: usize,
    client: Ipv4Addr,
    client_port: u16,
    backend: SocketAddr,
}

#[test]
fn pcap_flows_are_forwarded_and_checked_packet_by_packet() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vips = vips();

    // 3,000 flows over the four VIPs, in five phases so that every reply
    // follows its flow's first packet: request, reply, request, reply, FIN.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut flows = Vec::new();
    let mut seen = HashSet::new();
    while flows.len() < 3000 {
        let r = next();
        let vip = (r % vips.len() as u64) as usize;
        let client = Ipv4Addr::new(198, 51, 100, (r >> 8) as u8 % 250 + 1);
        let client_port = 1024 + ((r >> 16) as u16 % 60000);
        if !seen.insert((vip, client, client_port)) {
            continue;
        }
        let backend = predicted_backend(&vips[vip], client, client_port);
        flows.push(Flow { vip, client, client_port, backend });
    }
    let mut input = Vec::new();
    for phase in 0..5 {
        for f in &flows {
            let v = &vips[f.vip];
            let tcp = v.protocol == proto::TCP;
            let b = match f.backend.ip() {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => unreachable!(),
            };
            input.push(match phase {
                0 => frame(CLIENT_MAC, f.client, f.client_port, v.vip, v.port, v.protocol, 0x02, b"hello"),
                1 => frame(GW_MAC, b, f.backend.port(), f.client, f.client_port, v.protocol, 0x12, b"hi there"),
                2 => frame(
                    CLIENT_MAC,
                    f.client,
                    f.client_port,
                    v.vip,
                    v.port,
                    v.protocol,
                    0x18,
                    b"GET / HTTP/1.1\r\n\r\n",
                ),
                3 => frame(
                    GW_MAC,
                    b,
                    f.backend.port(),
                    f.client,
                    f.client_port,
                    v.protocol,
                    0x18,
                    b"HTTP/1.1 200 OK\r\n\r\n",
                ),
                _ if tcp => frame(CLIENT_MAC, f.client, f.client_port, v.vip, v.port, v.protocol, 0x11, b""),
                _ => frame(CLIENT_MAC, f.client, f.client_port, v.vip, v.port, v.protocol, 0, b"bye"),
            });
        }
    }
    let forwarded = input.len();

    // Bad and foreign input: counted drops and slow-path hand-offs.
    let good = frame(CLIENT_MAC, Ipv4Addr::new(198, 51, 100, 1), 999, vips[0].vip, 80, proto::TCP, 0x02, b"x");
    for i in 0..50u8 {
        input.push(good[..20 + usize::from(i % 10)].to_vec()); // truncated
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x44;
        input.push(bad_ihl);
        let mut fragment = good.clone();
        fragment[14 + 6] |= 0x20;
        input.push(fragment);
        input.push(frame(
            CLIENT_MAC,
            Ipv4Addr::new(198, 51, 100, 2),
            1000 + u16::from(i),
            Ipv4Addr::new(10, 96, 9, 9),
            80,
            proto::TCP,
            0x02,
            b"",
        ));
    }
    // For the slow path: ARP for the appliance's address, pings to it and
    // to a VIP; each gets an answer.
    for i in 0..10u8 {
        for target in [Ipv4Addr::new(192, 0, 2, 1), vips[0].vip] {
            input.push(ping(Ipv4Addr::new(198, 51, 100, 100 + i), target, u16::from(i)));
        }
    }
    let empty = Ipv4Addr::new(10, 96, 0, 13);
    for i in 0..10u16 {
        input.push(frame(CLIENT_MAC, Ipv4Addr::new(198, 51, 100, 7), 2000 + i, empty, 80, proto::TCP, 0x02, b""));
        input.push(frame(CLIENT_MAC, Ipv4Addr::new(198, 51, 100, 7), 3000 + i, empty, 53, proto::UDP, 0, b"q"));
    }
    for _ in 0..20 {
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&CLIENT_MAC.0);
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&CLIENT_MAC.0);
        arp.extend_from_slice(&[198, 51, 100, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1]);
        input.push(arp);
    }
    testing::pcap::write(&dir.path().join("in.pcap"), &input).expect("write pcap");

    let config_path = dir.path().join("switchyard.toml");
    let worker = testing::appliance::worker_cpu();
    std::fs::write(&config_path, config(dir.path(), worker)).expect("write config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config"])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchyard");
    let pid = child.id().to_string();
    let stderr = child.stderr.take().expect("stderr");
    let (ready_tx, ready_rx) = mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("control loop running") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    // Reload the tables a few times while the dataplane runs.
    if ready_rx.recv_timeout(Duration::from_secs(30)).is_ok() {
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            let _ = Command::new("kill").args(["-HUP", &pid]).status();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let output = child.wait_with_output().expect("switchyard output");
    let log = log.join().unwrap_or_default().join("\n");
    assert!(output.status.success(), "switchyard failed: {}\n{log}", output.status);
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("summary {e}: {:?}\n{log}", output.stdout));

    // Counters: everything in is accounted for.
    assert_eq!(summary["rx_packets"], input.len() as u64, "{summary}");
    // Forwarded packets plus the slow path's 20 ARP and 20 echo replies,
    // 10 resets, 10 port unreachables, and its ARP requests (checked below).
    let sent = summary["tx_packets"].as_u64().unwrap_or(0);
    assert_eq!(summary["flows_created"], flows.len() as u64, "{summary}");
    assert_eq!(summary["slow_path_packets"], 60, "{summary}");
    for (reason, n) in [("truncated", 50), ("bad_header_length", 50), ("fragment", 50), ("no_service", 50)] {
        assert_eq!(summary["drops"][reason], n, "{reason}: {summary}");
    }
    assert!(summary["published_generation"].as_u64().unwrap_or(0) >= 1, "no reload was published: {summary}");

    // Packet by packet.
    let all = testing::pcap::read(&dir.path().join("out.pcap")).expect("read tx pcap");
    assert_eq!(all.len() as u64, sent);
    // The slow path resolves the on-link backend: broadcast requests, about
    // one a second.
    let is_arp = |f: &Vec<u8>, op: u16| f[12..14] == [0x08, 0x06] && u16::from_be_bytes([f[20], f[21]]) == op;
    let requests: Vec<&Vec<u8>> = all.iter().filter(|f| is_arp(f, 1)).collect();
    assert!((1..=5).contains(&requests.len()), "{} ARP requests", requests.len());
    for r in &requests {
        assert_eq!(&r[0..6], &[0xff; 6]);
        assert_eq!((&r[28..32], &r[38..42]), (&[192, 0, 2, 1][..], &[10, 244, 9, 7][..]), "who has 10.244.9.7");
    }
    assert_eq!(all.len(), forwarded + 60 + requests.len());
    // The slow path's answers: ARP replies for 192.0.2.1 and echo replies.
    let arp: Vec<&Vec<u8>> = all.iter().filter(|f| is_arp(f, 2)).collect();
    assert_eq!(arp.len(), 20);
    for a in &arp {
        assert_eq!((&a[0..6], &a[6..12]), (&CLIENT_MAC.0[..], &PORT_MAC.0[..]));
        assert_eq!(u16::from_be_bytes([a[20], a[21]]), 2, "an ARP reply");
        assert_eq!((&a[22..28], &a[28..32]), (&PORT_MAC.0[..], &[192, 0, 2, 1][..]), "who has 192.0.2.1: us");
    }
    let is_icmp = |f: &Vec<u8>| f[12..14] == [0x08, 0x00] && f[14 + 9] == 1;
    let icmp_type = |f: &Vec<u8>| f[14 + 20];
    let echoes: Vec<&Vec<u8>> = all.iter().filter(|f| is_icmp(f) && icmp_type(f) == 0).collect();
    assert_eq!(echoes.len(), 20);
    // Refusals for the Service without endpoints: port unreachable quoting
    // the UDP query, and resets answering the SYNs.
    let unreachable: Vec<&Vec<u8>> = all.iter().filter(|f| is_icmp(f) && icmp_type(f) == 3).collect();
    assert_eq!(unreachable.len(), 10);
    for u in &unreachable {
        let ip = Ipv4Packet::new_checked(&u[14..]).expect("unreachable");
        assert_eq!((ip.src_addr(), ip.dst_addr()), (empty, Ipv4Addr::new(198, 51, 100, 7)));
        let icmp = dataplane::wire::Icmpv4Packet::new_checked(ip.payload()).expect("ICMP");
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.msg_code(), 3, "port unreachable");
        // The original header and 8 bytes: its length field says more, so
        // the view is unchecked.
        let quoted = icmp.payload();
        assert_eq!(quoted.len(), 28);
        assert_eq!(Ipv4Packet::new_unchecked(quoted).dst_addr(), empty);
    }
    let is_rst = |f: &Vec<u8>| f[12..14] == [0x08, 0x00] && f[14 + 9] == 6 && f[14 + 20 + 13] & 0x04 != 0;
    let resets: Vec<&Vec<u8>> = all.iter().filter(|f| is_rst(f)).collect();
    assert_eq!(resets.len(), 10);
    for r in &resets {
        let ip = Ipv4Packet::new_checked(&r[14..]).expect("reset");
        let tcp = TcpPacket::new_checked(ip.payload()).expect("TCP");
        assert!(tcp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
        assert_eq!((ip.src_addr(), tcp.src_port()), (empty, 80));
        assert!(tcp.ack() && tcp.ack_number() == 101, "RST,ACK for the SYN (seq 100 + 1)");
    }
    for e in &echoes {
        let ip = Ipv4Packet::new_checked(&e[14..]).expect("echo reply");
        assert!(ip.verify_checksum());
        let icmp = dataplane::wire::Icmpv4Packet::new_checked(ip.payload()).expect("ICMP");
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.msg_type(), 0, "an echo reply");
        assert!([Ipv4Addr::new(192, 0, 2, 1), vips[0].vip].contains(&ip.src_addr()));
    }
    let out: Vec<&Vec<u8>> = all.iter().filter(|f| f[12..14] == [0x08, 0x00] && !is_icmp(f) && !is_rst(f)).collect();
    assert_eq!(out.len(), forwarded);
    let by_client: HashMap<(Ipv4Addr, u16, u8), &Flow> =
        flows.iter().map(|f| ((f.client, f.client_port, vips[f.vip].protocol), f)).collect();
    let mut backend_of: HashMap<(Ipv4Addr, u16, u8), SocketAddr> = HashMap::new();
    let mut per_backend: HashMap<SocketAddr, usize> = HashMap::new();
    let (mut requests, mut replies) = (0, 0);
    for frame in out {
        let ip = Ipv4Packet::new_checked(&frame[14..]).expect("IPv4");
        assert!(ip.verify_checksum());
        assert_eq!(ip.ttl(), 63);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let (sport, dport) = match ip.protocol() {
            6 => {
                let t = TcpPacket::new_checked(ip.payload()).expect("TCP");
                assert!(t.verify_checksum_v4(src, dst));
                (t.src_port(), t.dst_port())
            }
            17 => {
                let u = UdpPacket::new_checked(ip.payload()).expect("UDP");
                assert!(u.verify_checksum_v4(src, dst));
                (u.src_port(), u.dst_port())
            }
            p => panic!("protocol {p}"),
        };
        let src_mac = MacAddr(frame[6..12].try_into().unwrap());
        let dst_mac = MacAddr(frame[0..6].try_into().unwrap());
        assert_eq!(src_mac, PORT_MAC);
        if dst_mac == GW_MAC {
            // Client → backend.
            requests += 1;
            let flow = by_client[&(src, sport, ip.protocol())];
            let backend = SocketAddr::new(dst.into(), dport);
            assert!(vips[flow.vip].backends.contains(&backend), "{backend} is no backend of {}", vips[flow.vip].name);
            let first = *backend_of.entry((src, sport, ip.protocol())).or_insert(backend);
            assert_eq!(first, backend, "flow {src}:{sport} moved");
            assert_eq!(backend, flow.backend);
            *per_backend.entry(backend).or_default() += 1;
        } else {
            // Backend → client, un-NATed.
            assert_eq!(dst_mac, CLIENT_MAC);
            replies += 1;
            let flow = by_client[&(dst, dport, ip.protocol())];
            let v = &vips[flow.vip];
            assert_eq!((src, sport), (v.vip, v.port), "reply not from the VIP");
        }
    }
    assert_eq!((requests, replies), (3 * flows.len(), 2 * flows.len()));
    for v in &vips {
        for b in &v.backends {
            assert!(per_backend.get(b).copied().unwrap_or(0) > 0, "{b} of {} got no flow", v.name);
        }
    }

    // An independent opinion on the checksums.
    let scapy = Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy_checksums.py"))
        .arg(dir.path().join("out.pcap"))
        .output()
        .expect("run scapy (apt-get install python3-scapy)");
    let verdict: serde_json::Value = serde_json::from_slice(&scapy.stdout)
        .unwrap_or_else(|e| panic!("scapy said {e}: {}", String::from_utf8_lossy(&scapy.stderr)));
    assert!(scapy.status.success(), "scapy found bad checksums: {verdict}");
    assert_eq!(verdict["checked"], forwarded as u64 + 40, "forwarded packets, echo replies and refusals");
}
