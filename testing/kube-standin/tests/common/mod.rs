//! A minimal raw HTTP client for talking to the stand-in the way API clients do.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub struct Resp {
    pub code: u16,
    pub body: Value,
}

pub async fn request(addr: SocketAddr, method: Method, path: &str, content_type: &str, body: Option<String>) -> Resp {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let resp = send.send_request(req).await.expect("send");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    Resp { code, body }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, Method::GET, path, "application/json", None).await
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    request(addr, Method::POST, path, "application/json", Some(body.to_string())).await
}

pub async fn put(addr: SocketAddr, path: &str, body: &Value) -> Resp {
    request(addr, Method::PUT, path, "application/json", Some(body.to_string())).await
}

pub async fn patch(addr: SocketAddr, path: &str, content_type: &str, body: &Value) -> Resp {
    request(addr, Method::PATCH, path, content_type, Some(body.to_string())).await
}

pub async fn delete(addr: SocketAddr, path: &str, body: Option<&Value>) -> Resp {
    request(addr, Method::DELETE, path, "application/json", body.map(Value::to_string)).await
}

/// An open watch: events arrive in order; `None` once the server ends the stream.
pub struct Watch {
    pub code: u16,
    pub chunked: bool,
    rx: mpsc::UnboundedReceiver<Value>,
}

impl Watch {
    /// The next event, or None if the stream ended. Panics after `secs` seconds without one.
    pub async fn next_within(&mut self, secs: u64) -> Option<Value> {
        tokio::time::timeout(Duration::from_secs(secs), self.rx.recv()).await.expect("watch event in time")
    }

    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(5).await
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_change(&mut self) -> Option<Value> {
        loop {
            let e = self.next().await?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }

    /// Collect events until the stream ends.
    pub async fn rest(&mut self, secs: u64) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(e) = self.next_within(secs).await {
            out.push(e);
        }
        out
    }
}

pub async fn watch(addr: SocketAddr, path: &str) -> Watch {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req =
        Request::builder().uri(path).header("host", addr.to_string()).body(Full::new(Bytes::new())).expect("request");
    let resp = send.send_request(req).await.expect("send");
    let code = resp.status().as_u16();
    let chunked = resp.headers().get("transfer-encoding").is_some_and(|v| v == "chunked");
    let (tx, rx) = mpsc::unbounded_channel();
    let mut body = resp.into_body();
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            buf.extend_from_slice(&data);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let v: Value = serde_json::from_slice(&line).expect("watch line is JSON");
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    Watch { code, chunked, rx }
}

pub fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().expect("resourceVersion").parse().expect("numeric resourceVersion")
}

pub fn pod(name: &str, node: Option<&str>, labels: Value) -> Value {
    let mut p = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": labels },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
    });
    if let Some(n) = node {
        p["spec"]["nodeName"] = n.into();
    }
    p
}
