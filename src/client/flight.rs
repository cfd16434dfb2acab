//! Single flight: callers that need the same request while one is in flight
//! wait for it and share its outcome, failure included. May import: std and
//! `tokio::sync`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// One request at a time, its outcome shared with the callers that waited.
#[derive(Debug)]
pub(crate) struct SingleFlight<T> {
    /// Requests completed.
    generation: AtomicU64,
    /// Held while a request is in flight; holds the last one's outcome.
    last: tokio::sync::Mutex<Option<T>>,
}

impl<T: Clone> SingleFlight<T> {
    pub(crate) fn new() -> Self {
        SingleFlight {
            generation: AtomicU64::new(0),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The outcome of a request that completed while this caller waited for
    /// the lock; else `kept()`, if it has an answer now (a success another
    /// request stored); else the outcome of `request()`, run now.
    ///
    /// `generation` is only written with the lock held, and the second load
    /// is made with it held, so the mutex orders that load after every
    /// write it can observe; the first load need only be no later than this
    /// caller's arrival. `Relaxed` therefore suffices for both.
    pub(crate) async fn run<F: Future<Output = T>>(
        &self,
        kept: impl FnOnce() -> Option<T>,
        request: impl FnOnce() -> F,
    ) -> T {
        let seen = self.generation.load(Ordering::Relaxed);
        let mut last = self.last.lock().await;
        if self.generation.load(Ordering::Relaxed) != seen
            && let Some(outcome) = last.as_ref()
        {
            return outcome.clone();
        }
        if let Some(answer) = kept() {
            return answer;
        }
        let outcome = request().await;
        *last = Some(outcome.clone());
        self.generation.fetch_add(1, Ordering::Relaxed);
        outcome
    }
}
