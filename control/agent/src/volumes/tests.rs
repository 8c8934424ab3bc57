//! Projection and env resolution against objects held in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::objects::{ClusterObjects, ObjectData, Token, TokenRequest};
use super::projection::{project, resolve_env, TokenCache};
use crate::pod::{DesiredPod, PodSource};

#[derive(Default)]
struct Objects {
    config_maps: BTreeMap<String, ObjectData>,
    secrets: BTreeMap<String, ObjectData>,
    tokens: Mutex<Vec<TokenRequest>>,
}

impl ClusterObjects for Objects {
    fn config_map<'a>(&'a self, _: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ObjectData>, String>> {
        Box::pin(async move { Ok(self.config_maps.get(name).cloned()) })
    }

    fn secret<'a>(&'a self, _: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ObjectData>, String>> {
        Box::pin(async move { Ok(self.secrets.get(name).cloned()) })
    }

    fn service_account_token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<Token, String>> {
        Box::pin(async move {
            self.tokens.lock().map_err(|e| e.to_string())?.push(request.clone());
            let expires = SystemTime::now() + Duration::from_secs(request.expiration_seconds as u64);
            Ok(Token { token: format!("token-for-{}", request.pod_name), expires })
        })
    }
}

fn data(pairs: &[(&str, &str)]) -> ObjectData {
    pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

fn objects() -> Objects {
    Objects {
        config_maps: BTreeMap::from([
            ("kube-root-ca.crt".to_string(), data(&[("ca.crt", "CA")])),
            ("app".to_string(), data(&[("mode", "fast"), ("level", "3"), ("bad key", "x")])),
        ]),
        secrets: BTreeMap::from([("db".to_string(), data(&[("password", "s3cret")]))]),
        ..Objects::default()
    }
}

/// A pod as the API server stores it after admission: the projected
/// `kube-api-access-*` volume the ServiceAccount plugin adds, and the rest.
const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, uid: u-1, labels: {app: web, tier: front}}
spec:
  serviceAccountName: default
  containers:
  - name: app
    image: busybox
    resources: {limits: {memory: 64Mi}, requests: {cpu: 250m}}
    envFrom: [{configMapRef: {name: app}, prefix: APP_}]
    env:
    - {name: APP_MODE, value: slow}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
    - name: LEVEL
      valueFrom: {configMapKeyRef: {name: app, key: level}}
    - name: MAYBE
      valueFrom: {configMapKeyRef: {name: absent, key: x, optional: true}}
    - name: MEMORY_MI
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    - name: CPU_MILLI
      valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
  volumes:
  - name: kube-api-access-abcde
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken: {expirationSeconds: 3607, path: token}
      - configMap:
          name: kube-root-ca.crt
          items: [{key: ca.crt, path: ca.crt}]
      - downwardAPI:
          items: [{path: namespace, fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}]
  - name: config
    configMap: {name: app, items: [{key: mode, path: conf/mode, mode: 256}]}
  - name: creds
    secret: {secretName: db, defaultMode: 384}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
"#;

fn pod() -> DesiredPod {
    let pod: Pod = serde_yaml::from_str(POD).expect("test pod");
    DesiredPod::new(pod, PodSource::Api).expect("a valid pod")
}

fn volume(pod: &DesiredPod, name: &str) -> Volume {
    pod.spec().volumes.iter().flatten().find(|v| v.name == name).cloned().expect("volume")
}

fn text(files: &super::atomic::VolumeFiles, path: &str) -> (String, u32) {
    let f = files.get(path).unwrap_or_else(|| panic!("{path} in {:?}", files.keys().collect::<Vec<_>>()));
    (String::from_utf8_lossy(&f.content).into_owned(), f.mode)
}

