//! The node agent against a real containerd (started by the test, with its
//! own state, socket and CNI bridge): static manifests become pods that
//! answer on their pod IP, follow edits and deletions, restart with back-off,
//! report readiness, survive containerd and agent restarts without
//! duplicates, and a broken manifest is reported while the rest run.
//!
//! Needs root and containerd, runc, CNI plugins and busybox-static
//! (scripts/install-deps).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testing::appliance::{agent_section, free_port, http_get, max_control_loop_lag, Appliance};
use testing::containerd::Containerd;

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: httpd
    image: switchyard.local/busybox:1
    command: ["sh", "-c", "echo $GREETING from $POD_NAME > /var/www/index.html && exec httpd -f -p 8080 -h /var/www"]
    env:
    - {name: GREETING, value: hello}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
"#;

const CRASH: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  initContainers:
  - {name: setup, image: "switchyard.local/busybox:1", command: ["true"]}
  containers:
  - {name: crasher, image: "switchyard.local/busybox:1", command: ["sh", "-c", "sleep 0.3; exit 3"]}
"#;

const NOT_READY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: notready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: idle
    image: switchyard.local/busybox:1
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
"#;

const LIVENESS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: wedged}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: switchyard.local/busybox:1
    command: ["sleep", "3600"]
    livenessProbe:
      tcpSocket: {port: 9999}
      periodSeconds: 1
      failureThreshold: 2
"#;

fn pods(a: &Appliance) -> Vec<Value> {
    a.get("/v1/pods").and_then(|v| v.as_array().cloned()).unwrap_or_default()
}

fn pod(a: &Appliance, name: &str) -> Option<Value> {
    pods(a).into_iter().find(|p| p["name"] == name)
}

fn write(dir: &Path, name: &str, text: &str) {
    // Write then rename, as editors and config tools do, so the agent never
    // reads half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, dir.join(name)).expect("rename manifest");
}

