//! What a pod's configMap, secret, downwardAPI and projected volumes hold,
//! and what its containers' `env` and `envFrom` resolve to, as the kubelet
//! computes them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, KeyToPath, ObjectFieldSelector, Volume};
use k8s_openapi::api::core::v1::{ResourceFieldSelector, ServiceAccountTokenProjection};

use super::atomic::{check_path, VolumeFile, VolumeFiles};
use super::objects::{ClusterObjects, ObjectData, Token, TokenRequest};
use crate::pod::DesiredPod;

/// The API's default `defaultMode`.
const DEFAULT_MODE: i32 = 0o644;
/// A projected token's default lifetime, and the shortest the API allows.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;
const MIN_TOKEN_SECONDS: i64 = 600;

/// A volume's files now, and when they should be computed again at the
/// latest (a token at 80% of its lifetime).
#[derive(Debug)]
pub struct Projection {
    pub files: VolumeFiles,
    pub refresh_by: Option<SystemTime>,
}

/// Tokens already asked for, reused until they are due for renewal (at 80%
/// of their lifetime): the volumes are read again every few seconds, and a
/// token is asked for only when it must be.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: HashMap<TokenRequest, (Token, SystemTime)>,
}

/// The files of `volume` for `pod`, or why it cannot be mounted now.
pub async fn project(
    volume: &Volume,
    pod: &DesiredPod,
    objects: &dyn ClusterObjects,
    tokens: &mut TokenCache,
) -> Result<Projection, String> {
    let mut out = Projection { files: VolumeFiles::new(), refresh_by: None };
    if let Some(cm) = &volume.config_map {
        let data = fetch(objects, Kind::ConfigMap, &pod.namespace, &cm.name, cm.optional).await?;
        add_keys(&mut out.files, "configmap", &cm.name, &data, cm.items.as_deref(), cm.default_mode, cm.optional)?;
    }
    if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = fetch(objects, Kind::Secret, &pod.namespace, &name, s.optional).await?;
        add_keys(&mut out.files, "secret", &name, &data, s.items.as_deref(), s.default_mode, s.optional)?;
    }
    if let Some(d) = &volume.downward_api {
        add_downward(&mut out.files, pod, d.items.as_deref().unwrap_or_default(), d.default_mode)?;
    }
    if let Some(p) = &volume.projected {
        for source in p.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let data = fetch(objects, Kind::ConfigMap, &pod.namespace, &cm.name, cm.optional).await?;
                add_keys(
                    &mut out.files,
                    "configmap",
                    &cm.name,
                    &data,
                    cm.items.as_deref(),
                    p.default_mode,
                    cm.optional,
                )?;
            }
            if let Some(s) = &source.secret {
                let data = fetch(objects, Kind::Secret, &pod.namespace, &s.name, s.optional).await?;
                add_keys(&mut out.files, "secret", &s.name, &data, s.items.as_deref(), p.default_mode, s.optional)?;
            }
            if let Some(d) = &source.downward_api {
                add_downward(&mut out.files, pod, d.items.as_deref().unwrap_or_default(), p.default_mode)?;
            }
            if let Some(t) = &source.service_account_token {
                let refresh_by = add_token(&mut out.files, pod, t, p.default_mode, objects, tokens).await?;
                out.refresh_by = Some(out.refresh_by.map_or(refresh_by, |r| r.min(refresh_by)));
            }
        }
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Kind {
    ConfigMap,
    Secret,
}

/// The object's data; an absent optional object is empty.
async fn fetch(
    objects: &dyn ClusterObjects,
    kind: Kind,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<ObjectData, String> {
    let (what, found) = match kind {
        Kind::ConfigMap => ("configmap", objects.config_map(namespace, name).await),
        Kind::Secret => ("secret", objects.secret(namespace, name).await),
    };
    match found.map_err(|e| format!("{what} {name:?}: {e}"))? {
        Some(data) => Ok(data),
        None if optional.unwrap_or(false) => Ok(ObjectData::new()),
        None => Err(format!("{what} {name:?} not found")),
    }
}

fn mode(item: Option<i32>, default: Option<i32>) -> u32 {
    (item.or(default).unwrap_or(DEFAULT_MODE) & 0o7777) as u32
}

fn add(files: &mut VolumeFiles, path: &str, content: Vec<u8>, mode: u32) -> Result<(), String> {
    check_path(path)?;
    if files.insert(path.to_string(), VolumeFile { content, mode }).is_some() {
        return Err(format!("path {path:?} is projected twice"));
    }
    Ok(())
}

/// All keys, or the listed `items` (each key must exist unless optional).
fn add_keys(
    files: &mut VolumeFiles,
    what: &str,
    name: &str,
    data: &ObjectData,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: Option<bool>,
) -> Result<(), String> {
    match items {
        None => {
            for (key, value) in data {
                add(files, key, value.clone(), mode(None, default_mode))?;
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(value) => add(files, &item.path, value.clone(), mode(item.mode, default_mode))?,
                    None if optional.unwrap_or(false) => {}
                    None => return Err(format!("{what} {name:?} has no key {:?}", item.key)),
                }
            }
        }
    }
    Ok(())
}

