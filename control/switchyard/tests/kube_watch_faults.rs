//! Watch faults a real kube-apiserver cannot be made to produce on demand,
//! against the project's stand-in (testing/kube-standin): every open watch
//! ends at once, and a watch resumed from a compacted version answers 410
//! Gone. The appliance must resume its Service and EndpointSlice watches
//! without losing a change. Everything else about the API side is tested
//! against the real server (`kube_api.rs`).
//!
//! Needs root and DPDK (a `net_null` port), and kubectl.

use std::time::Duration;

use kube_standin::StandIn;
use testing::apiserver::kubectl;
use testing::appliance::{null_dataplane_section, Appliance, ADMIN_ONLY};

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.7.7
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
"#;

fn slice(name: &str, address: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: default\n\
         \x20 labels: {{kubernetes.io/service-name: web}}\naddressType: IPv4\n\
         ports: [{{name: http, port: 8080, protocol: TCP}}]\nendpoints:\n  - addresses: [\"{address}\"]\n"
    )
}

fn backends(a: &Appliance) -> Vec<String> {
    let services = a.get("/v1/services").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let Some(web) = services.iter().find(|s| s["vip"] == "10.96.7.7") else { return Vec::new() };
    web["backends"].as_array().into_iter().flatten().filter_map(|b| b["address"].as_str().map(String::from)).collect()
}

#[test]
fn watches_that_end_or_answer_410_lose_nothing() {
    let api = StandIn::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let apply = |yaml: &str| {
        kubectl(&kubeconfig, &["apply", "--validate=false", "-f", "-"], Some(yaml)).unwrap_or_else(|e| panic!("{e}"))
    };
    let config = format!(
        r#"
{dataplane}[cluster]
kubeconfig = "{kubeconfig}"
{ADMIN_ONLY}"#,
        dataplane = null_dataplane_section(),
        kubeconfig = kubeconfig.display(),
    );
    let sy = Appliance::start(dir.path(), &config);
    apply(SERVICE);
    apply(&slice("web-a", "10.244.1.200"));
    sy.wait_for("the Service in the tables", Duration::from_secs(20), |a| backends(a).len() == 1);

    // Every watch ends: resumed, the next change arrives.
    api.end_watches();
    apply(&slice("web-a", "10.244.1.201"));
    sy.wait_for("the change after the watches ended", Duration::from_secs(30), |a| {
        backends(a).iter().any(|b| b == "10.244.1.201:8080")
    });

    // The history is compacted and the watches end: resuming from the old
    // version answers 410 Gone, the appliance re-lists, and a change made
    // meanwhile arrives.
    api.compact();
    api.end_watches();
    apply(&slice("web-b", "10.244.1.202"));
    sy.wait_for("the change after 410 Gone", Duration::from_secs(30), |a| {
        backends(a).iter().any(|b| b == "10.244.1.202:8080")
    });
}
