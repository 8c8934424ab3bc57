//! The stand-in's wire behaviour, checked with raw HTTP as an API client sees it.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube_standin::StandIn;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn create_get_and_conflicts() {
    let s = StandIn::start();
    let a = s.addr();
    let r = post(a, PODS, &pod("p1", None, json!({"app": "web"}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let created = r.body;
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["status"]["phase"], "Pending");
    assert!(created["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(created["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    let again = post(a, PODS, &pod("p1", None, json!({}))).await;
    assert_eq!(again.code, 409);
    assert_eq!(again.body["kind"], "Status");
    assert_eq!(again.body["reason"], "AlreadyExists");
    assert_eq!(again.body["message"], "pods \"p1\" already exists");

    let nowhere = post(a, "/api/v1/namespaces/nope/pods", &pod("p1", None, json!({}))).await;
    assert_eq!((nowhere.code, nowhere.body["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(nowhere.body["message"], "namespaces \"nope\" not found");

    let generated =
        post(a, PODS, &json!({"metadata": {"generateName": "gen-"}, "spec": {"containers": [{"name": "c"}]}})).await;
    assert_eq!(generated.code, 201);
    let gname = generated.body["metadata"]["name"].as_str().unwrap();
    assert!(gname.starts_with("gen-") && gname.len() == 9, "{gname}");
    assert_eq!(generated.body["kind"], "Pod");

    // Update with the current version works and bumps the version; the stale one then conflicts.
    let mut update = created.clone();
    update["metadata"]["labels"]["tier"] = json!("front");
    let ok = put(a, &format!("{PODS}/p1"), &update).await;
    assert_eq!(ok.code, 200, "{}", ok.body);
    assert!(rv_of(&ok.body) > rv_of(&created));
    assert_eq!(ok.body["metadata"]["generation"], 1, "metadata-only changes keep the generation");
    let stale = put(a, &format!("{PODS}/p1"), &update).await;
    assert_eq!(stale.code, 409);
    assert_eq!(stale.body["reason"], "Conflict");
    assert!(stale.body["message"].as_str().unwrap().contains("the object has been modified"));
    // A merge patch carrying a stale resourceVersion is a precondition too.
    let stale_patch = patch(
        a,
        &format!("{PODS}/p1"),
        "application/merge-patch+json",
        &json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"], "labels": {"x": "y"}}}),
    )
    .await;
    assert_eq!(stale_patch.code, 409);

    // Name in body and URL must agree; unknown resources and methods get Status errors.
    let mut wrong = ok.body.clone();
    wrong["metadata"]["name"] = json!("other");
    assert_eq!(put(a, &format!("{PODS}/p1"), &wrong).await.code, 400);
    let missing = get(a, &format!("{PODS}/nope")).await;
    assert_eq!((missing.code, missing.body["message"].as_str()), (404, Some("pods \"nope\" not found")));
    let unknown = get(a, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!((unknown.code, unknown.body["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(get(a, "/apis/apps/v1/deployments").await.code, 404);
    let wrong_method = post(a, &format!("{PODS}/p1"), &json!({})).await;
    assert_eq!((wrong_method.code, wrong_method.body["reason"].as_str()), (405, Some("MethodNotAllowed")));
    let wrong_kind = post(a, "/api/v1/namespaces/default/services", &pod("x", None, json!({}))).await;
    assert_eq!(wrong_kind.code, 400);

    // Typed access sees the same state.
    let p: Pod = s.get("default", "p1").expect("typed get");
    assert_eq!(p.metadata.labels.unwrap()["tier"], "front");
    assert_eq!(s.list::<Namespace>().len(), 4);
    assert_eq!(s.request_count("create pods"), 4);
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let s = StandIn::start();
    let a = s.addr();
    post(a, PODS, &pod("p", Some("n1"), json!({}))).await;
    // The main resource ignores status changes...
    let r =
        patch(a, &format!("{PODS}/p"), "application/merge-patch+json", &json!({"status": {"phase": "Running"}})).await;
    assert_eq!((r.code, r.body["status"]["phase"].as_str()), (200, Some("Pending")));
    // ...and /status ignores everything else.
    let r = patch(
        a,
        &format!("{PODS}/p/status"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"a": "b"}}, "spec": {"nodeName": "n9"}, "status": {"phase": "Running", "podIP": "10.0.0.7"}}),
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["status"]["phase"], "Running");
    assert_eq!(r.body["status"]["podIP"], "10.0.0.7");
    assert_eq!(r.body["spec"]["nodeName"], "n1");
    assert!(r.body["metadata"]["labels"].get("a").is_none());
    // A status PUT conflicts like any update.
    let mut st = r.body.clone();
    st["status"]["phase"] = json!("Succeeded");
    assert_eq!(put(a, &format!("{PODS}/p/status"), &st).await.code, 200);
    assert_eq!(put(a, &format!("{PODS}/p/status"), &st).await.code, 409);
    // A no-op write does not produce a new version.
    let before = s.resource_version();
    let same = patch(
        a,
        &format!("{PODS}/p/status"),
        "application/merge-patch+json",
        &json!({"status": {"phase": "Succeeded"}}),
    )
    .await;
    assert_eq!(same.code, 200);
    assert_eq!(s.resource_version(), before);
    // Pod spec is immutable apart from a few fields.
    let r = patch(a, &format!("{PODS}/p"), "application/merge-patch+json", &json!({"spec": {"nodeName": "n2"}})).await;
    assert_eq!((r.code, r.body["reason"].as_str()), (422, Some("Invalid")));
    // Spec changes bump the generation; /status on a type without it is not found.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}});
    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    assert_eq!(post(a, leases, &lease).await.code, 201);
    let r = patch(a, &format!("{leases}/l"), "application/merge-patch+json", &json!({"spec": {"holderIdentity": "b"}}))
        .await;
    assert_eq!(r.body["metadata"]["generation"], 2);
    assert_eq!(get(a, &format!("{leases}/l/status")).await.code, 404);
    // Leases are created by an update (PUT) when missing.
    let mut l2 = lease.clone();
    l2["metadata"] = json!({"name": "l2", "resourceVersion": "12345"});
    let r = put(a, &format!("{leases}/l2"), &l2).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(put(a, &format!("{PODS}/nope"), &pod("nope", None, json!({}))).await.code, 404);
    // JSON patch and strategic merge patch.
    let r = patch(
        a,
        &format!("{leases}/l"),
        "application/json-patch+json",
        &json!([{"op": "replace", "path": "/spec/holderIdentity", "value": "c"}, {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}]),
    )
    .await;
    assert_eq!((r.code, r.body["spec"]["holderIdentity"].as_str()), (200, Some("c")));
    let r = patch(
        a,
        &format!("{leases}/l"),
        "application/json-patch+json",
        &json!([{"op": "test", "path": "/spec/holderIdentity", "value": "zzz"}]),
    )
    .await;
    assert_eq!(r.code, 422);
    let r = patch(a, &format!("{leases}/l"), "application/xml", &json!({})).await;
    assert_eq!(r.code, 415);
}

#[tokio::test]
async fn server_side_apply_creates_merges_and_records_the_manager() {
    let s = StandIn::start();
    let a = s.addr();
    let path = "/api/v1/namespaces/default/services/web?fieldManager=ctl&force=true";
    let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}},
                     "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}});
    let r = patch(a, path, "application/apply-patch+yaml", &cfg).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(r.body["spec"]["clusterIP"].as_str().unwrap().starts_with("10.96."));
    assert_eq!(r.body["metadata"]["managedFields"][0]["manager"], "ctl");
    let cfg2 = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"a": "1"}},
                      "spec": {"ports": [{"port": 81}], "selector": {"app": "web"}}});
    let r2 = patch(a, path, "application/apply-patch+yaml", &cfg2).await;
    assert_eq!(r2.code, 200);
    assert_eq!(r2.body["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(r2.body["spec"]["ports"][0]["port"], 81);
    assert_eq!(r2.body["spec"]["clusterIP"], r.body["spec"]["clusterIP"], "allocated values survive");
    let no_manager = patch(a, "/api/v1/namespaces/default/services/web", "application/apply-patch+yaml", &cfg2).await;
    assert_eq!(no_manager.code, 400);
}

#[tokio::test]
async fn watch_streams_changes_in_order_and_resumes_without_loss() {
    let s = StandIn::start();
    let a = s.addr();
    let list = get(a, PODS).await;
    assert_eq!(list.body["kind"], "PodList");
    let start = rv_of(&list.body);
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={start}&timeoutSeconds=30")).await;
    assert_eq!(w.code, 200);
    assert!(w.chunked, "watch responses are chunked");
    post(a, PODS, &pod("a", None, json!({}))).await;
    patch(a, &format!("{PODS}/a"), "application/merge-patch+json", &json!({"metadata": {"labels": {"x": "1"}}})).await;
    delete(a, &format!("{PODS}/a"), None).await;
    let kinds: Vec<String> = [w.next().await, w.next().await, w.next().await]
        .into_iter()
        .map(|e| e.unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);

    // Another client's watch is cut while changes go on; resuming from the last version seen
    // delivers exactly the missed changes, in order.
    let mut seen = Vec::new();
    let mut last = start;
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={start}")).await;
    for _ in 0..3 {
        let e = w.next().await.unwrap();
        last = rv_of(&e["object"]);
        seen.push(last);
    }
    for i in 0..5 {
        post(a, PODS, &pod(&format!("b{i}"), None, json!({}))).await;
        if i == 1 {
            s.end_watches();
        }
    }
    // The cut stream ends; anything it delivered before ending counts as seen.
    while let Some(e) = w.next().await {
        last = rv_of(&e["object"]);
        seen.push(last);
    }
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={last}&allowWatchBookmarks=true")).await;
    while seen.len() < 8 {
        let e = w.next_change().await.unwrap();
        seen.push(rv_of(&e["object"]));
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted, seen, "no duplicates");
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "in order: {seen:?}");
    assert_eq!(*seen.last().unwrap(), s.resource_version());

    // Server goes away and comes back on the same port with the same state.
    s.stop();
    assert!(tokio::net::TcpStream::connect(a).await.is_err(), "connections are refused while stopped");
    assert!(w.next().await.is_none(), "open watches end when the server stops");
    let gone_rv = s.resource_version();
    s.create(&serde_json::from_value::<Pod>(pod("while-down", None, json!({}))).unwrap()).unwrap();
    s.resume().unwrap();
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={gone_rv}")).await;
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("while-down")));
}