fn add_downward(
    files: &mut VolumeFiles,
    pod: &DesiredPod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<(), String> {
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field_value(pod, f)
                .ok_or_else(|| format!("downwardAPI {:?}: unsupported field {:?}", item.path, f.field_path))?
        } else if let Some(r) = &item.resource_field_ref {
            resource_value(pod, None, r).map_err(|e| format!("downwardAPI {:?}: {e}", item.path))?
        } else {
            return Err(format!("downwardAPI {:?}: neither fieldRef nor resourceFieldRef", item.path));
        };
        add(files, &item.path, value.into_bytes(), mode(item.mode, default_mode))?;
    }
    Ok(())
}

/// A bound token for the pod's ServiceAccount; returns when to refresh it
/// (at 80% of its lifetime, as the kubelet does).
async fn add_token(
    files: &mut VolumeFiles,
    pod: &DesiredPod,
    t: &ServiceAccountTokenProjection,
    default_mode: Option<i32>,
    objects: &dyn ClusterObjects,
    tokens: &mut TokenCache,
) -> Result<SystemTime, String> {
    let seconds = t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS).max(MIN_TOKEN_SECONDS);
    let request = TokenRequest {
        namespace: pod.namespace.clone(),
        service_account: pod.spec().service_account_name.clone().filter(|s| !s.is_empty()).unwrap_or("default".into()),
        audience: t.audience.clone().unwrap_or_default(),
        expiration_seconds: seconds,
        pod_name: pod.name.clone(),
        pod_uid: pod.uid.clone(),
    };
    let now = SystemTime::now();
    let (token, refresh_by) = match tokens.tokens.get(&request) {
        Some((token, refresh_by)) if now < *refresh_by => (token.clone(), *refresh_by),
        _ => {
            let token =
                objects.service_account_token(&request).await.map_err(|e| format!("serviceAccountToken: {e}"))?;
            let lifetime = token.expires.duration_since(now).unwrap_or(Duration::from_secs(seconds as u64));
            let refresh_by = now + lifetime.mul_f64(0.8);
            tokens.tokens.insert(request, (token.clone(), refresh_by));
            (token, refresh_by)
        }
    };
    // The kubelet writes tokens 0600 unless the volume says otherwise.
    add(files, &t.path, token.token.into_bytes(), mode(None, default_mode.or(Some(0o600))))?;
    Ok(refresh_by)
}

/// A pod field as the downward API gives it (`fieldRef`).
pub fn field_value(pod: &DesiredPod, f: &ObjectFieldSelector) -> Option<String> {
    let meta = &pod.pod.metadata;
    let map = |m: &Option<BTreeMap<String, String>>| {
        m.iter().flatten().map(|(k, v)| format!("{k}={v:?}\n")).collect::<String>().trim_end().to_string()
    };
    let path = f.field_path.as_str();
    if let Some(key) = path.strip_prefix("metadata.labels['").and_then(|k| k.strip_suffix("']")) {
        return meta.labels.as_ref()?.get(key).cloned();
    }
    if let Some(key) = path.strip_prefix("metadata.annotations['").and_then(|k| k.strip_suffix("']")) {
        return meta.annotations.as_ref()?.get(key).cloned();
    }
    Some(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "metadata.labels" => map(&meta.labels),
        "metadata.annotations" => map(&meta.annotations),
        "spec.serviceAccountName" => pod.spec().service_account_name.clone().unwrap_or_default(),
        _ => return None,
    })
}

