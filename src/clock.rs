//! Wall-clock time for the shell: the [`Clock`] trait the reporter reads
//! time through, the system clock, and a clock tests move by hand (also
//! backwards). The window arithmetic on the times read is pure and lives in
//! [`crate::wire::tiling`].
//!
//! Layer: shell. May import chrono, parking_lot and `crate::wire`; must not
//! import `crate::cli`.

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use std::time::Duration;

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock ([`Utc::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to: for tests, including clock jumps.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock that reads `start` until moved.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    /// Sets the time, forwards or backwards.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock() = t;
    }

    /// Moves the time forwards by `d`.
    pub fn advance(&self, d: Duration) {
        *self.0.lock() += step(d);
    }

    /// Moves the time backwards by `d` (a wall-clock jump into the past).
    pub fn rewind(&self, d: Duration) {
        *self.0.lock() -= step(d);
    }
}

fn step(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).expect("a test clock step fits in a TimeDelta")
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_moves_forward() {
        let a = SystemClock.now();
        let b = std::sync::Arc::new(SystemClock).now();
        assert!(b >= a);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start: DateTime<Utc> = "2025-01-06T09:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + TimeDelta::seconds(90));
        clock.rewind(Duration::from_secs(3600));
        assert_eq!(clock.now(), start - TimeDelta::seconds(3510));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
