//! Patch formats: JSON merge patch (RFC 7386), a strategic merge patch subset, JSON patch (RFC 6902)
//! and a simplified server-side apply.

use serde_json::{json, Map, Value};

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// How a list field merges under a strategic merge patch.
enum ListMerge {
    /// Elements are objects identified by this key.
    Key(&'static str),
    /// A list of scalars merged as a set.
    Primitive,
}

/// The patch strategy of the list fields of the served types, by path (`[]` marks a list element).
/// Lists not named here are atomic: a patch replaces them whole.
fn list_merge(path: &str) -> Option<ListMerge> {
    let key = match path {
        "metadata.finalizers" | "spec.podCIDRs" => return Some(ListMerge::Primitive),
        "metadata.ownerReferences" => "uid",
        "spec.containers" | "spec.initContainers" | "spec.ephemeralContainers" => "name",
        "spec.volumes" | "spec.imagePullSecrets" => "name",
        "spec.hostAliases" => "ip",
        "spec.ports" => "port",
        "status.conditions" | "status.addresses" => "type",
        "status.podIPs" | "status.hostIPs" => "ip",
        p => {
            let (_, field) = p.rsplit_once("[].")?;
            let in_container = ["spec.containers[].", "spec.initContainers[].", "spec.ephemeralContainers[]."]
                .iter()
                .any(|c| p.starts_with(c) && p.len() == c.len() + field.len());
            if !in_container {
                return None;
            }
            match field {
                "ports" => "containerPort",
                "env" => "name",
                "volumeMounts" => "mountPath",
                "volumeDevices" => "devicePath",
                _ => return None,
            }
        }
    };
    Some(ListMerge::Key(key))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Strategic merge patch for the types served here: merge keys for the well-known lists,
/// `$patch: delete|replace`, `$retainKeys`, `$setElementOrder/...` and `$deleteFromPrimitiveList/...`.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    smp_object(target, patch, "");
}

fn smp_object(target: &mut Value, patch: &Value, path: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = p.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        let t = target.as_object_mut().expect("object");
        let child = join(path, k);
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(o) if o.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => smp_object(t.entry(k.clone()).or_insert(Value::Null), v, &child),
            Value::Array(items) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                smp_list(slot, items, &child);
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    // Directives that apply after the fields are merged.
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
        } else if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let (Some(Value::Array(list)), Value::Array(order)) = (t.get_mut(field), v) {
                reorder(list, order, list_merge(&join(path, field)));
            }
        } else if k == "$retainKeys" {
            if let Value::Array(keep) = v {
                t.retain(|key, _| keep.iter().any(|x| x.as_str() == Some(key)));
            }
        }
    }
}

fn merge_key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object().and_then(|o| o.get(key))
}

fn smp_list(slot: &mut Value, items: &[Value], path: &str) {
    let strategy = list_merge(path);
    if items.iter().any(|i| merge_key_of(i, "$patch").and_then(Value::as_str) == Some("replace")) {
        let kept = items.iter().filter(|i| merge_key_of(i, "$patch").is_none()).cloned().collect();
        *slot = Value::Array(kept);
        return;
    }
    let (Some(strategy), Value::Array(list)) = (strategy, &mut *slot) else {
        *slot = Value::Array(items.to_vec());
        return;
    };
    match strategy {
        ListMerge::Primitive => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
        ListMerge::Key(key) => {
            let element = format!("{path}[]");
            for item in items {
                let Some(id) = merge_key_of(item, key).cloned() else {
                    list.push(item.clone());
                    continue;
                };
                let pos = list.iter().position(|e| merge_key_of(e, key) == Some(&id));
                let delete = merge_key_of(item, "$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => smp_object(&mut list[i], item, &element),
                    (None, false) => {
                        let mut fresh = Value::Null;
                        smp_object(&mut fresh, item, &element);
                        list.push(fresh);
                    }
                }
            }
        }
    }
}

/// Order a list after `$setElementOrder`: listed elements first, in that order, then the rest.
fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: Option<ListMerge>) {
    let id = |v: &Value| -> Value {
        match &strategy {
            Some(ListMerge::Key(k)) => merge_key_of(v, k).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let mut rest = std::mem::take(list);
    for o in order {
        let want = id(o);
        if let Some(i) = rest.iter().position(|e| id(e) == want) {
            list.push(rest.remove(i));
        }
    }
    list.append(&mut rest);
}

fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(vec![]);
    }
    let Some(rest) = p.strip_prefix('/') else { return Err(format!("invalid JSON pointer {p:?}")) };
    Ok(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect())
}

