//! Watch streams: newline-delimited JSON watch events over a chunked HTTP response body.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::discovery::info;
use crate::selectors::Filter;
use crate::shared::Shared;
use crate::status::ApiError;
use crate::store::{Event, EventType, ListOpts};

/// A response body fed by a channel; every message goes out as one chunk.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

#[derive(Debug, Clone)]
pub struct WatchParams {
    pub res: usize,
    pub filter: Filter,
    /// The `resourceVersion` parameter as given ("" when absent).
    pub resource_version: String,
    pub bookmarks: bool,
    pub timeout: Duration,
    /// `sendInitialEvents`: Some(true) streams the current state then an initial-events-end bookmark.
    pub send_initial_events: Option<bool>,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({ "type": kind, "object": object }).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(res: usize, rv: u64, initial_end: bool) -> Bytes {
    let r = info(res);
    let mut meta = json!({ "resourceVersion": rv.to_string(), "creationTimestamp": null });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line("BOOKMARK", &json!({ "kind": r.kind, "apiVersion": r.api_version(), "metadata": meta }))
}

/// What a watcher with `filter` sees of one change: objects entering the selection are ADDED,
/// objects leaving it are DELETED, as the real watch cache does.
fn translate<'a>(ev: &'a Event, filter: &Filter) -> Option<(&'static str, &'a Value)> {
    let now = ev.kind != EventType::Deleted && filter.matches(&ev.object);
    let before = match ev.kind {
        EventType::Added => false,
        EventType::Deleted => filter.matches(&ev.object),
        EventType::Modified => ev.prev.as_ref().is_some_and(|p| filter.matches(p)),
    };
    match (before, now) {
        (false, true) => Some(("ADDED", &ev.object)),
        (true, true) => Some(("MODIFIED", &ev.object)),
        (true, false) => Some(("DELETED", &ev.object)),
        (false, false) => None,
    }
}

/// Start a watch: validate the request, then stream from a background task.
pub fn start(shared: Arc<Shared>, p: WatchParams) -> Result<ChannelBody, ApiError> {
    let initial = match (p.send_initial_events, p.resource_version.as_str()) {
        (Some(true), _) => true,
        (Some(false), _) => false,
        (None, "" | "0") => true,
        (None, _) => false,
    };
    if p.send_initial_events == Some(true) && !p.bookmarks {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            "allowWatchBookmarks",
            "Required value: allowWatchBookmarks must be set to true when sendInitialEvents is set",
        ));
    }
    let asked = match p.resource_version.as_str() {
        "" | "0" => None,
        v => Some(
            v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("resourceVersion: Invalid value: {v:?}")))?,
        ),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let (first, mut after, mut changes) = {
        let store = shared.store.lock().expect("store lock");
        let changes = store.subscribe();
        let mut first = Vec::new();
        let mut after = asked.unwrap_or(store.current_rv());
        if initial {
            let page = store.list(p.res, &p.filter, &ListOpts::default())?;
            first.extend(page.items.iter().map(|o| line("ADDED", o)));
            after = page.rv;
        } else if let Err(e) = store.events_after(p.res, after) {
            // Too old: the real server answers 200 and sends the 410 as an ERROR event.
            first.push(line("ERROR", &e.to_status()));
            after = u64::MAX;
        }
        (first, after, changes)
    };
    let mut ended = shared.end_watches.subscribe();
    let interval = *shared.bookmark_interval.lock().expect("bookmark interval lock");
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if after == u64::MAX {
            return;
        }
        if initial && p.send_initial_events == Some(true) && tx.send(bookmark(p.res, after, true)).await.is_err() {
            return;
        }
        let deadline = Instant::now() + p.timeout;
        let mut next_bookmark = Instant::now() + interval;
        ended.borrow_and_update();
        loop {
            changes.borrow_and_update();
            let batch = {
                let store = shared.store.lock().expect("store lock");
                store.events_after(p.res, after).map(|evs| (evs, store.current_rv()))
            };
            match batch {
                Err(e) => {
                    let _ = tx.send(line("ERROR", &e.to_status())).await;
                    return;
                }
                Ok((events, rv)) => {
                    for ev in &events {
                        if let Some((kind, obj)) = translate(ev, &p.filter) {
                            if tx.send(line(kind, obj)).await.is_err() {
                                return;
                            }
                        }
                    }
                    after = after.max(rv);
                }
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = sleep_until(next_bookmark), if p.bookmarks => {
                    next_bookmark = Instant::now() + interval;
                    if tx.send(bookmark(p.res, after, false)).await.is_err() {
                        return;
                    }
                }
                _ = sleep_until(deadline) => {
                    if p.bookmarks {
                        let _ = tx.send(bookmark(p.res, after, false)).await;
                    }
                    return;
                }
                _ = ended.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(ChannelBody { rx })
}
