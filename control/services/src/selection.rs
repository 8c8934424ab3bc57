//! Which Services this proxy programs, as kube-proxy chooses them: not
//! those labelled for another proxy (`service.kubernetes.io/service-proxy-name`,
//! unless the label names this one), and not those labelled headless
//! (`service.kubernetes.io/headless`). kube-proxy leaves both out with a
//! label selector on its watch; here the choice is made where events enter
//! the catalog, so that a Service whose labels change leaves or joins the
//! tables like one deleted or created.

use k8s_openapi::api::core::v1::Service;

/// Names the proxy that is to program a Service.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Marks a Service without a cluster IP to proxy.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

#[derive(Clone, Debug, Default)]
pub struct ServiceSelection {
    /// The name this proxy answers to in `service-proxy-name`; without one,
    /// only Services without the label are programmed (as kube-proxy does).
    pub proxy_name: Option<String>,
}

impl ServiceSelection {
    /// Whether this proxy programs `service`.
    pub fn selects(&self, service: &Service) -> bool {
        let labels = service.metadata.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key));
        if label(HEADLESS).is_some() {
            return false;
        }
        match label(SERVICE_PROXY_NAME) {
            None => true,
            Some(name) => self.proxy_name.as_deref() == Some(name.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labelled(labels: &[(&str, &str)]) -> Service {
        let mut s = Service::default();
        let map: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        s.metadata.labels = Some(map);
        s
    }

    #[test]
    fn services_for_another_proxy_and_headless_ones_are_left_out() {
        let default = ServiceSelection::default();
        let named = ServiceSelection { proxy_name: Some("switchyard".into()) };
        let plain = labelled(&[("app", "web")]);
        let other = labelled(&[(SERVICE_PROXY_NAME, "other-proxy")]);
        let ours = labelled(&[(SERVICE_PROXY_NAME, "switchyard")]);
        let headless = labelled(&[(HEADLESS, "")]);
        assert!(default.selects(&plain) && named.selects(&plain));
        assert!(!default.selects(&other) && !named.selects(&other));
        assert!(!default.selects(&ours), "without a name, any proxy name means another proxy");
        assert!(named.selects(&ours));
        assert!(!default.selects(&headless) && !named.selects(&headless));
    }
}
