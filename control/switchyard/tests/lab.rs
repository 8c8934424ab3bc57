//! Real TCP and UDP through the appliance on the veth lab (`scripts/lab/net`),
//! to pods that its node agent runs on a private containerd, with standalone
//! Services. One lab and one appliance serve every check (starting them is
//! the slow part); each check says what failed:
//!
//! - curl to a ClusterIP: every request answered, spread over the pods; the
//!   NodePort on the appliance's own address too; a VIP without endpoints
//!   refuses at once (reset);
//! - wrk to the ClusterIP and to the NodePort: no socket errors, no non-2xx,
//!   the answers spread over the pods;
//! - sessionAffinity ClientIP keeps the client on one pod, while the same
//!   pods behind a VIP without affinity share its requests;
//! - UDP: queries to a UDP Service are answered from the VIP, by every pod;
//! - scaling a TCP echo Service 3 → 5 → 2 answers every new connection
//!   throughout, and long-lived connections stay on their pods; the pods
//!   scaled away drain: their open connections keep working after SIGTERM
//!   and end normally, new connections go elsewhere, and the pods go once
//!   their connections are done;
//! - a SIGHUP that adds a `[[service]]` and a route keeps both through the
//!   publications that follow (a Service event, a neighbour learned), and
//!   the added Service forwards;
//! - scaling the web pods 3 → 2 → 4 uses exactly the pods that exist; a pod
//!   whose container dies is out of the rotation quickly.
//!
//! Needs root, DPDK, containerd, wrk, curl and /usr/bin/python3
//! (scripts/install-deps).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testing::appliance::Appliance;
use testing::containerd::Containerd;
use testing::lab_client::{curl, curl_spread, udp, wrk, Churn, Held, Spread};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

const WEB: &str = "http://10.96.0.10/";
const NODE_PORT_URL: &str = "http://192.0.2.1:30080/";
const STICKY: &str = "http://10.96.0.13/";
const ECHO_VIP: &str = "10.96.0.20";
const ECHO_PORT: u16 = 9000;
const UDP_VIP: &str = "10.96.0.30";
const UDP_PORT: u16 = 53;

/// The node name of the demo config: static pods are named `NAME-demo`.
fn pod(name: &str) -> String {
    format!("{name}-demo")
}

/// A pod manifest made from a template whose pod is `template`.
fn pod_from(file: &str, template: &str, name: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{file}"))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .replace(&format!("name: {template}"), &format!("name: {name}"))
}

fn web_pod(name: &str) -> String {
    pod_from("configs/demo/manifests/web-1.yaml", "web-1", name)
}

fn echo_pod(name: &str) -> String {
    pod_from("configs/lab/echo-1.yaml", "echo-1", name)
}

fn udp_pod(name: &str) -> String {
    pod_from("configs/lab/udp-1.yaml", "udp-1", name)
}

const NODE_PORT: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  clusterIP: 10.96.0.12
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
"#;

const EMPTY: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  clusterIP: 10.96.0.11
  selector: {app: nothing}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