#[tokio::test]
async fn initial_state_selectors_and_synthetic_events() {
    let s = StandIn::start();
    let a = s.addr();
    post(a, PODS, &pod("web1", Some("n1"), json!({"app": "web"}))).await;
    post(a, PODS, &pod("db1", Some("n1"), json!({"app": "db"}))).await;
    post(a, PODS, &pod("web2", Some("n2"), json!({"app": "web"}))).await;
    // resourceVersion "0" (or unset) starts with the current state as ADDED events.
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion=0&labelSelector=app%3Dweb")).await;
    let mut names = vec![];
    for _ in 0..2 {
        let e = w.next().await.unwrap();
        assert_eq!(e["type"], "ADDED");
        names.push(e["object"]["metadata"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(names, ["web1", "web2"]);
    // Leaving the selection is a DELETED for this watcher, entering it an ADDED.
    patch(a, &format!("{PODS}/web1"), "application/merge-patch+json", &json!({"metadata": {"labels": {"app": "x"}}}))
        .await;
    patch(a, &format!("{PODS}/db1"), "application/merge-patch+json", &json!({"metadata": {"labels": {"app": "web"}}}))
        .await;
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("DELETED"), Some("web1")));
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("db1")));

    // Field selector on spec.nodeName, for lists and watches across all namespaces.
    let r = get(a, "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").await;
    let names: Vec<&str> =
        r.body["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db1", "web1"]);
    assert!(r.body["items"][0].get("kind").is_none(), "list items carry no kind, like the real server");
    let r = get(a, "/api/v1/pods?fieldSelector=spec.nodeName%21%3Dn1,metadata.namespace%3Ddefault").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = get(a, "/api/v1/pods?labelSelector=app+in+%28web%2Cx%29%2C%21missing").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 3);
    let bad = get(a, "/api/v1/pods?fieldSelector=spec.bogus%3D1").await;
    assert_eq!((bad.code, bad.body["message"].as_str()), (400, Some("field label not supported: spec.bogus")));
    let mut w = watch(a, "/api/v1/watch/pods?fieldSelector=spec.nodeName%3Dn2").await;
    let e = w.next().await.unwrap();
    assert_eq!(e["object"]["metadata"]["name"], "web2");
    // Watch of a single object through the legacy /watch/ path.
    let mut w =
        watch(a, &format!("/api/v1/watch/namespaces/default/pods/db1?resourceVersion={}", s.resource_version())).await;
    patch(a, &format!("{PODS}/web2"), "application/merge-patch+json", &json!({"metadata": {"labels": {"z": "1"}}}))
        .await;
    patch(a, &format!("{PODS}/db1"), "application/merge-patch+json", &json!({"metadata": {"labels": {"z": "1"}}}))
        .await;
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("MODIFIED"), Some("db1")));

    // Streaming list: initial events end with an annotated bookmark.
    let mut w = watch(
        a,
        &format!("{PODS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(w.next().await.unwrap()["type"], "ADDED");
    }
    let b = w.next().await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(rv_of(&b["object"]), s.resource_version());
}

