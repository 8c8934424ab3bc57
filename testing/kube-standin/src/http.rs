//! Request routing: URL layout of the Kubernetes API, verbs, query parameters and bodies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::discovery::{self, info};
use crate::patch;
use crate::selectors::{FieldSelector, Filter, LabelSelector};
use crate::shared::Shared;
use crate::status::{self, ApiError, ApiResult};
use crate::store::{self, DeleteOpts, ListOpts, Sub};
use crate::watch::{self, WatchParams};

pub type RespBody = BoxBody<Bytes, Infallible>;

const MAX_BODY: usize = 16 << 20;

fn json_response(code: u16, v: &Value) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: &ApiError) -> Response<RespBody> {
    json_response(e.code, &e.to_status())
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters; the first occurrence of a name wins.
fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k)).or_insert_with(|| percent_decode(v));
    }
    out
}

struct Req {
    method: Method,
    query: HashMap<String, String>,
    content_type: String,
    body: Bytes,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }

    /// The body of a create or update: JSON, or YAML.
    fn object(&self) -> ApiResult<Value> {
        if self.content_type.contains("protobuf") || self.content_type.contains("cbor") {
            return Err(ApiError::unsupported_media_type(&self.content_type));
        }
        let v: Value = match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(json_err) => serde_yaml::from_slice(&self.body).map_err(|_| {
                ApiError::bad_request(format!("the body of the request could not be decoded: {json_err}"))
            })?,
        };
        if !v.is_object() {
            return Err(ApiError::bad_request("the body of the request must be an object"));
        }
        Ok(v)
    }
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<RespBody> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(format!("reading the request body: {e}"))),
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let r = Req { method: parts.method.clone(), query: parse_query(parts.uri.query()), content_type, body };
    let resp = match route(&shared, &path, &r) {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    };
    tracing::debug!(method = %parts.method, uri = %parts.uri, status = resp.status().as_u16(), "request");
    resp
}

fn get_only(r: &Req, v: Option<Value>) -> ApiResult<Response<RespBody>> {
    if r.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    v.map(|v| json_response(200, &v)).ok_or_else(ApiError::no_such_resource)
}

fn route(shared: &Arc<Shared>, path: &str, r: &Req) -> ApiResult<Response<RespBody>> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => get_only(r, Some(discovery::version())),
        ["healthz" | "livez" | "readyz"] => {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")).boxed());
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            Ok(resp)
        }
        ["api"] => {
            let addr = shared.addr.lock().expect("addr lock").map(|a| a.to_string()).unwrap_or_default();
            get_only(r, Some(discovery::api_versions(&addr)))
        }
        ["apis"] => get_only(r, Some(discovery::api_group_list())),
        ["api", "v1"] => get_only(r, discovery::api_resource_list("", "v1")),
        ["apis", group] => get_only(r, discovery::api_group(group)),
        ["apis", group, version] => get_only(r, discovery::api_resource_list(group, version)),
        ["api", "v1", rest @ ..] => resource(shared, "", "v1", rest, r),
        ["apis", group, version, rest @ ..] => resource(shared, group, version, rest, r),
        _ => Err(ApiError::no_such_resource()),
    }
}