/// A container's resource as the downward API gives it (`resourceFieldRef`):
/// in units of the divisor (default 1), rounded up. A limit that is not set
/// is reported as 0 (the kubelet reports the node's allocatable).
pub fn resource_value(
    pod: &DesiredPod,
    container: Option<&Container>,
    r: &ResourceFieldSelector,
) -> Result<String, String> {
    use node::quantity::Quantity;
    let name = r.container_name.as_deref().filter(|n| !n.is_empty());
    let c = match name {
        Some(name) => pod.spec().containers.iter().find(|c| c.name == name).ok_or(format!("no container {name:?}"))?,
        None => container.ok_or("resourceFieldRef needs containerName in a volume")?,
    };
    let (list, resource) = r.resource.split_once('.').ok_or(format!("resource {:?}", r.resource))?;
    let resources = c.resources.clone().unwrap_or_default();
    let set = match list {
        "limits" => resources.limits,
        "requests" => resources.requests,
        _ => return Err(format!("resource {:?}", r.resource)),
    };
    let value = match set.as_ref().and_then(|s| s.get(resource)) {
        Some(q) => Quantity::parse(&q.0).map_err(|e| e.to_string())?,
        None => return Ok("0".into()),
    };
    let divisor = match &r.divisor {
        Some(d) => Quantity::parse(&d.0).map_err(|e| e.to_string())?,
        None => Quantity::parse("1").map_err(|e| e.to_string())?,
    };
    let (v, d) = (value.as_milli(), divisor.as_milli());
    if d <= 0 {
        return Err("divisor must be positive".into());
    }
    Ok(((v + d - 1) / d).to_string())
}

/// Environment variables of `c`: `envFrom` first, then `env` (which wins),
/// as the kubelet orders them. `field` gives the values a `fieldRef` names
/// that are not in the pod's metadata (status.podIP, spec.nodeName, ...).
pub async fn resolve_env(
    pod: &DesiredPod,
    c: &Container,
    field: &(dyn Fn(&str) -> Option<String> + Sync),
    objects: &dyn ClusterObjects,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (what, name, optional, data) = if let Some(cm) = &from.config_map_ref {
            ("configmap", cm.name.clone(), cm.optional, objects.config_map(&pod.namespace, &cm.name).await)
        } else if let Some(s) = &from.secret_ref {
            ("secret", s.name.clone(), s.optional, objects.secret(&pod.namespace, &s.name).await)
        } else {
            continue;
        };
        match data.map_err(|e| format!("envFrom {what} {name:?}: {e}"))? {
            Some(data) => {
                for (key, value) in data {
                    // Keys that are no valid variable names are skipped, as
                    // the kubelet does.
                    let var = format!("{prefix}{key}");
                    if valid_env_name(&var) {
                        set(&mut env, var, String::from_utf8_lossy(&value).into_owned());
                    }
                }
            }
            None if optional.unwrap_or(false) => {}
            None => return Err(format!("envFrom: {what} {name:?} not found")),
        }
    }
    for var in c.env.iter().flatten() {
        let value = if let Some(v) = &var.value {
            Some(v.clone())
        } else if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, f).or_else(|| field(&f.field_path))
            } else if let Some(r) = &from.resource_field_ref {
                Some(resource_value(pod, Some(c), r).map_err(|e| format!("env {}: {e}", var.name))?)
            } else if let Some(k) = &from.config_map_key_ref {
                key_of(objects.config_map(&pod.namespace, &k.name).await, "configmap", &k.name, &k.key, k.optional)?
            } else if let Some(k) = &from.secret_key_ref {
                key_of(objects.secret(&pod.namespace, &k.name).await, "secret", &k.name, &k.key, k.optional)?
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

/// One key of a ConfigMap or Secret for `valueFrom`; `None` when it is
/// optional and missing.
fn key_of(
    found: Result<Option<ObjectData>, String>,
    what: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, String> {
    let data = found.map_err(|e| format!("{what} {name:?}: {e}"))?;
    match data.as_ref().and_then(|d| d.get(key)) {
        Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        None if optional.unwrap_or(false) => Ok(None),
        None if data.is_none() => Err(format!("{what} {name:?} not found")),
        None => Err(format!("{what} {name:?} has no key {key:?}")),
    }
}

/// A C identifier-ish name, as the API server accepts for env vars
/// (letters, digits, `_`, `-`, `.`; not starting with a digit).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
