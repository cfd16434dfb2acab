//! Catch-up after an outage: how a backlog is batched and paced, so that a
//! fleet recovering at the same moment does not flood the Beacon.
//!
//! May import `std` and `chrono` only.
//!
//! * **Batching.** A backlog is sent as merged windows
//!   ([`crate::spool::Spool::next_to_send`]) of at most [`CATCH_UP_SPAN`].
//!   Six hours keeps four points a day of a site's usage (its daily shape)
//!   while a 35-day backlog (10 000 five-minute windows, the spool's
//!   default bound) becomes 140 reports instead of 10 000. The reference
//!   reporter sends a single report for a whole gap, so the Beacon takes
//!   wide spans; the cost of a report to it is per request, not per span.
//! * **Pacing.** Each destination's sender takes a token per report from a
//!   bucket of [`BURST`] tokens refilled at [`RATE_PER_SEC`]. A live
//!   process sends one report per interval and never waits; only a
//!   backlog is paced. At 20 reports/s a 35-day backlog drains in about 7 s,
//!   and a fleet of N processes recovering together sends at most 20·N
//!   reports/s, and only for those few seconds: N·140 reports in all, where
//!   unmerged it would be N·10 000 back to back. Their restarts are spread
//!   further by the retry backoff's full jitter (up to 5 min), which
//!   decides when each process finds the Beacon back.

use std::time::{Duration, Instant};

/// Widest span of a merged catch-up report.
pub(crate) const CATCH_UP_SPAN: chrono::TimeDelta = chrono::TimeDelta::hours(6);
/// Most windows merged into one catch-up report (a bound on the work of
/// one merge; 6 h of 5-minute windows is 72).
pub(crate) const CATCH_UP_WINDOWS: usize = 288;
/// Reports per second a sender sends at most, once its burst is spent.
pub(crate) const RATE_PER_SEC: f64 = 20.0;
/// Reports a sender may send back to back before pacing starts.
pub(crate) const BURST: f64 = 20.0;

/// A token bucket.
#[derive(Debug)]
pub(crate) struct Pacer {
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// A full bucket.
    pub(crate) fn new() -> Pacer {
        Pacer {
            tokens: BURST,
            last: Instant::now(),
        }
    }

    /// Takes a token for one report: how long to wait before sending it
    /// (zero while the bucket has tokens).
    pub(crate) fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * RATE_PER_SEC).min(BURST) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / RATE_PER_SEC)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        p.last = t0;
        for _ in 0..BURST as usize {
            assert_eq!(p.take(t0), Duration::ZERO);
        }
        // The next report waits one token's refill; the one after, two.
        let one = Duration::from_secs_f64(1.0 / RATE_PER_SEC);
        assert_eq!(p.take(t0), one);
        assert_eq!(p.take(t0), one * 2);
        // Idle long enough, the bucket is full again (and no fuller).
        let later = t0 + Duration::from_secs(60);
        for _ in 0..BURST as usize {
            assert_eq!(p.take(later), Duration::ZERO);
        }
        assert!(p.take(later) > Duration::ZERO);
    }
}
