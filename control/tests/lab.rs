//! Real TCP through the appliance on the veth lab (`scripts/lab`), to pods
//! that its node agent runs on a private containerd, with standalone
//! Services: every request answered and spread over the pods; a VIP without
//! endpoints refuses at once (reset); scaling down and up keeps every new
//! request answered and uses exactly the pods that exist; a pod whose
//! container dies is out of the rotation quickly.
//!
//! Needs root, DPDK, containerd (scripts/install-deps).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::appliance::Appliance;
use support::containerd::Containerd;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn web_pod(name: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/configs/demo/manifests/web-1.yaml"))
        .expect("demo pod manifest")
        .replace("name: web-1", &format!("name: {name}"))
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

/// One HTTP request from the client namespace: the answer, or curl's exit code.
fn curl(vip: &str) -> Result<String, i32> {
    let out = Command::new("ip")
        .args(["netns", "exec", "sy-client", "curl", "-s", "-m", "2", &format!("http://{vip}/")])
        .output()
        .expect("curl in the client namespace");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(out.status.code().unwrap_or(-1))
    }
}

/// `n` requests: how many each pod answered, and how many failed.
fn spread(n: usize) -> (BTreeMap<String, usize>, usize) {
    let mut pods = BTreeMap::new();
    let mut failed = 0;
    for _ in 0..n {
        match curl("10.96.0.10") {
            Ok(answer) => *pods.entry(answer.trim_start_matches("hello from ").to_string()).or_default() += 1,
            Err(code) => {
                failed += 1;
                *pods.entry(format!("failed (curl exit {code})")).or_default() += 1;
            }
        }
    }
    (pods, failed)
}

fn ready_backends(a: &Appliance) -> usize {
    let services = a.get("/v1/services").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    services
        .iter()
        .find(|s| s["vip"] == "10.96.0.10")
        .and_then(|s| s["backends"].as_array().cloned())
        .map_or(0, |b| b.iter().filter(|b| b["state"] == "ready").count())
}

fn lab(action: &str) {
    let status = Command::new(format!("{ROOT}/scripts/lab")).arg(action).status().expect("scripts/lab");
    assert!(status.success(), "scripts/lab {action}");
}

fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn real_tcp_reaches_the_pods_and_follows_the_endpoints() {
    if let Err(why) = Containerd::available() {
        panic!("this test needs containerd (scripts/install-deps) and root: {why}");
    }
    let mut ctrd = Containerd::start().expect("containerd");
    lab("up");
    struct LabDown;
    impl Drop for LabDown {
        fn drop(&mut self) {
            let _ = Command::new(format!("{ROOT}/scripts/lab")).arg("down").status();
        }
    }
    let _lab = LabDown;

    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    for name in ["web-1", "web-2", "web-3"] {
        write(&manifests, &format!("{name}.yaml"), &web_pod(name));
    }
    std::fs::copy(format!("{ROOT}/configs/demo/manifests/web-service.yaml"), manifests.join("web-service.yaml"))
        .unwrap();
    write(&manifests, "empty.yaml", EMPTY);
    write(&manifests, "nodeport.yaml", NODE_PORT);
    let worker = std::thread::available_parallelism().map(|n| n.get() - 1).unwrap_or(0);
    let config = std::fs::read_to_string(format!("{ROOT}/configs/demo/switchyard.toml"))
        .unwrap()
        .replace("@WORK@", &dir.path().display().to_string())
        .replace("@WORKER@", &worker.to_string())
        .replace("@CONTAINERD@", &ctrd.address)
        .replace("listen = \"127.0.0.1:9477\"", "listen = \"@ADMIN@\"")
        .replace("listen = \"127.0.0.1:9476\"", "listen = \"\"")
        .replace("[agent]", "[agent]\nsync_period_ms = 300\nbackoff_initial_seconds = 5");
    let sy = Appliance::start(dir.path(), &config);
    sy.wait_for("three ready backends", Duration::from_secs(60), |a| ready_backends(a) == 3);
    lab("pods");

    // Every request answered, spread over the three pods.
    let (pods, failed) = spread(60);
    assert_eq!(failed, 0, "{pods:?}");
    assert_eq!(pods.len(), 3, "{pods:?}");

    // The NodePort on the appliance's own address reaches the pods too.
    for _ in 0..10 {
        let answer = curl("192.0.2.1:30080").expect("the NodePort answers");
        assert!(answer.starts_with("hello from web-"), "{answer}");
    }

    // A VIP without endpoints refuses at once: curl sees a reset.
    let start = Instant::now();
    assert_eq!(curl("10.96.0.11"), Err(7), "connection refused");
    assert!(start.elapsed() < Duration::from_secs(1), "refused, not timed out");

    // Scale down to two: new requests go to the two left, all answered.
    std::fs::remove_file(manifests.join("web-3.yaml")).unwrap();
    sy.wait_for("two ready backends", Duration::from_secs(30), |a| ready_backends(a) == 2);
    let (pods, failed) = spread(40);
    assert_eq!(failed, 0, "{pods:?}");
    assert_eq!(pods.keys().cloned().collect::<Vec<_>>(), vec!["web-1-demo", "web-2-demo"]);

    // Scale up to four.
    write(&manifests, "web-4.yaml", &web_pod("web-4"));
    write(&manifests, "web-5.yaml", &web_pod("web-5"));
    sy.wait_for("four ready backends", Duration::from_secs(60), |a| ready_backends(a) == 4);
    lab("pods");
    let (pods, failed) = spread(80);
    assert_eq!(failed, 0, "{pods:?}");
    assert_eq!(pods.len(), 4, "{pods:?}");

    // A pod whose container dies leaves the rotation quickly; the rest keep
    // answering everything.
    let victim = sy
        .get("/v1/pods")
        .and_then(|p| p.as_array().cloned())
        .and_then(|p| p.into_iter().find(|p| p["name"] == "web-4-demo"))
        .and_then(|p| p["containers"][0]["id"].as_str().map(|id| id.trim_start_matches("containerd://").to_string()))
        .expect("web-4's container");
    ctrd.ctr(&["tasks", "kill", "-s", "SIGKILL", &victim]).expect("kill web-4's container");
    let killed = Instant::now();
    sy.wait_for("web-4 out of the rotation", Duration::from_secs(10), |a| ready_backends(a) == 3);
    // The agent looks every 300 ms here and the Service side every 250 ms;
    // the bound leaves room for a loaded CI machine.
    assert!(killed.elapsed() < Duration::from_secs(6), "took {:?}", killed.elapsed());
    let (pods, failed) = spread(40);
    assert_eq!(failed, 0, "{pods:?}");
    assert!(!pods.contains_key("web-4-demo"), "{pods:?}");

    drop(sy);
    ctrd.stop().expect("containerd cleanup");
}
