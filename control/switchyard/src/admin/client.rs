//! The CLI's side of the admin API: one GET, JSON back.

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

/// GETs `path` from the admin API at `addr` (`host:port`).
pub async fn get<T: DeserializeOwned>(addr: &str, path: &str) -> Result<T> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach switchyard's admin API at {addr} (is `switchyard run` running?)"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .context("building the request")?;
    let response = sender.send_request(request).await.with_context(|| format!("GET {path}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        let message: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        bail!("{path}: {}", message["error"].as_str().unwrap_or(status.as_str()));
    }
    serde_json::from_slice(&body).with_context(|| format!("{path}: unexpected answer"))
}
