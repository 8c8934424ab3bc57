//! Static pods: Pod manifests in a directory (like /etc/kubernetes/manifests),
//! YAML or JSON, one Pod (or several YAML documents, or a `PodList`) per
//! file. Services in the same directory (standalone mode) are left to the
//! Service side. The directory is rescanned periodically; a file that cannot be read
//! as Pods is reported with its name and reason, and the others go on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::pod::{DesiredPod, PodSource};
use dataplane::hash::hash_hex;

/// A manifest that could not be turned into a Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

#[derive(Debug, Default)]
pub struct Scan {
    pub pods: Vec<DesiredPod>,
    pub errors: Vec<ManifestError>,
}

/// Reads every manifest in `dir` for node `node_name`.
pub fn scan(dir: &Path, node_name: &str) -> Scan {
    let mut scan = Scan::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return scan,
        Err(e) => {
            scan.errors.push(ManifestError { file: dir.into(), reason: format!("cannot read the directory: {e}") });
            return scan;
        }
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Editors' swap files and hidden files are not manifests (as kubelet).
        let is_manifest = [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext));
        if name.starts_with('.') || !is_manifest || !file.is_file() {
            continue;
        }
        match read_manifest(&file, node_name) {
            Ok(pods) => scan.pods.extend(pods),
            Err(reason) => scan.errors.push(ManifestError { file, reason }),
        }
    }
    // Two files naming the same pod: the first (by file name) wins.
    let mut seen: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut unique = Vec::new();
    for pod in std::mem::take(&mut scan.pods) {
        let key = (pod.namespace.clone(), pod.name.clone());
        if let Some(first) = seen.get(&key) {
            scan.errors.push(ManifestError {
                file: pod.source_file().unwrap_or_default(),
                reason: format!("pod {}/{} is already defined in {}", key.0, key.1, first.display()),
            });
            continue;
        }
        seen.insert(key, pod.source_file().unwrap_or_default());
        unique.push(pod);
    }
    scan.pods = unique;
    scan
}

/// One manifest file: its Pods, or why it has none.
pub fn read_manifest(file: &Path, node_name: &str) -> Result<Vec<DesiredPod>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let mut pods = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| format!("not YAML or JSON: {e}"))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let docs = match kind {
            "Pod" => vec![value],
            "PodList" | "List" => value
                .get("items")
                .and_then(|i| i.as_sequence())
                .map(|items| {
                    items
                        .iter()
                        .filter(|i| i.get("kind").and_then(|k| k.as_str()).unwrap_or("Pod") == "Pod")
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            // Standalone mode keeps its Services in the same directory.
            "Service" | "ServiceList" | "EndpointSlice" => continue,
            "" => return Err(format!("document {} has no kind (want kind: Pod)", i + 1)),
            other => return Err(format!("document {} is a {other}, not a Pod", i + 1)),
        };
        for doc in docs {
            let pod: Pod = serde_yaml::from_value(doc).map_err(|e| format!("not a valid Pod: {e}"))?;
            pods.push(static_pod(pod, file, &text, node_name)?);
        }
    }
    Ok(pods)
}

/// Gives a manifest's Pod the identity kubelet gives static pods: the name
/// `<name>-<node>`, a UID derived from the manifest's content (so an edit
/// makes a new pod that replaces the old), and the config annotations.
fn static_pod(mut pod: Pod, file: &Path, text: &str, node_name: &str) -> Result<DesiredPod, String> {
    let meta = &mut pod.metadata;
    let name = meta.name.clone().filter(|n| !n.is_empty()).ok_or("the Pod has no metadata.name")?;
    let namespace = meta.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
    let full_name = format!("{name}-{node_name}");
    let uid = meta
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| hash_hex(format!("{node_name}\n{}\n{name}\n{text}", file.display()).as_bytes()));
    meta.name = Some(full_name.clone());
    meta.namespace = Some(namespace.clone());
    meta.uid = Some(uid.clone());
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    annotations.insert("kubernetes.io/config.source".into(), "file".into());
    annotations.insert("kubernetes.io/config.hash".into(), uid.clone());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.into());
    DesiredPod::new(pod, PodSource::Static { file: file.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: httpd
    image: switchyard.local/busybox:1
    command: ["httpd", "-f", "-p", "8080"]
"#;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn static_pods_get_kubelets_identity() {
        let dir = dir_with(&[("web.yaml", WEB)]);
        let scan = scan(dir.path(), "node-a");
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        let pod = &scan.pods[0];
        assert_eq!((pod.namespace.as_str(), pod.name.as_str()), ("default", "web-node-a"));
        assert_eq!(pod.uid.len(), 32);
        let again = super::scan(dir.path(), "node-a");
        assert_eq!(again.pods[0].uid, pod.uid, "same content, same uid");
        std::fs::write(dir.path().join("web.yaml"), WEB.replace("8080", "8081")).unwrap();
        assert_ne!(super::scan(dir.path(), "node-a").pods[0].uid, pod.uid, "an edit is a new pod");
    }

    #[test]
    fn bad_manifests_are_named_and_the_rest_go_on() {
        let dir = dir_with(&[
            ("a-web.yaml", WEB),
            ("b-notyaml.yaml", "{{{ nope"),
            ("c-configmap.yaml", "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n"),
            ("f-service.yaml", "kind: Service\napiVersion: v1\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.9}\n"),
            (
                "d-noimage.json",
                r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"},"spec":{"containers":[{"name":"c"}]}}"#,
            ),
            (
                "e-badqty.yaml",
                &WEB.replace("web", "qty").replace("command:", "resources: {limits: {memory: lots}}\n    command:"),
            ),
            (".hidden.yaml", "garbage"),
            ("README.md", "not a manifest"),
        ]);
        let scan = scan(dir.path(), "n");
        assert_eq!(scan.pods.len(), 1);
        let reasons: BTreeMap<String, String> = scan
            .errors
            .iter()
            .map(|e| (e.file.file_name().unwrap().to_string_lossy().into_owned(), e.reason.clone()))
            .collect();
        assert!(reasons["b-notyaml.yaml"].contains("not YAML"), "{reasons:?}");
        assert!(reasons["c-configmap.yaml"].contains("is a ConfigMap, not a Pod"), "{reasons:?}");
        assert!(reasons["d-noimage.json"].contains("image"), "{reasons:?}");
        assert!(reasons["e-badqty.yaml"].contains("lots"), "{reasons:?}");
        assert_eq!(reasons.len(), 4);
    }
}