fn index(list: &[Value], tok: &str, allow_end: bool) -> Result<usize, String> {
    if allow_end && tok == "-" {
        return Ok(list.len());
    }
    let i: usize = tok.parse().map_err(|_| format!("invalid array index {tok:?}"))?;
    let max = if allow_end { list.len() } else { list.len().saturating_sub(1) };
    if i > max || (!allow_end && list.is_empty()) {
        return Err(format!("array index {i} out of bounds"));
    }
    Ok(i)
}

fn walk<'a>(doc: &'a mut Value, toks: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("path element {t:?} not found"))?,
            Value::Array(a) => {
                let i = index(a, t, false)?;
                &mut a[i]
            }
            _ => return Err(format!("path element {t:?} not found")),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let toks = parse_pointer(path)?;
    let Some((last, parent)) = toks.split_last() else {
        *doc = value;
        return Ok(());
    };
    match walk(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = index(a, last, true)?;
            a.insert(i, value);
        }
        _ => return Err(format!("cannot add at {path:?}: parent is not a container")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let toks = parse_pointer(path)?;
    let Some((last, parent)) = toks.split_last() else { return Err("cannot remove the document root".into()) };
    match walk(doc, parent)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| format!("path {path:?} not found")),
        Value::Array(a) => {
            let i = index(a, last, false)?;
            Ok(a.remove(i))
        }
        _ => Err(format!("path {path:?} not found")),
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let Value::Array(ops) = ops else { return Err("a JSON patch must be an array of operations".into()) };
    for op in ops {
        let s = |k: &str| op.get(k).and_then(Value::as_str).ok_or_else(|| format!("operation lacks {k:?}: {op}"));
        let path = s("path")?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("operation lacks \"value\": {op}"));
        match s("op")? {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => *walk(doc, &parse_pointer(path)?)? = value()?,
            "move" => {
                let v = remove(doc, s("from")?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = walk(doc, &parse_pointer(s("from")?)?)?.clone();
                add(doc, path, v)?;
            }
            "test" => {
                if *walk(doc, &parse_pointer(path)?)? != value()? {
                    return Err(format!("test operation failed at {path:?}"));
                }
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

/// Fields never tracked as owned by an applier.
fn untracked(path: &str, key: &str) -> bool {
    (path.is_empty() && (key == "apiVersion" || key == "kind"))
        || (path == "metadata"
            && matches!(key, "name" | "namespace" | "resourceVersion" | "managedFields" | "uid" | "generation"))
}

/// The FieldsV1 set of an applied configuration: maps are followed, lists and scalars are leaves.
pub fn field_set(v: &Value) -> Value {
    fn walk(v: &Value, path: &str) -> Value {
        let mut out = Map::new();
        if let Value::Object(m) = v {
            for (k, child) in m {
                if untracked(path, k) || child.is_null() {
                    continue;
                }
                let sub = if child.is_object() { walk(child, &join(path, k)) } else { json!({}) };
                out.insert(format!("f:{k}"), sub);
            }
        }
        Value::Object(out)
    }
    walk(v, "")
}

/// Remove from `obj` the fields owned in `old` but not in `new`, unless another manager owns them.
fn prune(obj: &mut Value, old: &Value, new: &Value, others: &[&Value]) {
    let (Some(old), Some(o)) = (old.as_object(), obj.as_object_mut()) else { return };
    for (fk, old_child) in old {
        let Some(k) = fk.strip_prefix("f:") else { continue };
        let new_child = new.get(fk);
        let other_children: Vec<&Value> = others.iter().filter_map(|s| s.get(fk)).collect();
        match new_child {
            None if other_children.is_empty() => {
                o.remove(k);
            }
            None => {}
            Some(nc) => {
                if let Some(child) = o.get_mut(k) {
                    prune(child, old_child, nc, &other_children);
                }
            }
        }
    }
}

fn merge_applied(target: &mut Value, applied: &Value, path: &str) {
    let (Value::Object(t), Value::Object(a)) = (&mut *target, applied) else {
        *target = applied.clone();
        return;
    };
    for (k, v) in a {
        // Server-owned metadata is never taken from an applied configuration; a resourceVersion is kept
        // so that the update sees it as a precondition.
        if path == "metadata" && matches!(k.as_str(), "managedFields" | "uid" | "generation") {
            continue;
        }
        if v.is_null() {
            t.remove(k);
        } else if v.is_object() && t.get(k).is_some_and(Value::is_object) {
            merge_applied(t.get_mut(k).expect("present"), v, &join(path, k));
        } else {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// Simplified server-side apply: merge the applied configuration into the live object (maps merge,
/// lists are atomic), drop fields this manager applied before but no longer applies (unless another
/// manager's apply owns them), and record the manager's field set in `metadata.managedFields`.
/// Ownership conflicts between managers are not detected.
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    now: &str,
    subresource: &str,
) -> Value {
    let fields = field_set(applied);
    let mut obj = match current {
        None => json!({}),
        Some(c) => c.clone(),
    };
    let entries: Vec<Value> =
        obj.pointer("/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
    let same = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource").and_then(Value::as_str).unwrap_or("") == subresource
    };
    let old = entries.iter().find(|e| same(e)).and_then(|e| e.get("fieldsV1")).cloned().unwrap_or(json!({}));
    let others: Vec<&Value> = entries.iter().filter(|e| !same(e)).filter_map(|e| e.get("fieldsV1")).collect();
    prune(&mut obj, &old, &fields, &others);
    merge_applied(&mut obj, applied, "");
    let mut entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied.get("apiVersion").cloned().unwrap_or(Value::Null),
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if !subresource.is_empty() {
        entry["subresource"] = json!(subresource);
    }
    let mut new_entries: Vec<Value> = entries.into_iter().filter(|e| !same(e)).collect();
    new_entries.push(entry);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["managedFields"] = Value::Array(new_entries);
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [{"b": "c"}]});
        merge_patch(&mut t, &json!({"a": [1]}));
        assert_eq!(t, json!({"a": [1]}));
        let mut t = json!(["a", "b"]);
        merge_patch(&mut t, &json!({"a": "b", "c": null}));
        assert_eq!(t, json!({"a": "b"}));
        let mut t = json!({"e": null});
        merge_patch(&mut t, &json!({"a": 1}));
        assert_eq!(t, json!({"e": null, "a": 1}));
    }

    #[test]
    fn strategic_merges_keyed_lists() {
        let mut svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
                             "selector": {"app": "web"}}});
        let patch = json!({
            "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
            "spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}],
                     "ports": [{"port": 80, "name": "web"}, {"port": 8080, "$patch": "delete"}]}
        });
        strategic_merge_patch(&mut svc, &patch);
        assert_eq!(svc["spec"]["ports"], json!([{"port": 443, "name": "https"}, {"port": 80, "name": "web"}]));
        let mut pod = json!({"metadata": {"finalizers": ["a", "b"]},
            "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}]}]}});
        strategic_merge_patch(
            &mut pod,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]},
                    "spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]}}),
        );
        assert_eq!(pod["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(pod["spec"]["containers"][0]["image"], "x");
        assert_eq!(pod["spec"]["containers"][0]["env"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"a": {"b": [1, 2]}, "c": 1});
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": 2},
                {"op": "move", "from": "/c", "path": "/d"},
                {"op": "copy", "from": "/d", "path": "/a/e~1f"},
                {"op": "remove", "path": "/a/b/0"},
                {"op": "test", "path": "/d", "value": 2}
            ]),
        )
        .unwrap();
        assert_eq!(d, json!({"a": {"b": [2, 3], "e/f": 2}, "d": 2}));
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/d", "value": 3}])).is_err());
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }

    #[test]
    fn apply_prunes_fields_no_longer_applied() {
        let first =
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": "1", "b": "2"}}});
        let live = server_side_apply(None, &first, "m", "t", "");
        assert_eq!(live["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:labels"]["f:b"], json!({}));
        let second = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": "1"}}});
        let live = server_side_apply(Some(&live), &second, "m", "t", "");
        assert_eq!(live["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(live["metadata"]["managedFields"].as_array().unwrap().len(), 1);
    }
}
