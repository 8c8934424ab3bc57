//! Container restart back-off, as kubelet's CrashLoopBackOff: the first
//! restart is immediate, then 10 s, 20 s, 40 s … capped at 300 s; a container
//! that ran for 10 minutes without exiting starts the count over.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// A run this long resets the back-off.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// The wait before restart number `restarts_so_far + 1`, given how long
    /// the last run lasted.
    pub fn delay(&self, restarts_so_far: u32, last_run: Duration) -> Duration {
        if restarts_so_far == 0 || last_run >= self.reset_after {
            return Duration::ZERO;
        }
        let doublings = (restarts_so_far - 1).min(16);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_schedule() {
        let p = BackoffPolicy::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8).map(|n| p.delay(n, short).as_secs()).collect();
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(p.delay(5, Duration::from_secs(601)), Duration::ZERO);
        assert_eq!(p.delay(u32::MAX, short), Duration::from_secs(300));
    }
}