/// Backends of the Service on `vip:port` in each state.
fn backend_states(a: &Appliance, vip: &str, port: u16) -> BTreeMap<String, usize> {
    let services = a.get("/v1/services").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let mut states = BTreeMap::new();
    let service = services.iter().find(|s| s["vip"] == vip && s["port"] == port);
    for b in service.and_then(|s| s["backends"].as_array()).into_iter().flatten() {
        *states.entry(b["state"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    states
}

fn ready_backends(a: &Appliance, vip: &str, port: u16) -> usize {
    backend_states(a, vip, port).get("ready").copied().unwrap_or(0)
}

/// The agent's view of a pod (`/v1/pods`), if it has it.
fn pod_view(a: &Appliance, name: &str) -> Option<serde_json::Value> {
    a.get("/v1/pods").and_then(|p| p.as_array().cloned()).and_then(|p| p.into_iter().find(|p| p["name"] == name))
}

fn lab(action: &str) {
    let status = Command::new(format!("{ROOT}/scripts/lab/net")).arg(action).status().expect("scripts/lab/net");
    assert!(status.success(), "scripts/lab/net {action}");
}

/// The DPDK driver for the lab's veths (`scripts/lab/net pmd`): af_xdp where
/// the machine has it, as on this kind of machine.
fn lab_pmd() -> String {
    let out = Command::new(format!("{ROOT}/scripts/lab/net")).arg("pmd").output().expect("scripts/lab/net pmd");
    assert!(out.status.success(), "scripts/lab/net pmd: {}", String::from_utf8_lossy(&out.stderr));
    let pmd = String::from_utf8_lossy(&out.stdout).trim().to_string();
    eprintln!("lab ports: net_{pmd}");
    pmd
}

fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write a manifest");
    std::fs::rename(&tmp, dir.join(name)).expect("move a manifest in place");
}

/// Progress on stderr (visible with --nocapture): where a slow run spends
/// its time.
fn step(start: Instant, what: &str) {
    eprintln!("[lab {:>6.1}s] {what}", start.elapsed().as_secs_f64());
}

struct LabDown;

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = Command::new(format!("{ROOT}/scripts/lab/net")).arg("down").status();
    }
}

/// The lab with the appliance running on it. Fields drop in order: the
/// appliance, the lab's veths, containerd (with every pod), the files.
struct Lab {
    sy: Appliance,
    _lab: LabDown,
    ctrd: Containerd,
    manifests: PathBuf,
    _dir: tempfile::TempDir,
    start: Instant,
}

