//! The agent's Events, written to the API server as the kubelet's are:
//! `source.component: kubelet` and the node as host, the same event again
//! aggregated into one object whose `count` grows, and a spam filter per
//! involved object (a burst of 25 writes, then one per 10 s), so that a
//! crash loop does not flood the API. The agent never waits for any of it:
//! events go through a bounded queue, and what overflows is counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use agent::events::{AgentEvent, EventSink};

/// Events waiting to be written; more are dropped (and counted).
const QUEUE: usize = 1024;
/// The spam filter: writes per involved object in a burst, and the refill.
const BURST: f64 = 25.0;
const REFILL_EVERY: Duration = Duration::from_secs(10);
/// Aggregated events remembered, at most (then forgotten all at once).
const REMEMBERED: usize = 4096;

/// The agent's side: hands events to the writer without waiting.
pub struct ApiEvents {
    queue: mpsc::Sender<AgentEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink for ApiEvents {
    fn emit(&self, event: AgentEvent) {
        if self.queue.try_send(event).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("switchyard_events_dropped_total").absolute(dropped);
        }
    }
}

/// The sink for the agent and the writer task to spawn.
pub fn channel(
    client: kube::Client,
    node_name: String,
    shutdown: watch::Receiver<bool>,
) -> (ApiEvents, impl std::future::Future<Output = ()>) {
    let (queue, events) = mpsc::channel(QUEUE);
    (ApiEvents { queue, dropped: Arc::new(AtomicU64::new(0)) }, run(client, node_name, events, shutdown))
}

/// One event as written: its name, and how often it happened.
struct Written {
    name: String,
    count: i32,
}

/// The spam filter's bucket for one involved object.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() / REFILL_EVERY.as_secs_f64()).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn run(
    client: kube::Client,
    node_name: String,
    mut events: mpsc::Receiver<AgentEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut written: HashMap<(String, &'static str, String, String), Written> = HashMap::new();
    let mut buckets: HashMap<String, Bucket> = HashMap::new();
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            e = events.recv() => match e { Some(e) => e, None => return },
        };
        let now = Instant::now();
        let object_key = format!("{}/{}/{}", event.object.namespace, event.object.name, event.object.uid);
        let allowed = buckets.entry(object_key.clone()).or_insert(Bucket { tokens: BURST, at: now }).take(now);
        if written.len() > REMEMBERED {
            written.clear();
            buckets.retain(|_, b| b.tokens < BURST);
        }
        // Pods' events live in their namespace; the node's in "default", as
        // the kubelet's do.
        let namespace =
            if event.object.namespace.is_empty() { "default".to_string() } else { event.object.namespace.clone() };
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        let key = (object_key, event.reason, event.message.clone(), event.type_.as_str().to_string());
        let stamp = Time(node::now());
        match written.get_mut(&key) {
            Some(w) => {
                w.count += 1;
                if !allowed {
                    continue;
                }
                let patch = serde_json::json!({"count": w.count, "lastTimestamp": stamp});
                if let Err(e) = api.patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    debug!(event = %w.name, "updating an event failed: {e}");
                }
            }
            None => {
                if !allowed {
                    continue;
                }
                let nanos =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                let name = format!("{}.{nanos:x}", event.object.name);
                let body = Event {
                    metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..Default::default() },
                    involved_object: ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some(event.object.kind.into()),
                        namespace: (!event.object.namespace.is_empty()).then(|| event.object.namespace.clone()),
                        name: Some(event.object.name.clone()),
                        uid: Some(event.object.uid.clone()),
                        ..Default::default()
                    },
                    reason: Some(event.reason.into()),
                    message: Some(event.message),
                    type_: Some(event.type_.as_str().into()),
                    source: Some(EventSource { component: Some("kubelet".into()), host: Some(node_name.clone()) }),
                    first_timestamp: Some(stamp.clone()),
                    last_timestamp: Some(stamp),
                    count: Some(1),
                    reporting_component: Some("switchyard".into()),
                    reporting_instance: Some(node_name.clone()),
                    event_time: None::<MicroTime>,
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &body).await {
                    Ok(_) => {
                        written.insert(key, Written { name, count: 1 });
                    }
                    Err(e) => debug!(reason = %body.reason.unwrap_or_default(), "writing an event failed: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spam_filter_allows_a_burst_then_one_per_refill() {
        let start = Instant::now();
        let mut b = Bucket { tokens: BURST, at: start };
        let allowed = (0..40).filter(|_| b.take(start)).count();
        assert_eq!(allowed, 25);
        assert!(!b.take(start + REFILL_EVERY / 2));
        assert!(b.take(start + REFILL_EVERY * 2));
    }
}