#[tokio::test]
async fn compacted_history_answers_410() {
    let s = StandIn::start();
    let a = s.addr();
    let old = s.resource_version();
    for i in 0..3 {
        post(a, PODS, &pod(&format!("p{i}"), None, json!({}))).await;
    }
    // Before compaction the old version is fine for watches and exact lists.
    let r = get(a, &format!("{PODS}?resourceVersion={old}&limit=10")).await;
    assert_eq!((r.code, r.body["items"].as_array().unwrap().len()), (200, 0), "snapshot as of {old}");
    let page = get(a, &format!("{PODS}?limit=1")).await;
    let token = page.body["metadata"]["continue"].as_str().unwrap().to_string();
    post(a, PODS, &pod("p3", None, json!({}))).await;
    s.compact();
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={old}")).await;
    assert_eq!(w.code, 200, "the real server reports expiry inside the stream");
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!((e["object"]["code"].as_i64(), e["object"]["reason"].as_str()), (Some(410), Some("Expired")));
    assert_eq!(e["object"]["kind"], "Status");
    assert!(w.next().await.is_none(), "the stream ends after the error");
    let r = get(a, &format!("{PODS}?resourceVersion={old}&limit=10")).await;
    assert_eq!((r.code, r.body["reason"].as_str()), (410, Some("Expired")));
    let r = get(a, &format!("{PODS}?limit=1&continue={token}")).await;
    assert_eq!(r.code, 410);
    // Not-older-than reads and watches from the current version still work.
    assert_eq!(get(a, &format!("{PODS}?resourceVersion={old}")).await.code, 200);
    let now = s.resource_version();
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={now}")).await;
    post(a, PODS, &pod("after", None, json!({}))).await;
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
    // A bounded history expires old versions by itself.
    s.set_history_limit(2);
    let before = s.resource_version();
    for i in 0..3 {
        post(a, PODS, &pod(&format!("q{i}"), None, json!({}))).await;
    }
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={before}")).await;
    assert_eq!(w.next().await.unwrap()["object"]["code"], 410);
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={}", before + 1)).await;
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
    // A version the server has not reached yet is a timeout for lists.
    let r = get(a, &format!("{PODS}?resourceVersion={}", s.resource_version() + 100)).await;
    assert_eq!(r.code, 504);
}