impl Lab {
    fn up() -> Lab {
        let start = Instant::now();
        if let Err(why) = Containerd::available() {
            panic!("this test needs containerd (scripts/install-deps) and root: {why}");
        }
        let ctrd = Containerd::start().expect("containerd");
        ctrd.ctr(&["images", "check", "name==switchyard.local/udp-echo:1"])
            .ok()
            .filter(|out| out.contains("udp-echo"))
            .expect("the image switchyard.local/udp-echo:1 (scripts/lab/build-images needs rustc to build it)");
        lab("up");
        let lab_down = LabDown;

        let dir = tempfile::tempdir().expect("temp dir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("manifests dir");
        for i in 1..=3 {
            write(&manifests, &format!("web-{i}.yaml"), &web_pod(&format!("web-{i}")));
            write(&manifests, &format!("echo-{i}.yaml"), &echo_pod(&format!("echo-{i}")));
            write(&manifests, &format!("udp-{i}.yaml"), &udp_pod(&format!("udp-{i}")));
        }
        let copy = |from: &str, to: &str| {
            std::fs::copy(format!("{ROOT}/{from}"), manifests.join(to)).unwrap_or_else(|e| panic!("{from}: {e}"));
        };
        copy("configs/demo/manifests/web-service.yaml", "web-service.yaml");
        copy("configs/lab/web-sticky-service.yaml", "web-sticky-service.yaml");
        copy("configs/lab/echo-service.yaml", "echo-service.yaml");
        copy("configs/lab/udp-service.yaml", "udp-service.yaml");
        write(&manifests, "empty.yaml", EMPTY);
        write(&manifests, "nodeport.yaml", NODE_PORT);

        let worker = testing::appliance::worker_cpu();
        let config = std::fs::read_to_string(format!("{ROOT}/configs/demo/switchyard.toml"))
            .expect("demo config")
            .replace("@WORK@", &dir.path().display().to_string())
            .replace("@WORKER@", &worker.to_string())
            .replace("@CONTAINERD@", &ctrd.address)
            .replace("@PMD@", &lab_pmd())
            .replace("listen = \"127.0.0.1:9477\"", "listen = \"@ADMIN@\"")
            .replace("listen = \"127.0.0.1:9476\"", "listen = \"\"")
            .replace("[agent]", "[agent]\nbackoff_initial_seconds = 5");
        let sy = Appliance::start(dir.path(), &config);
        let lab = Lab { sy, _lab: lab_down, ctrd, manifests, _dir: dir, start };
        lab.step("appliance up; waiting for nine pods");
        lab.wait_ready(
            "three web, three echo and three UDP pods",
            Duration::from_secs(120),
            &[("10.96.0.10", 80, 3), (ECHO_VIP, ECHO_PORT, 3), (UDP_VIP, UDP_PORT, 3)],
        );
        lab
    }

    fn step(&self, what: &str) {
        step(self.start, what);
    }

    /// Removes the pods `names` and waits until they are gone: a check done
    /// with its pods leaves the next one the machine (every pod's worker
    /// asks containerd about it every 300 ms).
    fn remove_pods(&self, names: &[&str]) {
        for name in names {
            std::fs::remove_file(self.manifests.join(format!("{name}.yaml"))).expect("remove a pod manifest");
        }
        self.sy.wait_for("the pods removed", Duration::from_secs(30), |a| {
            names.iter().all(|n| pod_view(a, &pod(n)).is_none())
        });
    }

    /// Waits until each `(vip, port, n)` has exactly `n` ready backends,
    /// turning offloads off in new pods' namespaces meanwhile
    /// (`scripts/lab/net pods`), before they get traffic.
    fn wait_ready(&self, what: &str, timeout: Duration, want: &[(&str, u16, usize)]) {
        self.sy.wait_for(what, timeout, |a| {
            lab("pods");
            want.iter().all(|&(vip, port, n)| ready_backends(a, vip, port) == n)
        });
        lab("pods");
    }
}

#[test]
fn real_traffic_reaches_the_pods_and_follows_the_endpoints() {
    let lab = Lab::up();
    clusterip_nodeport_and_refusal(&lab);
    reloaded_tables_outlive_later_events(&lab);
    wrk_runs(&lab);
    session_affinity(&lab);
    udp_service(&lab);
    echo_scaling_and_draining(&lab);
    web_scaling_and_a_dead_container(&lab);
    lab.step("done");
    let Lab { sy, mut ctrd, .. } = lab;
    drop(sy);
    ctrd.stop().expect("containerd cleanup");
}

fn clusterip_nodeport_and_refusal(lab: &Lab) {
    lab.step("curl: ClusterIP, NodePort, a VIP without endpoints");
    let (pods, failed) = curl_spread(WEB, 60);
    assert_eq!(failed, 0, "ClusterIP: every request answered: {pods:?}");
    assert_eq!(pods.len(), 3, "ClusterIP: requests spread over the three pods: {pods:?}");

    // The NodePort on the appliance's own address reaches the pods too.
    let (pods, failed) = curl_spread(NODE_PORT_URL, 30);
    assert_eq!(failed, 0, "NodePort: every request answered: {pods:?}");
    assert_eq!(pods.len(), 3, "NodePort: requests spread over the three pods: {pods:?}");

    // A VIP without endpoints refuses at once: curl sees a reset.
    let start = Instant::now();
    assert_eq!(curl("http://10.96.0.11/"), Err(7), "a VIP without endpoints refuses the connection");
    assert!(start.elapsed() < Duration::from_secs(1), "refused, not timed out");
}

/// The published routes' destinations and neighbours' addresses
/// (`/v1/routes`).
fn next_hops(a: &Appliance) -> (Vec<String>, Vec<String>) {
    let view = a.get("/v1/routes").unwrap_or_default();
    let list = |k: &str| -> Vec<String> {
        let entries = view[k].as_array().cloned().unwrap_or_default();
        entries.iter().filter_map(|e| e["destination"].as_str().map(String::from)).collect()
    };
    (list("routes"), list("neighbours"))
}

fn has_service(a: &Appliance, vip: &str) -> bool {
    let services = a.get("/v1/services").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    services.iter().any(|s| s["vip"] == vip)
}

/// SIGHUP adds a `[[service]]` and a route; then a Service event and a
/// learned neighbour each publish the tables again: the reloaded entries
/// stay, and the added Service forwards.
fn reloaded_tables_outlive_later_events(lab: &Lab) {
    lab.step("SIGHUP: a [[service]] and a route, then a Service event and a learned neighbour");
    let ip = |name: &str| {
        pod_view(&lab.sy, &pod(name)).and_then(|p| p["ip"].as_str().map(String::from)).expect("the pod's IP")
    };
    let original = lab.sy.config();
    let client_port = original
        .split("name = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the config's first [[port]]")
        .to_string();
    const ADDED_VIP: &str = "10.96.0.50";
    const ADDED_ROUTE: &str = "198.51.100.0/24";
    let reloaded = format!(
        "{original}\n[[route]]\nprefix = \"{ADDED_ROUTE}\"\nport = \"{client_port}\"\n\
         gateway_mac = \"02:53:59:00:00:aa\"\n\n[[service]]\nname = \"default/reloaded:http\"\n\
         vip = \"{ADDED_VIP}\"\nport = 80\nbackends = [\"{}:8080\"]\n",
        ip("web-1")
    );
    lab.sy.reload(&reloaded);
    lab.sy.wait_for("the reloaded [[service]] and route", Duration::from_secs(10), |a| {
        has_service(a, ADDED_VIP) && next_hops(a).0.contains(&ADDED_ROUTE.to_string())
    });

    // A Service event (a new standalone Service) and a neighbour learned (a
    // new pod, resolved by ARP once it is an endpoint): each publishes.
    write(&lab.manifests, "web-6.yaml", &web_pod("web-6"));
    lab.wait_ready("a fourth web pod", Duration::from_secs(60), &[("10.96.0.10", 80, 4)]);
    let web6 = ip("web-6");
    lab.sy.wait_for("web-6 learned as a neighbour", Duration::from_secs(10), |a| next_hops(a).1.contains(&web6));
    let (routes, _) = next_hops(&lab.sy);
    assert!(routes.contains(&ADDED_ROUTE.to_string()), "the reloaded route is still published: {routes:?}");
    assert!(has_service(&lab.sy, ADDED_VIP), "the reloaded [[service]] is still published");
    let (pods, failed) = curl_spread(&format!("http://{ADDED_VIP}/"), 10);
    assert_eq!(failed, 0, "the reloaded [[service]] answers: {pods:?}");
    assert_eq!(pods.keys().cloned().collect::<Vec<_>>(), vec![pod("web-1")], "its one backend answers");

    // Back to the lab's own config for the checks that follow.
    lab.sy.reload(&original);
    lab.remove_pods(&["web-6"]);
    lab.sy.wait_for("the reloaded entries gone", Duration::from_secs(10), |a| !has_service(a, ADDED_VIP));
}

/// wrk's pod answers ("200 hello from web-1-demo") as answers per pod.
fn wrk_pods(answers: &Spread) -> Spread {
    answers.iter().map(|(k, n)| (k.trim_start_matches("200 hello from ").to_string(), *n)).collect()
}

fn wrk_runs(lab: &Lab) {
    for (what, url) in [("ClusterIP", WEB), ("NodePort", NODE_PORT_URL)] {
        lab.step(&format!("wrk: {what}"));
        // busybox httpd closes every connection: each request is a new flow.
        let run = wrk(url, 16, 3);
        assert!(run.errors.is_empty(), "wrk {what}: socket errors or non-2xx answers {:?}\n{}", run.errors, run.report);
        assert!(run.requests >= 100, "wrk {what}: only {} requests in 3 s\n{}", run.requests, run.report);
        let answered: usize = run.answers.values().sum();
        assert_eq!(answered as u64, run.requests, "wrk {what}: every request answered: {:?}", run.answers);
        let pods = wrk_pods(&run.answers);
        let expected: BTreeSet<String> = (1..=3).map(|i| pod(&format!("web-{i}"))).collect();
        assert_eq!(
            pods.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "wrk {what}: 200s from each of the three pods and nothing else"
        );
        // Maglev with three equal backends: each gets about a third.
        let least = pods.values().min().copied().unwrap_or(0);
        assert!(least * 10 >= answered, "wrk {what}: a pod got under 10% of the requests: {pods:?}");
        lab.step(&format!("wrk {what}: {} requests, {pods:?}", run.requests));
    }
}

fn session_affinity(lab: &Lab) {
    lab.step("sessionAffinity ClientIP");
    let (sticky, failed) = curl_spread(STICKY, 30);
    assert_eq!(failed, 0, "affinity: every request answered: {sticky:?}");
    assert_eq!(sticky.len(), 1, "sessionAffinity ClientIP: one client, one pod: {sticky:?}");
    // The same pods without affinity: the same client's requests spread.
    let (spread, failed) = curl_spread(WEB, 30);
    assert_eq!(failed, 0, "{spread:?}");
    assert!(spread.len() >= 2, "without affinity the requests spread: {spread:?}");
}

fn udp_service(lab: &Lab) {
    lab.step("UDP echo Service");
    // The first query of a pod may race its server's start: wait for
    // answers first.
    lab.sy.wait_for("a UDP answer", Duration::from_secs(10), |_| udp(UDP_VIP, UDP_PORT, 1).lost == 0);
    let run = udp(UDP_VIP, UDP_PORT, 60);
    assert_eq!(run.lost, 0, "UDP: every query answered: {run:?}");
    assert!(run.strangers.is_empty(), "UDP: answers come from the VIP {UDP_VIP}:{UDP_PORT}: {run:?}");
    let expected: BTreeSet<String> = (1..=3).map(|i| pod(&format!("udp-{i}"))).collect();
    assert_eq!(
        run.pods.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "UDP: answers from the three pods: {run:?}"
    );
    lab.remove_pods(&["udp-1", "udp-2", "udp-3"]);
}

/// The pod each held connection talks to; panics on any that does not
/// answer.
fn ask_all(held: &mut Held, what: &str) -> Vec<String> {
    let answers = held.ask();
    let bad: Vec<&String> = answers.iter().filter(|a| a.starts_with("error") || *a == "closed").collect();
    assert!(bad.is_empty(), "{what}: every held connection answers: {answers:?}");
    answers
}

fn distinct(pods: &[String]) -> BTreeSet<String> {
    pods.iter().cloned().collect()
}

/// Whether a connection straight to the pod's server (from the root
/// namespace, over the bridge) is refused: its listener is closed.
fn listener_closed(ip: &str) -> bool {
    let Ok(addr) = format!("{ip}:{ECHO_PORT}").parse::<SocketAddr>() else { return false };
    matches!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

fn echo_scaling_and_draining(lab: &Lab) {
    lab.step("echo: long-lived connections, scaling 3 → 5 → 2");
    let churn = Churn::start(ECHO_VIP, ECHO_PORT);
    // 24 connections over three pods: each pod gets some (but for a chance
    // of 2e-4).
    let mut first = Held::open(ECHO_VIP, ECHO_PORT, 24);
    let first_pods = ask_all(&mut first, "3 pods");
    let three: BTreeSet<String> = (1..=3).map(|i| pod(&format!("echo-{i}"))).collect();
    assert_eq!(distinct(&first_pods), three, "held connections spread over the three echo pods");

    // Up to five.
    write(&lab.manifests, "echo-4.yaml", &echo_pod("echo-4"));
    write(&lab.manifests, "echo-5.yaml", &echo_pod("echo-5"));
    lab.wait_ready("five ready echo pods", Duration::from_secs(60), &[(ECHO_VIP, ECHO_PORT, 5)]);
    lab.step("echo: five pods");
    assert_eq!(ask_all(&mut first, "after 3 → 5"), first_pods, "after 3 → 5 each connection stays on its pod");
    // New connections reach the new pods: of 20, some (but for a chance of
    // 4e-5) land on echo-4 or echo-5.
    let mut second = Held::open(ECHO_VIP, ECHO_PORT, 20);
    let second_pods = ask_all(&mut second, "5 pods");
    let new: BTreeSet<String> = [pod("echo-4"), pod("echo-5")].into();
    assert!(
        !distinct(&second_pods).is_disjoint(&new),
        "new connections reach the new pods echo-4 and echo-5: {second_pods:?}"
    );

    // Down to two: echo-1, echo-4 and echo-5 go; their connections stay
    // open across their termination.
    let leaving: BTreeSet<String> = [pod("echo-1"), pod("echo-4"), pod("echo-5")].into();
    let ips: BTreeMap<String, String> = leaving
        .iter()
        .map(|p| {
            let ip = pod_view(&lab.sy, p).and_then(|v| v["ip"].as_str().map(str::to_string)).expect("pod ip");
            (p.clone(), ip)
        })
        .collect();
    // A client making connections as fast as it can while the pods go: a
    // pod told to stop (it stops listening) while the tables still send it
    // new connections would refuse some. (One: more would starve the agent
    // and containerd of the one core DPDK leaves them.)
    let rush = Churn::rush(ECHO_VIP, ECHO_PORT);
    std::thread::sleep(Duration::from_millis(300));
    for name in ["echo-1", "echo-4", "echo-5"] {
        std::fs::remove_file(lab.manifests.join(format!("{name}.yaml"))).expect("remove an echo manifest");
    }
    let removed = Instant::now();
    lab.wait_ready("two ready echo pods", Duration::from_secs(30), &[(ECHO_VIP, ECHO_PORT, 2)]);
    lab.step(&format!("echo: two ready pods {:?} after the delete", removed.elapsed()));
    // Their servers have had SIGTERM once they stop listening; a server
    // that ignored it would be killed only at the end of the 30 s grace
    // period, and this would time out.
    lab.sy.wait_for("the leaving pods' listeners closed (SIGTERM delivered)", Duration::from_secs(15), |_| {
        ips.values().all(|ip| listener_closed(ip))
    });
    lab.step(&format!("echo: leaving pods stopped listening {:?} after the delete", removed.elapsed()));
    std::thread::sleep(Duration::from_millis(500));
    let (rushed, failures) = rush.stop();
    assert!(failures.is_empty(), "every new connection answered while 5 → 2 (a client in a rush): {failures:?}");
    lab.step(&format!("echo: rush during 5 → 2 {rushed:?}"));
    for p in &leaving {
        let view = pod_view(&lab.sy, p);
        assert!(
            view.as_ref().is_some_and(|v| v["terminating"] == true),
            "{p} is terminating, not gone, while its connections are open: {view:?}"
        );
    }

    // A terminating pod keeps serving its open connections.
    assert_eq!(ask_all(&mut first, "after 5 → 2"), first_pods, "after 5 → 2 each connection stays on its pod");
    assert_eq!(ask_all(&mut second, "after 5 → 2"), second_pods, "after 5 → 2 each connection stays on its pod");

    // New connections go to the two pods left only.
    let fresh = Churn::start(ECHO_VIP, ECHO_PORT);
    std::thread::sleep(Duration::from_secs(2));
    let (fresh_pods, fresh_failures) = fresh.stop();
    assert!(fresh_failures.is_empty(), "after 5 → 2 every new connection answered: {fresh_failures:?}");
    let two: BTreeSet<String> = [pod("echo-2"), pod("echo-3")].into();
    assert_eq!(
        fresh_pods.keys().cloned().collect::<BTreeSet<_>>(),
        two,
        "after 5 → 2 new connections go to echo-2 and echo-3 only: {fresh_pods:?}"
    );

    // The connections of the leaving pods end normally; then those pods go.
    for (held, pods) in [(&mut first, &first_pods), (&mut second, &second_pods)] {
        for (i, p) in pods.iter().enumerate().filter(|(_, p)| leaving.contains(*p)) {
            let end = held.finish(i);
            assert!(
                end.answer.as_deref() == Some(p.as_str()) && end.clean,
                "a connection to the terminating pod {p} completes normally: {end:?}"
            );
        }
    }
    // Their grace period is 30 s from their SIGTERM (after the delete):
    // gone well before means their servers ended with their last
    // connections, not killed at the grace period's end.
    let finished = Instant::now();
    let before_grace_ends = Duration::from_secs(25).saturating_sub(removed.elapsed());
    lab.sy.wait_for(
        "the drained pods gone when their connections end, before their grace period ends",
        before_grace_ends,
        |a| leaving.iter().all(|p| pod_view(a, p).is_none()),
    );
    lab.step(&format!("echo: drained pods gone {:?} after their last connection", finished.elapsed()));

    // The connections to the pods that stayed still talk to them.
    let answers = first.ask();
    for (p, a) in first_pods.iter().zip(&answers) {
        let want = if leaving.contains(p) { "closed" } else { p.as_str() };
        assert_eq!(a, want, "after the drain the connections to the pods left stay on them: {answers:?}");
    }
    let (pods, failures) = churn.stop();
    assert!(failures.is_empty(), "every new connection answered throughout 3 → 5 → 2: {failures:?} (answers {pods:?})");
    assert!(pods.values().sum::<usize>() >= 100, "the churn made new connections all along: {pods:?}");
    lab.step(&format!("echo: churn throughout {pods:?}"));
    drop((first, second));
    lab.remove_pods(&["echo-2", "echo-3"]);
}

fn web_scaling_and_a_dead_container(lab: &Lab) {
    // Scale down to two: new requests go to the two left, all answered.
    lab.step("web: 3 → 2 → 4, a dead container");
    std::fs::remove_file(lab.manifests.join("web-3.yaml")).expect("remove web-3");
    lab.sy.wait_for("two ready backends", Duration::from_secs(30), |a| ready_backends(a, "10.96.0.10", 80) == 2);
    let (pods, failed) = curl_spread(WEB, 40);
    assert_eq!(failed, 0, "{pods:?}");
    assert_eq!(pods.keys().cloned().collect::<Vec<_>>(), vec![pod("web-1"), pod("web-2")]);

    // Scale up to four.
    // web-4 is the one whose container will be killed: it stays dead (a
    // restart, immediate under restartPolicy Always, would bring it back
    // into the rotation while the test looks).
    let victim = web_pod("web-4").replacen("spec:\n", "spec:\n  restartPolicy: Never\n", 1);
    assert!(victim.contains("restartPolicy: Never"), "{victim}");
    write(&lab.manifests, "web-4.yaml", &victim);
    write(&lab.manifests, "web-5.yaml", &web_pod("web-5"));
    lab.wait_ready("four ready web backends", Duration::from_secs(60), &[("10.96.0.10", 80, 4)]);
    let (pods, failed) = curl_spread(WEB, 80);
    assert_eq!(failed, 0, "{pods:?}");
    assert_eq!(pods.len(), 4, "{pods:?}");

    // A pod whose container dies leaves the rotation quickly; the rest keep
    // answering everything.
    let victim = pod_view(&lab.sy, &pod("web-4"))
        .and_then(|p| p["containers"][0]["id"].as_str().map(|id| id.trim_start_matches("containerd://").to_string()))
        .expect("web-4's container");
    lab.ctrd.ctr(&["tasks", "kill", "-s", "SIGKILL", &victim]).expect("kill web-4's container");
    let killed = Instant::now();
    lab.sy.wait_for("web-4 out of the rotation", Duration::from_secs(10), |a| ready_backends(a, "10.96.0.10", 80) == 3);
    // The agent relists containers every 250 ms (its pods' own syncs are at
    // the default 1 s here) and the Service side looks every 250 ms: well
    // under a second; the bound leaves room for a loaded CI machine.
    let gone = killed.elapsed();
    lab.step(&format!("web-4 out of the rotation {gone:?} after its container was killed"));
    assert!(gone < Duration::from_secs(2), "took {gone:?}");
    let (pods, failed) = curl_spread(WEB, 40);
    assert_eq!(failed, 0, "{pods:?}");
    assert!(!pods.contains_key(&pod("web-4")), "{pods:?}");
}
