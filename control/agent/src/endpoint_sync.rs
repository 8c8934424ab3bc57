//! How far the Service side has followed the agent's pods, so that a pod is
//! told to stop only once no new connection can be sent to it.
//!
//! In standalone mode the Service side computes endpoints from the pods the
//! agent reports, every few hundred milliseconds. A pod that is going away is
//! first reported terminating (its endpoint is then no longer ready and gets
//! no new flows); if its containers got SIGTERM at that same moment, a
//! server that stops listening on SIGTERM (as a draining server does) would
//! refuse the new connections that the tables still send it until the next
//! round. So the pod's worker waits here for the rounds to pass before it
//! stops the containers. Kubernetes leaves this race to the user (a preStop
//! sleep); here both sides are in one process, so the agent can wait for the
//! Service side instead.
//!
//! Without a Service side following the pods (no standalone Services: the
//! rounds never start) nothing waits.

use std::time::Duration;

use tokio::sync::{watch, Notify};

/// Rounds a terminating pod waits for: the round running when it was marked
/// may have read the pods before, the next one reads them after.
const ROUNDS: u64 = 2;

/// After the round that withdrew the endpoint, the tables are compiled and
/// published (the sync coalesces for at most 50 ms) and the cores pick up
/// the new snapshot: a little time for that.
const PUBLISH_MARGIN: Duration = Duration::from_millis(100);

/// Counts the Service side's rounds over the pods, and tells it when a pod
/// changed in a way that matters to endpoints, so that it need not wait for
/// its next period.
pub struct EndpointSync {
    rounds: watch::Sender<u64>,
    pods_changed: Notify,
}

impl Default for EndpointSync {
    fn default() -> EndpointSync {
        EndpointSync { rounds: watch::channel(0).0, pods_changed: Notify::new() }
    }
}

impl EndpointSync {
    /// A pod's status (readiness, address, phase) or its terminating mark
    /// changed: the Service side should look now.
    pub fn pods_changed(&self) {
        self.pods_changed.notify_one();
    }

    /// Resolves at the next [`EndpointSync::pods_changed`] (at once if one
    /// came since the last call).
    pub async fn pods_change(&self) {
        self.pods_changed.notified().await;
    }

    /// The Service side has read the pods and handed on what follows from
    /// them (new endpoints, or nothing when nothing changed).
    pub fn round_done(&self) {
        self.rounds.send_modify(|n| *n += 1);
    }

    /// Waits until the pods as they are now, a terminating one among them,
    /// have reached the tables: two more rounds and the time to publish, at
    /// most `limit` (a pod's grace period bounds its stop, this included).
    /// Returns at once when no Service side follows the pods.
    pub async fn withdrawn(&self, limit: Duration) {
        let mut rounds = self.rounds.subscribe();
        let start = *rounds.borrow_and_update();
        if start == 0 {
            return;
        }
        let waited = async {
            while *rounds.borrow_and_update() < start + ROUNDS {
                if rounds.changed().await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(PUBLISH_MARGIN).await;
        };
        let _ = tokio::time::timeout(limit, waited).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn nothing_waits_without_a_service_side() {
        let sync = EndpointSync::default();
        let start = Instant::now();
        sync.withdrawn(Duration::from_secs(5)).await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn waits_for_two_rounds_and_the_publication() {
        let sync = Arc::new(EndpointSync::default());
        sync.round_done();
        let waiter = {
            let sync = sync.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                sync.withdrawn(Duration::from_secs(5)).await;
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        sync.round_done();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "one round is not enough: it may have read the pods before");
        sync.round_done();
        let waited = waiter.await.expect("waiter");
        assert!(waited >= Duration::from_millis(100) + PUBLISH_MARGIN, "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn a_stalled_service_side_holds_a_pod_only_up_to_the_limit() {
        let sync = EndpointSync::default();
        sync.round_done();
        let start = Instant::now();
        sync.withdrawn(Duration::from_millis(200)).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2), "{waited:?}");
    }
}
