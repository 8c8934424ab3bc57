//! The admin API: a small HTTP/JSON server on loopback that the CLI reads
//! (`switchyard services|routes|counters|pods|node`).

pub mod client;
pub mod pod_views;
pub mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use dataplane::stats::CoreStats;
use dataplane::tables::Snapshot;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

use agent::AgentState;
use pod_views::NodeView;

/// What the admin API can show; the control loop keeps it current.
#[derive(Default)]
pub struct AdminState {
    pub agent: Option<Arc<AgentState>>,
    pub node: RwLock<NodeView>,
    pub snapshot: RwLock<Option<Arc<Snapshot>>>,
    pub stats: Option<CoreStats>,
}

pub async fn serve(addr: SocketAddr, state: Arc<AdminState>) -> Result<()> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("admin API: cannot listen on {addr}"))?;
    info!(listen = %addr, "admin API up");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(route(&state, &req)) }
                });
                if let Err(e) =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                {
                    warn!("admin API connection: {e}");
                }
            });
        }
    });
    Ok(())
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn route<B>(state: &AdminState, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET {
        return json(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({"error": "only GET"}));
    }
    let body = match req.uri().path() {
        "/healthz" => serde_json::json!({"ok": true}),
        "/v1/services" => {
            let snap = state.snapshot.read().ok().and_then(|s| s.clone());
            match snap {
                Some(s) => serde_json::to_value(views::services(&s)).unwrap_or_default(),
                None => return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no dataplane configured"})),
            }
        }
        "/v1/routes" => {
            let snap = state.snapshot.read().ok().and_then(|s| s.clone());
            match snap {
                Some(s) => serde_json::to_value(views::routes(&s)).unwrap_or_default(),
                None => return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no dataplane configured"})),
            }
        }
        "/v1/counters" => match &state.stats {
            Some(stats) => {
                let generation = state.snapshot.read().ok().and_then(|s| s.as_ref().map(|s| s.generation)).unwrap_or(0);
                let cores = (0..stats.cores()).map(|c| views::core_counters(c, &stats.read(c))).collect();
                serde_json::to_value(views::CountersView { generation, cores }).unwrap_or_default()
            }
            None => return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no dataplane configured"})),
        },
        "/v1/pods" => match &state.agent {
            Some(agent) => {
                let pods: Vec<_> =
                    agent.pods.read().map(|p| p.values().map(pod_views::pod_view).collect()).unwrap_or_default();
                serde_json::to_value(pods).unwrap_or_default()
            }
            None => return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no node agent configured"})),
        },
        "/v1/node" => match state.node.read() {
            Ok(n) => serde_json::to_value(&*n).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        },
        _ => return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "no such resource"})),
    };
    json(StatusCode::OK, body)
}
