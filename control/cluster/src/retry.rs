//! How the watches retry while the API server is away, and how an outage
//! (of a watch, or of the Lease's renewals) is reported.
//!
//! kube-rs's default back-off doubles up to 30 s, so after a two-minute
//! outage a watch may wait most of a minute after the server is back. The
//! appliance's watches are few and cheap, so they retry at most every 2 s:
//! state converges within seconds of the server's return. An outage is
//! logged once when it starts and once when it ends, with its length, not
//! at every retry.

use std::time::{Duration, Instant};

use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use tracing::{info, warn};

/// How long a call may wait for the API server to answer (kube-rs's default
/// is 295 s). A server that accepts a connection and then says nothing
/// (while it restarts, or overloaded) must not hold the pod source or the
/// agent's volume refresh for minutes: the call fails and is retried.
pub const READ_TIMEOUT: Duration = Duration::from_secs(25);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server keeps a watch open before ending it (the watcher
/// resumes it from its last version): under [`READ_TIMEOUT`], so that a
/// quiet watch is not taken for a dead server.
pub const WATCH_TIMEOUT_SECONDS: u32 = 20;

/// The first retry's wait.
const FIRST: Duration = Duration::from_millis(250);
/// The longest wait between two retries.
const CAP: Duration = Duration::from_secs(2);

/// A watcher config with the server-side timeout above.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_TIMEOUT_SECONDS)
}

/// Exponential back-off from 250 ms, doubling up to 2 s, each wait shortened
/// by up to a quarter so that watches started together do not retry in step.
#[derive(Debug)]
pub struct WatchBackoff {
    next: Duration,
    jitter: u64,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        WatchBackoff { next: FIRST, jitter: (seed as u64) | 1 }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(CAP);
        // xorshift: a cheap, good-enough spread.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let quarter = wait.as_millis() as u64 / 4;
        Some(wait - Duration::from_millis(self.jitter % (quarter + 1)))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// How long a watch must go without an error, after failing, to count as
/// working again. A watch that resumes without a change to report yields no
/// event: its silence is the sign (errors come at least every 2 s while it
/// fails, see [`WatchBackoff`]).
pub const QUIET: Duration = Duration::from_secs(5);

/// One watch's outage: logged when it starts, and when it ends with how
/// long it lasted and how many attempts failed.
#[derive(Debug)]
pub struct OutageLog {
    source: &'static str,
    /// When it started, the failed attempts, and the last failure.
    since: Option<(Instant, u64, Instant)>,
}

impl OutageLog {
    pub fn new(source: &'static str) -> OutageLog {
        OutageLog { source, since: None }
    }

    /// A failed attempt: logged only if it starts an outage.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        match &mut self.since {
            Some((_, attempts, last)) => {
                *attempts += 1;
                *last = now;
            }
            None => {
                warn!(source = %self.source, "API calls failing: {error}; retrying, quietly until they work");
                self.since = Some((now, 1, now));
            }
        }
    }

    /// A successful event: ends an outage, if there was one, and says so.
    pub fn succeeded(&mut self) {
        if let Some((since, attempts, _)) = self.since.take() {
            let lasted = since.elapsed();
            info!(source = %self.source, ?lasted, attempts, "API calls working again after {lasted:.1?}");
        }
    }

    /// Called now and then: a failing watch that has been quiet for
    /// [`QUIET`] is working again.
    pub fn tick(&mut self) {
        if self.since.is_some_and(|(_, _, last)| last.elapsed() >= QUIET) {
            self.succeeded();
        }
    }

    /// Whether an outage is in progress.
    pub fn in_outage(&self) -> bool {
        self.since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_two_seconds_and_start_over_on_reset() {
        let mut b = WatchBackoff::default();
        let waits: Vec<Duration> = b.by_ref().take(8).collect();
        for (w, nominal) in waits.iter().zip([250, 500, 1000, 2000, 2000, 2000, 2000, 2000]) {
            let nominal = Duration::from_millis(nominal);
            assert!(*w <= nominal && *w >= nominal * 3 / 4, "{w:?} for {nominal:?}");
        }
        b.reset();
        assert!(b.next().is_some_and(|w| w <= FIRST));
    }

    #[test]
    fn an_outage_is_counted_once_and_ends_on_success() {
        let mut log = OutageLog::new("test");
        assert!(!log.in_outage());
        log.failed(&"connection refused");
        log.failed(&"connection refused");
        assert!(log.in_outage());
        assert_eq!(log.since.map(|(_, n, _)| n), Some(2));
        log.tick();
        assert!(log.in_outage(), "not quiet long enough yet");
        log.succeeded();
        assert!(!log.in_outage());
    }
}
