//! Pod churn against a real kube-apiserver and containerd for two minutes:
//! twenty pods applied at once (healthy ones, missing images, crash loops,
//! failing liveness probes), then deleted at once. Throughout, the node's
//! Lease is renewed without a gap over 15 s and the control loop never runs
//! a tick a second late: the control thread does not stall.
//!
//! Needs root, containerd, kubectl and the kube-apiserver that
//! `scripts/lab/kube-apiserver` builds.

use std::time::{Duration, Instant};

use testing::apiserver::ApiServer;
use testing::appliance::{agent_section, free_port, max_control_loop_lag, Appliance};
use testing::containerd::Containerd;

const NODE: &str = "node-c";
const CHURN: Duration = Duration::from_secs(120);

/// Pod `i` of the churn: a quarter each healthy, missing its image,
/// crash-looping, and failing its liveness probe.
fn pod(i: usize) -> String {
    let (image, command, probe) = match i % 4 {
        0 => ("switchyard.local/busybox:1", r#"["sleep", "3600"]"#, ""),
        1 => ("switchyard.local/missing:1", r#"["sleep", "3600"]"#, ""),
        2 => ("switchyard.local/busybox:1", r#"["sh", "-c", "sleep 1; exit 1"]"#, ""),
        _ => (
            "switchyard.local/busybox:1",
            r#"["sleep", "3600"]"#,
            "\n    livenessProbe: {exec: {command: [\"false\"]}, periodSeconds: 1, failureThreshold: 1}",
        ),
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: churn-{i}, namespace: default}}\nspec:\n  nodeName: {NODE}\n\
         \x20 automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 1\n  containers:\n\
         \x20 - name: app\n    image: \"{image}\"\n    command: {command}{probe}\n"
    )
}

#[test]
fn the_control_thread_holds_through_pod_churn() {
    if let Err(why) = Containerd::available() {
        panic!("this test needs containerd (scripts/install-deps) and root: {why}");
    }
    let api = ApiServer::start().unwrap_or_else(|e| panic!("kube-apiserver: {e}"));
    let rbac = std::fs::read_to_string(testing::repo_root().join("configs/kubernetes/rbac.yaml")).expect("rbac.yaml");
    api.apply(&rbac).unwrap_or_else(|e| panic!("applying rbac.yaml: {e}"));
    let kubeconfig = api.service_account_kubeconfig("kube-system", "switchyard").expect("a token for switchyard");
    let mut ctrd = Containerd::start().expect("containerd");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("manifests")).expect("manifests dir");
    let metrics = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "{}backoff_initial_seconds = 1\nbackoff_max_seconds = 8\n[cluster]\nkubeconfig = \"{}\"\n\
         [admin]\nlisten = \"@ADMIN@\"\n[metrics]\nlisten = \"{metrics}\"\n",
        agent_section(NODE, &ctrd.address, dir.path()),
        kubeconfig.display()
    );
    let mut sy = Appliance::start(dir.path(), &config);
    let renew_time = || {
        api.kubectl(&["get", "lease", "-n", "kube-node-lease", NODE, "-o", "jsonpath={.spec.renewTime}"], None)
            .ok()
            .filter(|t| !t.is_empty())
    };
    sy.wait_for("the Lease", Duration::from_secs(30), |_| renew_time().is_some());

    let all: String = (0..20).map(|i| format!("---\n{}", pod(i))).collect();
    api.apply(&all).expect("twenty pods at once");
    let start = Instant::now();
    let (mut last_renewal, mut last_seen, mut largest_gap) = (Instant::now(), renew_time(), Duration::ZERO);
    while start.elapsed() < CHURN {
        std::thread::sleep(Duration::from_secs(1));
        let now = renew_time();
        if now.is_some() && now != last_seen {
            largest_gap = largest_gap.max(last_renewal.elapsed());
            last_renewal = Instant::now();
            last_seen = now;
        }
        largest_gap = largest_gap.max(last_renewal.elapsed());
    }
    let running = sy
        .get("/v1/pods")
        .and_then(|p| p.as_array().cloned())
        .map(|p| p.iter().filter(|p| p["phase"] == "Running").count())
        .unwrap_or(0);
    api.kubectl(&["delete", "pods", "-n", "default", "--all", "--wait=false"], None).expect("delete the pods");
    sy.wait_for("every pod gone from the node", Duration::from_secs(90), |a| {
        a.get("/v1/pods").and_then(|p| p.as_array().cloned()).is_some_and(|p| p.is_empty())
    });

    let max_lag = max_control_loop_lag(&metrics).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "churn: {running} pods running at the end; largest Lease gap {largest_gap:?}; largest control loop lag {:.1} ms",
        max_lag * 1000.0
    );
    assert!(running >= 5, "the healthy pods ran: {running}");
    assert!(largest_gap <= Duration::from_secs(15), "the Lease went {largest_gap:?} without renewal");
    assert!(max_lag < 1.0, "the control loop ran a tick {max_lag:.3} s late");
    sy.stop();
    drop(sy);
    ctrd.stop().expect("containerd cleanup");
}
