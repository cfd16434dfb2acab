//! When to try again, in one place: exponential backoff with full jitter, a
//! server's `Retry-After` (capped), the long hold after a refused credential,
//! and `retry_now`, which cuts any wait short.
//!
//! It lives in the client because the license refresh task
//! ([`super::LicenseVerifier::spawn_refresh`]) retries as the reporter's
//! senders and API-key check do, and the client must not import the
//! reporter, which sits on it. May import: std, tokio (`sync`, `time`) and
//! `fastrand`; nothing of the crate.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Shortest wait between attempts, so that a zero `Retry-After` or a tiny
/// jitter never turns into a busy loop.
pub(crate) const MIN_WAIT: Duration = Duration::from_millis(50);

/// How failed requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff ceiling (default 1 s); doubles per consecutive failure.
    pub base: Duration,
    /// Largest backoff (default 5 min). Also caps a server's `Retry-After`.
    pub cap: Duration,
    /// Wait after a failure that retrying soon will not fix: `401`/`403`,
    /// when the credential was refused, and `404`/`405`, when nothing takes
    /// reports at the URL (wrong `BEACON_WIRE` or base URL); default 15 min.
    /// `Reporter::retry_now` cuts it.
    pub credential_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            credential_backoff: Duration::from_secs(900),
        }
    }
}

/// Cuts every [`Backoff`] wait made with it short. Cheap to clone; clones
/// trigger the same waits.
///
/// A watch, not a `Notify`, so that a trigger while a task is busy with an
/// attempt (not yet waiting) still cuts the wait that follows it.
#[derive(Debug, Clone)]
pub(crate) struct RetryNow(Arc<watch::Sender<u64>>);

impl RetryNow {
    pub(crate) fn new() -> RetryNow {
        RetryNow(Arc::new(watch::channel(0).0))
    }

    /// Ends every current wait, and the next wait of a task busy with an
    /// attempt.
    pub(crate) fn trigger(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One task's retry state: consecutive failures, its jitter source and its
/// `retry_now` subscription.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    failures: u32,
    rng: fastrand::Rng,
    /// Subscribed when the task is made, not when it first runs, so that a
    /// trigger in between is not missed.
    retry_now: watch::Receiver<u64>,
}

impl Backoff {
    /// A backoff with no failures yet, jitter seeded from the OS.
    pub(crate) fn new(policy: RetryPolicy, retry_now: &RetryNow) -> Backoff {
        Backoff::seeded(policy, retry_now, fastrand::u64(..))
    }

    /// The same, with a fixed jitter seed (tests).
    pub(crate) fn seeded(policy: RetryPolicy, retry_now: &RetryNow, seed: u64) -> Backoff {
        Backoff {
            policy,
            failures: 0,
            rng: fastrand::Rng::with_seed(seed),
            retry_now: retry_now.0.subscribe(),
        }
    }

    /// Consecutive failures since the last [`reset`](Self::reset).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts from `base` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// A failure worth retrying soon; the wait before the next attempt.
    ///
    /// With a server's `retry_after`: that, capped at `cap`. Without: full
    /// jitter, uniform in `[0, min(cap, base · 2^(failures−1))]`. Either
    /// way at least [`MIN_WAIT`].
    pub(crate) fn retry(&mut self, retry_after: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = match retry_after {
            Some(d) => d.min(self.policy.cap),
            None => self.ceiling().mul_f64(self.rng.f64()),
        };
        wait.max(MIN_WAIT)
    }

    /// A failure that retrying soon will not fix (a refused credential, no
    /// report path, a setup error): the long hold,
    /// [`RetryPolicy::credential_backoff`].
    pub(crate) fn hold(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.credential_backoff
    }

    /// The jitter ceiling after the failures so far: `base` doubled per
    /// failure after the first, at most `cap`.
    fn ceiling(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(31);
        self.policy
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.policy.cap)
    }

    /// Called just before an attempt: a `retry_now` from here on cuts the
    /// wait after this attempt; one from before is answered by the attempt
    /// itself.
    pub(crate) fn attempting(&mut self) {
        self.retry_now.mark_unchanged();
    }

    /// Waits `d`, cut short by `retry_now` or when `interrupt` resolves.
    pub(crate) async fn sleep(&mut self, d: Duration, interrupt: impl Future) {
        let retry_now = async {
            if self.retry_now.changed().await.is_err() {
                // Every trigger is gone: nothing can cut the wait any more.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = retry_now => {}
            _ = interrupt => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(300),
        credential_backoff: Duration::from_secs(900),
    };

    fn backoff(seed: u64) -> Backoff {
        Backoff::seeded(POLICY, &RetryNow::new(), seed)
    }

    #[test]
    fn jitter_stays_within_the_doubling_ceiling() {
        for seed in 0..200 {
            let mut b = backoff(seed);
            for n in 1..=40u32 {
                let wait = b.retry(None);
                let ceiling = (POLICY.base * 2u32.pow((n - 1).min(9))).min(POLICY.cap);
                assert!(wait <= ceiling.max(MIN_WAIT), "{n}: {wait:?} > {ceiling:?}");
                assert!(wait >= MIN_WAIT);
                assert_eq!(b.ceiling(), ceiling, "{n}");
            }
            assert_eq!(b.ceiling(), POLICY.cap, "the doubling stops at the cap");
        }
    }

    #[test]
    fn jitter_is_full_and_seeded() {
        // Full jitter: the waits spread over the whole [0, ceiling] range.
        let mut b = backoff(7);
        for _ in 0..9 {
            b.retry(None);
        }
        let waits: Vec<Duration> = (0..500).map(|_| b.retry(None)).collect();
        assert!(waits.iter().any(|w| *w < POLICY.cap / 10));
        assert!(waits.iter().any(|w| *w > POLICY.cap * 9 / 10));
        // The same seed gives the same waits.
        let (mut x, mut y) = (backoff(42), backoff(42));
        for _ in 0..20 {
            assert_eq!(x.retry(None), y.retry(None));
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let mut b = backoff(1);
        let after = Duration::from_secs(42);
        assert_eq!(b.retry(Some(after)), after);
        assert_eq!(b.retry(Some(Duration::from_secs(86_400))), POLICY.cap);
        assert_eq!(b.retry(Some(Duration::ZERO)), MIN_WAIT);
        assert_eq!(b.failures(), 3, "a Retry-After still counts a failure");
    }

    #[test]
    fn hold_and_reset() {
        let mut b = backoff(3);
        assert_eq!(b.hold(), POLICY.credential_backoff);
        b.retry(None);
        b.retry(None);
        assert_eq!((b.failures(), b.ceiling()), (3, POLICY.base * 4));
        b.reset();
        assert_eq!((b.failures(), b.ceiling()), (0, POLICY.base));
        assert!(b.retry(None) <= POLICY.base);
    }

    #[tokio::test]
    async fn retry_now_cuts_the_wait_after_the_attempt() {
        let now = RetryNow::new();
        let mut b = Backoff::seeded(POLICY, &now, 0);
        // A trigger before the attempt is answered by the attempt...
        now.trigger();
        b.attempting();
        assert!(!b.retry_now.has_changed().unwrap());
        // ...one during it cuts the wait that follows (the guard only stops
        // a broken test from hanging).
        now.trigger();
        let wait = b.sleep(Duration::from_secs(900), std::future::pending::<()>());
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("retry_now ends the wait");
        // So does the interrupt.
        b.attempting();
        let wait = b.sleep(Duration::from_secs(900), std::future::ready(()));
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("the interrupt ends the wait");
    }
}