/// Sandboxes containerd has (the pause containers CRI made).
fn sandboxes(ctrd: &Containerd) -> usize {
    let out = ctrd.ctr(&["containers", "ls", "-q", r#"labels."io.cri-containerd.kind"==sandbox"#]).unwrap_or_default();
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

fn running(a: &Appliance, name: &str) -> bool {
    pod(a, name).is_some_and(|p| p["phase"] == "Running" && p["ready"] == "1/1")
}

#[test]
fn static_pods_follow_their_manifests_on_a_real_containerd() {
    if let Err(why) = Containerd::available() {
        panic!("this test needs containerd (scripts/install-deps) and root: {why}");
    }
    let mut ctrd = Containerd::start().expect("containerd");
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    write(&manifests, "web.yaml", WEB);
    write(&manifests, "broken.yaml", "kind: Pod\nspec: [not, a, map\n");
    write(&manifests, "noimage.yaml", "kind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: c}]\n");
    let metrics = format!("127.0.0.1:{}", free_port());
    let config = format!(
        "{}rescan_period_ms = 300\nbackoff_initial_seconds = 1\nbackoff_max_seconds = 4\n\
         [admin]\nlisten = \"@ADMIN@\"\n[metrics]\nlisten = \"{metrics}\"\n",
        agent_section("node-t", &ctrd.address, dir.path())
    );
    let mut sy = Appliance::start(dir.path(), &config);

    // A manifest becomes a running, ready pod that answers on its pod IP.
    sy.wait_for("web to run and be ready", Duration::from_secs(30), |a| running(a, "web-node-t"));
    let web = pod(&sy, "web-node-t").unwrap();
    let ip = web["ip"].as_str().unwrap().to_string();
    let (status, body) = http_get(&format!("{ip}:8080"), "/").expect("HTTP to the pod");
    assert_eq!((status, body.trim()), (200, "hello from web-node-t"));
    assert!(web["source"].as_str().unwrap().ends_with("manifests/web.yaml"));

    // Broken manifests are named with their reason; the rest runs.
    sy.wait_for("manifest errors on the node", Duration::from_secs(10), |a| {
        a.get("/v1/node").is_some_and(|n| n["manifest_errors"].as_array().is_some_and(|e| e.len() == 2))
    });
    let node = sy.get("/v1/node").unwrap();
    let errors: Vec<String> =
        node["manifest_errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    assert!(errors.iter().any(|e| e.contains("broken.yaml") && e.contains("not YAML")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("noimage.yaml") && e.contains("image is missing")), "{errors:?}");
    assert_eq!(node["name"], "node-t");

    // With the pods settled, the agent idles: its own scans of the
    // manifests directory (which open every file) must not wake it again.
    let (cpu_before, since) = (sy.cpu_time().expect("the agent's CPU time"), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let busy = sy.cpu_time().expect("the agent's CPU time") - cpu_before;
    let share = busy.as_secs_f64() / since.elapsed().as_secs_f64();
    eprintln!("the idle agent used {:.1}% of a CPU", share * 100.0);
    assert!(share < 0.2, "the idle agent used {:.0}% of a CPU", share * 100.0);

    // A container that exits is restarted with back-off; its count grows.
    write(&manifests, "crash.yaml", CRASH);
    sy.wait_for("crasher to restart three times", Duration::from_secs(40), |a| {
        pod(a, "crash-node-t").is_some_and(|p| p["restarts"].as_i64().unwrap_or(0) >= 3)
    });
    sy.wait_for("CrashLoopBackOff", Duration::from_secs(10), |a| {
        pod(a, "crash-node-t").is_some_and(|p| p["phase"] == "CrashLoopBackOff")
    });

    // A failing liveness probe gets the container killed and restarted.
    write(&manifests, "wedged.yaml", LIVENESS);
    sy.wait_for("wedged to be restarted by its liveness probe", Duration::from_secs(40), |a| {
        pod(a, "wedged-node-t").is_some_and(|p| p["restarts"].as_i64().unwrap_or(0) >= 1)
    });
    std::fs::remove_file(manifests.join("wedged.yaml")).unwrap();

    // A failing readiness probe: running, not ready; ready once it passes.
    write(&manifests, "notready.yaml", NOT_READY);
    sy.wait_for("notready to run", Duration::from_secs(30), |a| {
        pod(a, "notready-node-t").is_some_and(|p| p["phase"] == "Running" && p["ready"] == "0/1")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pod(&sy, "notready-node-t").unwrap()["ready"], "0/1", "stays not ready while the probe fails");
    let idle = pod(&sy, "notready-node-t").unwrap()["containers"][0]["id"].as_str().unwrap().to_string();
    let idle = idle.trim_start_matches("containerd://");
    ctrd.ctr(&["tasks", "exec", "--exec-id", "mk", idle, "touch", "/tmp/ready"]).expect("touch /tmp/ready");
    sy.wait_for("notready to turn ready", Duration::from_secs(15), |a| running(a, "notready-node-t"));

    // Editing a manifest replaces its pod (a new UID).
    let old_uid = pod(&sy, "web-node-t").unwrap()["uid"].as_str().unwrap().to_string();
    write(&manifests, "web.yaml", &WEB.replace("value: hello", "value: bonjour"));
    sy.wait_for("the edited web pod", Duration::from_secs(30), |a| {
        pod(a, "web-node-t").is_some_and(|p| p["uid"] != old_uid.as_str() && p["ready"] == "1/1")
    });
    let ip = pod(&sy, "web-node-t").unwrap()["ip"].as_str().unwrap().to_string();
    let (_, body) = http_get(&format!("{ip}:8080"), "/").expect("HTTP to the new pod");
    assert_eq!(body.trim(), "bonjour from web-node-t");

    // Through all of that (crash loops, probes, kills, edits) the control
    // loop never ran a tick a second late: the largest lag it saw.
    let max_lag = max_control_loop_lag(&metrics).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("the control loop's largest lag: {:.1} ms", max_lag * 1000.0);
    assert!(max_lag < 1.0, "the control loop ran a tick {max_lag:.3} s late");

    // Deleting a manifest removes the pod and its sandbox.
    std::fs::remove_file(manifests.join("crash.yaml")).unwrap();
    sy.wait_for("crash and wedged to go", Duration::from_secs(30), |a| {
        pod(a, "crash-node-t").is_none() && pod(a, "wedged-node-t").is_none()
    });
    sy.wait_for("two sandboxes left", Duration::from_secs(15), |_| sandboxes(&ctrd) == 2);

    // containerd dies and comes back: the agent reconnects; nothing doubles.
    let sandboxes_before: Vec<Value> = pods(&sy).iter().map(|p| p["sandbox"].clone()).collect();
    ctrd.kill().expect("kill containerd");
    std::thread::sleep(Duration::from_secs(2));
    ctrd.restart().expect("restart containerd");
    sy.wait_for("pods after the containerd restart", Duration::from_secs(30), |a| {
        running(a, "web-node-t") && running(a, "notready-node-t")
    });
    assert_eq!(sandboxes(&ctrd), 2, "containerd restart made new sandboxes");

    // The agent restarts: it adopts its pods, duplicates nothing.
    sy.restart();
    sy.wait_for("pods after the agent restart", Duration::from_secs(30), |a| {
        running(a, "web-node-t") && running(a, "notready-node-t")
    });
    let sandboxes_after: Vec<Value> = pods(&sy).iter().map(|p| p["sandbox"].clone()).collect();
    assert_eq!(sandboxes_before, sandboxes_after, "the restarted agent made new sandboxes instead of adopting");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sandboxes(&ctrd), 2);
    assert_eq!(pods(&sy).len(), 2);

    // Pods outlive the agent; a manifest removed while it is down is cleaned
    // up when it comes back.
    sy.stop();
    std::fs::remove_file(manifests.join("notready.yaml")).unwrap();
    sy.restart();
    sy.wait_for("notready to be removed", Duration::from_secs(30), |a| {
        pod(a, "notready-node-t").is_none() && running(a, "web-node-t")
    });
    sy.wait_for("one sandbox left", Duration::from_secs(20), |_| sandboxes(&ctrd) == 1);

    sy.stop();
    ctrd.stop().expect("containerd cleanup");
}