#[tokio::test]
async fn pagination_is_a_consistent_snapshot() {
    let s = StandIn::start();
    let a = s.addr();
    for i in 0..10 {
        post(a, PODS, &pod(&format!("p{i:02}"), None, json!({"i": i.to_string()}))).await;
    }
    // An object in another namespace is not part of this namespace's list or its counts.
    post(a, "/api/v1/namespaces/kube-system/pods", &pod("sys", None, json!({}))).await;
    let first = get(a, &format!("{PODS}?limit=4")).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 4);
    assert_eq!(first.body["metadata"]["remainingItemCount"], 6);
    let list_rv = rv_of(&first.body);
    let mut names: Vec<String> = vec![];
    let mut collect = |b: &Value| {
        for p in b["items"].as_array().unwrap() {
            names.push(p["metadata"]["name"].as_str().unwrap().to_string());
        }
    };
    collect(&first.body);
    // Changes made while paging do not show up in later pages.
    delete(a, &format!("{PODS}/p08"), None).await;
    post(a, PODS, &pod("p99", None, json!({}))).await;
    patch(
        a,
        &format!("{PODS}/p09"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"changed": "yes"}}}),
    )
    .await;
    let mut token = first.body["metadata"]["continue"].as_str().unwrap().to_string();
    let mut last_page = Value::Null;
    while !token.is_empty() {
        let page = get(a, &format!("{PODS}?limit=4&continue={token}")).await;
        assert_eq!(page.code, 200, "{}", page.body);
        assert_eq!(rv_of(&page.body), list_rv, "every page is served at the first page's version");
        collect(&page.body);
        token = page.body["metadata"]["continue"].as_str().unwrap_or("").to_string();
        last_page = page.body;
    }
    let expected: Vec<String> = (0..10).map(|i| format!("p{i:02}")).collect();
    assert_eq!(names, expected);
    let p09 = last_page["items"].as_array().unwrap().iter().find(|p| p["metadata"]["name"] == "p09").unwrap();
    assert!(p09["metadata"]["labels"].get("changed").is_none(), "the old state of p09");
    // A continue token with a resourceVersion is refused; garbage tokens are bad requests.
    assert_eq!(
        get(
            a,
            &format!(
                "{PODS}?limit=4&continue={}&resourceVersion=1",
                first.body["metadata"]["continue"].as_str().unwrap()
            )
        )
        .await
        .code,
        400
    );
    assert_eq!(get(a, &format!("{PODS}?limit=4&continue=bogus")).await.code, 400);
    // Pagination with a selector counts matching items.
    let sel = get(a, &format!("{PODS}?limit=2&labelSelector=i")).await;
    assert_eq!(sel.body["items"].as_array().unwrap().len(), 2);
    assert!(sel.body["metadata"].get("remainingItemCount").is_none());
    assert!(sel.body["metadata"]["continue"].is_string());
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let s = StandIn::start();
    s.set_bookmark_interval(Duration::from_millis(200));
    let a = s.addr();
    let rv = s.resource_version();
    let mut w =
        watch(a, &format!("{PODS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1")).await;
    post(a, PODS, &pod("p", None, json!({}))).await;
    let added = w.next().await.unwrap();
    assert_eq!(added["type"], "ADDED");
    // Bookmarks carry the latest version, for this watch's kind, with nothing else in metadata.
    let b = w.next().await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(b["object"]["kind"], "Pod");
    assert_eq!(b["object"]["apiVersion"], "v1");
    assert_eq!(rv_of(&b["object"]), s.resource_version());
    // Changes to other types still move bookmarks forward.
    post(a, "/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}))
        .await;
    let started = std::time::Instant::now();
    let rest = w.rest(3).await;
    assert!(started.elapsed() < Duration::from_millis(1500), "timeoutSeconds ends the watch");
    assert!(rest.iter().all(|e| e["type"] == "BOOKMARK"));
    assert_eq!(rv_of(&rest.last().unwrap()["object"]), s.resource_version(), "a final bookmark at the latest version");
    // Without allowWatchBookmarks there are none.
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={}&timeoutSeconds=1", s.resource_version())).await;
    assert!(w.rest(3).await.is_empty());
}