/// Where in the URL layout a request points.
#[derive(Clone, Copy)]
enum Target<'a> {
    Collection,
    Object(&'a str),
    Status(&'a str),
}

fn resource(shared: &Arc<Shared>, group: &str, version: &str, rest: &[&str], r: &Req) -> ApiResult<Response<RespBody>> {
    let (watch_path, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let namespaced_here = match rest {
        ["namespaces", ns, plural, tail @ ..] => {
            discovery::lookup(group, version, plural).filter(|i| info(*i).namespaced).map(|i| (i, Some(*ns), tail))
        }
        _ => None,
    };
    let (res, ns, tail) = match namespaced_here {
        Some(x) => x,
        None => {
            let Some((plural, tail)) = rest.split_first() else { return Err(ApiError::no_such_resource()) };
            let i = discovery::lookup(group, version, plural).ok_or_else(ApiError::no_such_resource)?;
            if info(i).namespaced && !tail.is_empty() {
                return Err(ApiError::no_such_resource());
            }
            (i, None, tail)
        }
    };
    let ri = info(res);
    let target = match tail {
        [] => Target::Collection,
        [name] => Target::Object(name),
        [name, "status"] if ri.status_subresource && !watch_path => Target::Status(name),
        _ => return Err(ApiError::no_such_resource()),
    };
    let qualified = if ri.group.is_empty() { ri.plural.to_string() } else { format!("{}.{}", ri.plural, ri.group) };
    if r.q("dryRun").is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::bad_request("dryRun is not supported by kube-standin"));
    }
    // Namespace used for stored keys: "" for cluster-scoped types and all-namespace requests.
    let ns_key = ns.unwrap_or("");
    let watching = watch_path || r.flag("watch");
    match (target, &r.method) {
        (Target::Collection, &Method::GET) | (Target::Object(_), &Method::GET) if watching => {
            let mut fields = r.q("fieldSelector").unwrap_or("").to_string();
            if let Target::Object(name) = target {
                if !fields.is_empty() {
                    fields.push(',');
                }
                fields.push_str(&format!("metadata.name={name}"));
            }
            let filter = filter(ri, ns, r.q("labelSelector").unwrap_or(""), &fields)?;
            let timeout = match r.q("timeoutSeconds") {
                Some(t) => Duration::from_secs(
                    t.parse().map_err(|_| ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}")))?,
                ),
                None => Duration::from_secs(1800),
            };
            let params = WatchParams {
                res,
                filter,
                resource_version: r.q("resourceVersion").unwrap_or("").to_string(),
                bookmarks: r.flag("allowWatchBookmarks"),
                timeout,
                send_initial_events: r.q("sendInitialEvents").map(|v| v == "true"),
            };
            shared.count(format!("watch {qualified}"));
            let body = watch::start(shared.clone(), params)?;
            let mut resp = Response::new(body.boxed());
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache, private"));
            Ok(resp)
        }
        _ if watching => Err(ApiError::method_not_allowed()),
        (Target::Collection, &Method::GET) => {
            shared.count(format!("list {qualified}"));
            let filter = filter(ri, ns, r.q("labelSelector").unwrap_or(""), r.q("fieldSelector").unwrap_or(""))?;
            let opts = ListOpts {
                resource_version: r.q("resourceVersion").map(str::to_string),
                resource_version_match: r.q("resourceVersionMatch").filter(|s| !s.is_empty()).map(str::to_string),
                limit: match r.q("limit") {
                    Some(l) if !l.is_empty() => {
                        Some(l.parse().map_err(|_| ApiError::bad_request(format!("limit: invalid value {l:?}")))?)
                    }
                    _ => None,
                },
                continue_token: r.q("continue").map(str::to_string),
            };
            let page = shared.store.lock().expect("store lock").list(res, &filter, &opts)?;
            let mut meta = json!({ "resourceVersion": page.rv.to_string() });
            if let Some(c) = page.continue_token {
                meta["continue"] = json!(c);
            }
            if let Some(n) = page.remaining {
                meta["remainingItemCount"] = json!(n);
            }
            // Items of a typed list carry no kind/apiVersion on the wire, like the real server's.
            let items: Vec<Value> = page
                .items
                .into_iter()
                .map(|mut o| {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    o
                })
                .collect();
            let list =
                json!({ "kind": ri.list_kind(), "apiVersion": ri.api_version(), "metadata": meta, "items": items });
            Ok(json_response(200, &list))
        }
        (Target::Collection, &Method::POST) if ns.is_some() || !ri.namespaced => {
            shared.count(format!("create {qualified}"));
            let obj = r.object()?;
            let created = shared.store.lock().expect("store lock").create(res, ns_key, obj)?;
            Ok(json_response(201, &created))
        }
        (Target::Object(name), &Method::GET) | (Target::Status(name), &Method::GET) => {
            shared.count(format!("get {qualified}"));
            Ok(json_response(200, &shared.store.lock().expect("store lock").get(res, ns_key, name)?))
        }
        (Target::Object(name), &Method::PUT) | (Target::Status(name), &Method::PUT) => {
            let sub = if matches!(target, Target::Status(_)) { Sub::Status } else { Sub::Main };
            shared.count(format!("update {qualified}{}", if sub == Sub::Status { "/status" } else { "" }));
            let obj = r.object()?;
            let mut store = shared.store.lock().expect("store lock");
            let (obj, created) = if sub == Sub::Main && ri.create_on_update {
                store.write(res, ns_key, name, sub, |_| Ok(obj))?
            } else {
                store.write(res, ns_key, name, sub, |cur| match cur {
                    Some(_) => Ok(obj),
                    None => Err(ApiError::not_found(ri.group, ri.plural, name)),
                })?
            };
            Ok(json_response(if created { 201 } else { 200 }, &obj))
        }
        (Target::Object(name), &Method::PATCH) | (Target::Status(name), &Method::PATCH) => {
            let sub = if matches!(target, Target::Status(_)) { Sub::Status } else { Sub::Main };
            shared.count(format!("patch {qualified}{}", if sub == Sub::Status { "/status" } else { "" }));
            let (obj, created) = patch_object(shared, res, ns_key, name, sub, r)?;
            Ok(json_response(if created { 201 } else { 200 }, &obj))
        }
        (Target::Object(name), &Method::DELETE) => {
            shared.count(format!("delete {qualified}"));
            let opts = delete_options(r)?;
            let (obj, gone) = shared.store.lock().expect("store lock").delete(res, ns_key, name, &opts)?;
            // Pods (and namespaces) answer with the object; other types with a Success status once gone.
            if gone && !(ri.is("", "pods") || ri.is("", "namespaces")) {
                Ok(json_response(200, &status::success(ri.group, ri.plural, name, store::meta_str(&obj, "uid"))))
            } else {
                Ok(json_response(200, &obj))
            }
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn filter(ri: &discovery::ResourceInfo, ns: Option<&str>, labels: &str, fields: &str) -> ApiResult<Filter> {
    Ok(Filter {
        namespace: ns.filter(|_| ri.namespaced).map(str::to_string),
        labels: LabelSelector::parse(labels).map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(fields, ri.field_labels).map_err(ApiError::bad_request)?,
    })
}

fn delete_options(r: &Req) -> ApiResult<DeleteOpts> {
    let mut opts = DeleteOpts::default();
    if !r.body.is_empty() {
        let body = r.object()?;
        opts.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
        opts.precondition_uid = body.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        opts.precondition_rv =
            body.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
        if body.get("dryRun").and_then(Value::as_array).is_some_and(|d| !d.is_empty()) {
            return Err(ApiError::bad_request("dryRun is not supported by kube-standin"));
        }
    }
    if let Some(g) = r.q("gracePeriodSeconds") {
        opts.grace_period_seconds =
            Some(g.parse().map_err(|_| ApiError::bad_request(format!("gracePeriodSeconds: invalid value {g:?}")))?);
    }
    Ok(opts)
}

fn patch_object(shared: &Arc<Shared>, res: usize, ns: &str, name: &str, sub: Sub, r: &Req) -> ApiResult<(Value, bool)> {
    let ri = info(res);
    let missing = || ApiError::not_found(ri.group, ri.plural, name);
    let parse_json = || -> ApiResult<Value> {
        serde_json::from_slice(&r.body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
    };
    let mut store = shared.store.lock().expect("store lock");
    match r.content_type.as_str() {
        "application/merge-patch+json" => {
            let p = parse_json()?;
            store.write(res, ns, name, sub, |cur| {
                let mut o = cur.cloned().ok_or_else(missing)?;
                patch::merge_patch(&mut o, &p);
                Ok(o)
            })
        }
        "application/strategic-merge-patch+json" => {
            let p = parse_json()?;
            store.write(res, ns, name, sub, |cur| {
                let mut o = cur.cloned().ok_or_else(missing)?;
                patch::strategic_merge_patch(&mut o, &p);
                Ok(o)
            })
        }
        "application/json-patch+json" => {
            let p = parse_json()?;
            store.write(res, ns, name, sub, |cur| {
                let mut o = cur.cloned().ok_or_else(missing)?;
                patch::json_patch(&mut o, &p).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: {e}"),
                    )
                })?;
                Ok(o)
            })
        }
        "application/apply-patch+yaml" => {
            let manager = r.q("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
                ApiError::bad_request("PATCH requests with apply content type must include fieldManager")
            })?;
            let applied: Value = serde_yaml::from_slice(&r.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !applied.is_object() {
                return Err(ApiError::bad_request("the applied configuration must be an object"));
            }
            for f in ["apiVersion", "kind"] {
                if applied.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(ApiError::bad_request(format!(
                        "invalid object: {f} must be set in an applied configuration"
                    )));
                }
            }
            let subresource = if sub == Sub::Status { "status" } else { "" };
            let now = store::now_rfc3339();
            store.write(res, ns, name, sub, |cur| {
                Ok(patch::server_side_apply(cur, &applied, manager, &now, subresource))
            })
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}
