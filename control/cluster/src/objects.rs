//! The agent's ConfigMaps, Secrets and ServiceAccount tokens, read from the
//! API server ([`agent::volumes::ClusterObjects`]). Tokens come from the
//! TokenRequest API, bound to the pod (they stop working when it is
//! deleted), with the audience and lifetime its volume asks for.

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest as ApiTokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};

use agent::volumes::{ClusterObjects, ObjectData, Token, TokenRequest};

pub struct ApiObjects {
    client: kube::Client,
}

impl ApiObjects {
    pub fn new(client: kube::Client) -> ApiObjects {
        ApiObjects { client }
    }
}

impl ClusterObjects for ApiObjects {
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectData>, String>> {
        Box::pin(async move {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
            let found = api.get_opt(name).await.map_err(|e| e.to_string())?;
            Ok(found.map(|cm| {
                let text = cm.data.into_iter().flatten().map(|(k, v)| (k, v.into_bytes()));
                text.chain(cm.binary_data.into_iter().flatten().map(|(k, v)| (k, v.0))).collect()
            }))
        })
    }

    fn secret<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ObjectData>, String>> {
        Box::pin(async move {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let found = api.get_opt(name).await.map_err(|e| e.to_string())?;
            Ok(found.map(|s| {
                let data = s.data.into_iter().flatten().map(|(k, v)| (k, v.0));
                data.chain(s.string_data.into_iter().flatten().map(|(k, v)| (k, v.into_bytes()))).collect()
            }))
        })
    }

    fn service_account_token<'a>(&'a self, request: &'a TokenRequest) -> BoxFuture<'a, Result<Token, String>> {
        Box::pin(async move {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &request.namespace);
            let body = ApiTokenRequest {
                spec: TokenRequestSpec {
                    audiences: if request.audience.is_empty() { Vec::new() } else { vec![request.audience.clone()] },
                    expiration_seconds: Some(request.expiration_seconds),
                    bound_object_ref: Some(BoundObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        name: Some(request.pod_name.clone()),
                        uid: Some(request.pod_uid.clone()),
                    }),
                },
                ..Default::default()
            };
            let answer = api
                .create_token_request(&request.service_account, &PostParams::default(), &body)
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.status.ok_or("the TokenRequest came back without a token")?;
            let expires =
                SystemTime::UNIX_EPOCH + Duration::from_secs(status.expiration_timestamp.0.timestamp().max(0) as u64);
            Ok(Token { token: status.token, expires })
        })
    }
}