#[tokio::test]
async fn graceful_pod_deletion() {
    let s = StandIn::start();
    let a = s.addr();
    post(a, PODS, &pod("bound", Some("n1"), json!({}))).await;
    post(a, PODS, &pod("unbound", None, json!({}))).await;
    let mut w = watch(a, &format!("{PODS}?watch=true&resourceVersion={}", s.resource_version())).await;
    // An unbound pod goes at once.
    let r = delete(a, &format!("{PODS}/unbound"), None).await;
    assert_eq!(r.code, 200);
    assert_eq!(w.next().await.unwrap()["type"], "DELETED");
    // A bound pod gets a deletionTimestamp and stays until deleted again with grace 0.
    let r = delete(
        a,
        &format!("{PODS}/bound"),
        Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 20})),
    )
    .await;
    assert_eq!(r.code, 200);
    assert!(r.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(r.body["metadata"]["deletionGracePeriodSeconds"], 20);
    assert_eq!(r.body["metadata"]["generation"], 2);
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert!(e["object"]["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(get(a, &format!("{PODS}/bound")).await.code, 200);
    // Deleting again with a longer grace changes nothing; the kubelet's status updates still work.
    let before = s.resource_version();
    delete(a, &format!("{PODS}/bound"), None).await;
    assert_eq!(s.resource_version(), before);
    let r = patch(
        a,
        &format!("{PODS}/bound/status"),
        "application/merge-patch+json",
        &json!({"status": {"phase": "Succeeded"}}),
    )
    .await;
    assert_eq!(r.code, 200);
    assert_eq!(w.next().await.unwrap()["type"], "MODIFIED");
    // Precondition mismatch is a conflict.
    let r = delete(a, &format!("{PODS}/bound"), Some(&json!({"preconditions": {"uid": "nope"}}))).await;
    assert_eq!(r.code, 409);
    let r = delete(a, &format!("{PODS}/bound?gracePeriodSeconds=0"), None).await;
    assert_eq!(r.code, 200);
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(rv_of(&e["object"]), s.resource_version(), "the DELETED object carries the deletion's version");
    assert_eq!(get(a, &format!("{PODS}/bound")).await.code, 404);
    assert!(s.get::<Pod>("default", "bound").is_none());

    // Finalizers hold any object until they are removed.
    let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    post(a, leases, &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l", "finalizers": ["x/y"]}})).await;
    let r = delete(a, &format!("{leases}/l"), None).await;
    assert!(r.body["metadata"]["deletionTimestamp"].is_string());
    let r =
        patch(a, &format!("{leases}/l"), "application/merge-patch+json", &json!({"metadata": {"finalizers": null}}))
            .await;
    assert_eq!(r.code, 200);
    assert_eq!(get(a, &format!("{leases}/l")).await.code, 404);
    // Deleting a namespace removes what is in it; the system namespaces cannot be deleted.
    assert_eq!(delete(a, "/api/v1/namespaces/default", None).await.code, 403);
}

#[test]
fn standin_is_shareable_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<StandIn>();
}

#[tokio::test]
async fn discovery_documents() {
    let s = StandIn::start();
    let a = s.addr();
    let v = get(a, "/version").await;
    assert_eq!(v.body["major"], "1");
    let api = get(a, "/api").await;
    assert_eq!(api.body["versions"], json!(["v1"]));
    let core = get(a, "/api/v1").await;
    let names: Vec<&str> =
        core.body["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for n in ["namespaces", "nodes", "nodes/status", "pods", "pods/status", "services", "services/status", "events"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let groups = get(a, "/apis").await;
    let gs: Vec<&str> = groups.body["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(gs, ["coordination.k8s.io", "discovery.k8s.io", "events.k8s.io"]);
    let slices = get(a, "/apis/discovery.k8s.io/v1").await;
    assert_eq!(slices.body["resources"][0]["kind"], "EndpointSlice");
    assert_eq!(get(a, "/apis/apps/v1").await.code, 404);
    assert_eq!(post(a, "/api/v1", &json!({})).await.code, 405);
}

/// The request sequence of a kube-rs watcher: paginated list, watch from the list's version with
/// bookmarks, and a fresh list when the watch reports 410.
#[tokio::test]
async fn reflector_style_list_watch_relist() {
    let s = StandIn::start();
    let a = s.addr();
    for i in 0..5 {
        post(a, PODS, &pod(&format!("p{i}"), Some("n1"), json!({}))).await;
    }
    let list_all = |a| async move {
        let mut names = vec![];
        let mut q = "limit=2&resourceVersion=0&resourceVersionMatch=NotOlderThan".to_string();
        loop {
            let page = get(a, &format!("/api/v1/pods?{q}")).await;
            assert_eq!(page.code, 200, "{}", page.body);
            for p in page.body["items"].as_array().unwrap() {
                names.push(p["metadata"]["name"].as_str().unwrap().to_string());
            }
            match page.body["metadata"]["continue"].as_str() {
                Some(c) => q = format!("limit=2&continue={c}"),
                None => return (names, rv_of(&page.body)),
            }
        }
    };
    let (names, rv) = list_all(a).await;
    assert_eq!(names.len(), 5);
    let mut w =
        watch(a, &format!("/api/v1/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=290"))
            .await;
    delete(a, &format!("{PODS}/p0?gracePeriodSeconds=0"), None).await;
    assert_eq!(w.next_change().await.unwrap()["type"], "DELETED");
    // The watch drops; meanwhile history is compacted; the re-watch is told 410 and the client re-lists.
    drop(w);
    post(a, PODS, &pod("late", None, json!({}))).await;
    s.compact();
    let mut w = watch(a, &format!("/api/v1/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true")).await;
    assert_eq!(w.next().await.unwrap()["object"]["code"], 410);
    let (names, rv2) = list_all(a).await;
    assert_eq!(names, ["late", "p1", "p2", "p3", "p4"]);
    assert_eq!(rv2, s.resource_version());
    // ListOptions rules of the real server.
    let r = get(a, "/api/v1/pods?resourceVersionMatch=NotOlderThan").await;
    assert_eq!(r.code, 422);
    let r = get(a, "/api/v1/pods?resourceVersion=0&resourceVersionMatch=Exact").await;
    assert_eq!(r.code, 422);
    let r = get(a, &format!("/api/v1/pods?resourceVersion={rv2}&resourceVersionMatch=Exact")).await;
    assert_eq!(r.code, 200);
}