#[tokio::test]
async fn the_service_account_volume_holds_a_bound_token_the_ca_and_the_namespace() {
    let (pod, objects) = (pod(), objects());
    let mut tokens = TokenCache::default();
    let p = project(&volume(&pod, "kube-api-access-abcde"), &pod, &objects, &mut tokens).await.expect("projects");
    assert_eq!(text(&p.files, "token"), ("token-for-web".into(), 0o644));
    assert_eq!(text(&p.files, "ca.crt"), ("CA".into(), 0o644));
    assert_eq!(text(&p.files, "namespace"), ("shop".into(), 0o644));
    let asked = objects.tokens.lock().expect("tokens").clone();
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].service_account.as_str(), asked[0].pod_uid.as_str()), ("default", "u-1"));
    assert_eq!(asked[0].expiration_seconds, 3607);
    // Refreshed at 80% of its lifetime; until then the same token is used.
    let refresh = p.refresh_by.expect("a refresh time").duration_since(SystemTime::now()).unwrap_or_default();
    assert!(refresh > Duration::from_secs(2800) && refresh < Duration::from_secs(2900), "{refresh:?}");
    let again = project(&volume(&pod, "kube-api-access-abcde"), &pod, &objects, &mut tokens).await.expect("again");
    assert_eq!(text(&again.files, "token").0, "token-for-web");
    assert_eq!(objects.tokens.lock().expect("tokens").len(), 1, "the token is reused, not asked for again");
}

#[tokio::test]
async fn config_map_secret_and_downward_volumes_follow_items_and_modes() {
    let (pod, objects) = (pod(), objects());
    let config = project(&volume(&pod, "config"), &pod, &objects, &mut TokenCache::default()).await.expect("configMap");
    assert_eq!(config.files.len(), 1);
    assert_eq!(text(&config.files, "conf/mode"), ("fast".into(), 0o400));
    let creds = project(&volume(&pod, "creds"), &pod, &objects, &mut TokenCache::default()).await.expect("secret");
    assert_eq!(text(&creds.files, "password"), ("s3cret".into(), 0o600));
    let info = project(&volume(&pod, "info"), &pod, &objects, &mut TokenCache::default()).await.expect("downwardAPI");
    assert_eq!(text(&info.files, "labels").0, "app=\"web\"\ntier=\"front\"");
    assert_eq!(text(&info.files, "mem").0, "64");
}

#[tokio::test]
async fn a_missing_object_fails_the_mount_unless_optional() {
    let pod = pod();
    let objects = Objects::default();
    let err =
        project(&volume(&pod, "config"), &pod, &objects, &mut TokenCache::default()).await.expect_err("no ConfigMap");
    assert!(err.contains("configmap \"app\" not found"), "{err}");
    let mut optional = volume(&pod, "config");
    if let Some(cm) = optional.config_map.as_mut() {
        cm.optional = Some(true);
    }
    let p = project(&optional, &pod, &objects, &mut TokenCache::default()).await.expect("optional and absent: empty");
    assert!(p.files.is_empty());
    let mut missing_key = volume(&pod, "config");
    if let Some(cm) = missing_key.config_map.as_mut() {
        cm.items =
            Some(vec![k8s_openapi::api::core::v1::KeyToPath { key: "nope".into(), path: "x".into(), mode: None }]);
    }
    let err = project(&missing_key, &pod, &self::objects(), &mut TokenCache::default()).await.expect_err("no such key");
    assert!(err.contains("has no key \"nope\""), "{err}");
}

#[tokio::test]
async fn env_comes_from_config_maps_secrets_fields_and_resources() {
    let (pod, objects) = (pod(), objects());
    let c = pod.spec().containers[0].clone();
    let field = |path: &str| (path == "spec.nodeName").then(|| "node-1".to_string());
    let env: BTreeMap<String, String> =
        resolve_env(&pod, &c, &field, &objects).await.expect("resolves").into_iter().collect();
    assert_eq!(env["APP_MODE"], "slow", "env overrides envFrom");
    assert_eq!(env["APP_level"], "3");
    assert!(!env.keys().any(|k| k.contains(' ')), "invalid names are skipped: {env:?}");
    assert_eq!(env["PASSWORD"], "s3cret");
    assert_eq!(env["LEVEL"], "3");
    assert!(!env.contains_key("MAYBE"));
    assert_eq!(env["MEMORY_MI"], "64");
    assert_eq!(env["CPU_MILLI"], "250");
    assert_eq!(env["NODE"], "node-1");
    assert_eq!(env["POD_NAMESPACE"], "shop");
    let err = resolve_env(&pod, &c, &field, &Objects::default()).await.expect_err("no objects");
    assert!(err.contains("not found"), "{err}");
}
