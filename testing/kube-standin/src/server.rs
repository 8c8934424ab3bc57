//! Listener and connection lifecycle: serve HTTP/1.1 on a TCP listener until told to stop, then
//! close the listener and every open connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::shared::Shared;

/// A serving listener; dropping it without `stop` leaves the task running until the runtime ends.
pub struct Running {
    stop: oneshot::Sender<()>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Running {
    /// Close the listener and all connections, and wait until that is done.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.done.recv_timeout(Duration::from_secs(10));
    }
}

pub fn spawn(
    rt: &tokio::runtime::Handle,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
) -> std::io::Result<Running> {
    listener.set_nonblocking(true)?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let listener = {
        let _guard = rt.enter();
        TcpListener::from_std(listener)?
    };
    rt.spawn(async move {
        serve(listener, shared, stop_rx).await;
        let _ = done_tx.send(());
    });
    Ok(Running { stop: stop_tx, done: done_rx })
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let svc = service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(crate::http::handle(shared, req).await) }
                        });
                        if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                            tracing::debug!("connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    conns.shutdown().await;
}
