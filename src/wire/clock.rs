//! Report windows: aligned to UTC multiples of the interval, tiling time.
//!
//! The first window of a process starts when the process starts; every later
//! window starts where the previous one ended, and windows end on UTC
//! multiples of the interval (with the default 300 s: `:00`, `:05`, `:10`, …).
//! So a process started at 09:02:17 reports `[09:02:17, 09:05:00)`, then
//! `[09:05:00, 09:10:00)`, and so on.
//!
//! The wall clock is read through the [`Clock`] trait so tests can move it
//! (including backwards). [`WindowClock`] stays sane whatever the clock does:
//! a window always has `to > from`, and no two windows overlap.

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use std::time::Duration;

/// The default report interval: 300 seconds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// The longest report interval [`WindowClock`] accepts: one day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// The resolution of window boundaries. Timestamps are cut to whole
/// milliseconds, and a window is never shorter than this.
pub const RESOLUTION: Duration = Duration::from_millis(1);

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
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
        let mut t = self.0.lock();
        *t += TimeDelta::from_std(d).expect("a test clock step fits in a TimeDelta");
    }

    /// Moves the time backwards by `d` (a wall-clock jump into the past).
    pub fn rewind(&self, d: Duration) {
        let mut t = self.0.lock();
        *t -= TimeDelta::from_std(d).expect("a test clock step fits in a TimeDelta");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock()
    }
}

/// Why a [`WindowClock`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The interval is not between [`RESOLUTION`] and [`MAX_INTERVAL`], or
    /// not a whole number of milliseconds.
    #[error(
        "report interval {0:?} is not usable: use a whole number of milliseconds \
         between 1 ms and 1 day (the default is 300 s)"
    )]
    BadInterval(Duration),
}

/// Cuts time into report windows. See the [module docs](self).
///
/// The clock does not read time itself: the caller passes `now` (from a
/// [`Clock`]), so the same rules apply to real and injected time.
#[derive(Debug, Clone)]
pub struct WindowClock {
    interval: TimeDelta,
    current_start: DateTime<Utc>,
}

impl WindowClock {
    /// A clock whose first window starts at `start` (process start),
    /// truncated to whole milliseconds.
    pub fn new(interval: Duration, start: DateTime<Utc>) -> Result<WindowClock, ClockError> {
        if interval < RESOLUTION
            || interval > MAX_INTERVAL
            || !interval.subsec_nanos().is_multiple_of(1_000_000)
        {
            return Err(ClockError::BadInterval(interval));
        }
        let interval =
            TimeDelta::from_std(interval).map_err(|_| ClockError::BadInterval(interval))?;
        Ok(WindowClock {
            interval,
            current_start: truncate(start),
        })
    }

    /// The report interval.
    pub fn interval(&self) -> Duration {
        self.interval.to_std().expect("the interval is positive")
    }

    /// Where the open window starts (the previous window's `to`).
    pub fn current_start(&self) -> DateTime<Utc> {
        self.current_start
    }

    /// The first UTC multiple of the interval strictly after
    /// [`current_start`](Self::current_start): where the open window is
    /// meant to close.
    pub fn next_boundary(&self) -> DateTime<Utc> {
        self.boundary_after(self.current_start)
    }

    /// How long to wait, at `now`, before closing the open window: the time
    /// to [`next_boundary`](Self::next_boundary), never more than one
    /// interval (if the wall clock jumped backwards, the boundary may be far
    /// away; waiting one interval keeps reports flowing) and zero if the
    /// boundary has passed.
    pub fn wait(&self, now: DateTime<Utc>) -> Duration {
        let until = self.next_boundary() - now;
        until
            .clamp(TimeDelta::zero(), self.interval)
            .to_std()
            .expect("clamped to a non-negative delta")
    }

    /// True if `now` is not after the open window's start, which happens only
    /// when the wall clock has jumped backwards (or has not moved).
    pub fn is_behind(&self, now: DateTime<Utc>) -> bool {
        truncate(now) <= self.current_start
    }

    /// Closes the open window at `now` and returns it as `(from, to)`, with
    /// `from < to`; the next window starts at `to`.
    ///
    /// * Normally `to` is the last UTC multiple of the interval at or before
    ///   `now`, so a late wake-up still cuts on the boundary.
    /// * If no boundary lies in `(from, now]` (an early close, e.g. the final
    ///   report at shutdown), `to` is `now` itself.
    /// * If `now` is not after `from` (the wall clock jumped backwards), `to`
    ///   is `from` plus [`RESOLUTION`]: time inside the reports moves on
    ///   slowly until the wall clock catches up, instead of overlapping
    ///   earlier windows. Use [`is_behind`](Self::is_behind) to notice.
    /// * A forward jump gives one long window up to the last boundary before
    ///   `now`.
    pub fn advance(&mut self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let from = self.current_start;
        let now = truncate(now);
        let to = if now <= from {
            from + TimeDelta::from_std(RESOLUTION).expect("1 ms fits")
        } else {
            let aligned = self.boundary_at_or_before(now);
            if aligned > from { aligned } else { now }
        };
        debug_assert!(to > from);
        self.current_start = to;
        (from, to)
    }

    fn boundary_at_or_before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let ms = t.timestamp_millis();
        let b = ms - ms.rem_euclid(self.interval.num_milliseconds());
        DateTime::from_timestamp_millis(b).expect("a boundary at or before a valid time is valid")
    }

    fn boundary_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.boundary_at_or_before(t) + self.interval
    }
}

/// `t` cut to whole milliseconds (towards the past).
fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("a truncated valid time is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn first_window_starts_at_process_start_then_aligns() {
        let mut c = WindowClock::new(DEFAULT_INTERVAL, t("2025-01-06T09:02:17.123456Z")).unwrap();
        assert_eq!(c.current_start(), t("2025-01-06T09:02:17.123Z"));
        assert_eq!(c.next_boundary(), t("2025-01-06T09:05:00Z"));
        assert_eq!(
            c.wait(t("2025-01-06T09:02:17.123Z")),
            Duration::from_millis(162_877)
        );
        // woke a little late: still cut on the boundary
        let w1 = c.advance(t("2025-01-06T09:05:00.040Z"));
        assert_eq!(
            w1,
            (t("2025-01-06T09:02:17.123Z"), t("2025-01-06T09:05:00Z"))
        );
        assert_eq!(c.next_boundary(), t("2025-01-06T09:10:00Z"));
        let w2 = c.advance(t("2025-01-06T09:10:00Z"));
        assert_eq!(w2, (t("2025-01-06T09:05:00Z"), t("2025-01-06T09:10:00Z")));
        assert_eq!(c.wait(t("2025-01-06T09:10:00Z")), secs(300));
        assert_eq!(c.wait(t("2025-01-06T09:20:00Z")), Duration::ZERO);
    }

    #[test]
    fn start_on_a_boundary_gives_a_full_first_window() {
        let mut c = WindowClock::new(secs(60), t("2025-01-06T09:00:00Z")).unwrap();
        assert_eq!(c.next_boundary(), t("2025-01-06T09:01:00Z"));
        assert_eq!(
            c.advance(t("2025-01-06T09:01:00Z")),
            (t("2025-01-06T09:00:00Z"), t("2025-01-06T09:01:00Z"))
        );
    }

    #[test]
    fn early_close_cuts_at_now_and_the_next_window_realigns() {
        let mut c = WindowClock::new(DEFAULT_INTERVAL, t("2025-01-06T09:00:00Z")).unwrap();
        let w = c.advance(t("2025-01-06T09:03:30Z"));
        assert_eq!(w, (t("2025-01-06T09:00:00Z"), t("2025-01-06T09:03:30Z")));
        assert_eq!(c.next_boundary(), t("2025-01-06T09:05:00Z"));
        let w = c.advance(t("2025-01-06T09:05:01Z"));
        assert_eq!(w, (t("2025-01-06T09:03:30Z"), t("2025-01-06T09:05:00Z")));
    }

    #[test]
    fn backward_jump_never_overlaps_and_recovers() {
        let clock = ManualClock::new(t("2025-01-06T09:00:00Z"));
        let mut c = WindowClock::new(DEFAULT_INTERVAL, clock.now()).unwrap();
        clock.advance(secs(300));
        let w1 = c.advance(clock.now());
        assert_eq!(w1.1, t("2025-01-06T09:05:00Z"));

        clock.rewind(secs(3600)); // 08:05
        assert!(c.is_behind(clock.now()));
        assert_eq!(
            c.wait(clock.now()),
            secs(300),
            "wait is capped at one interval"
        );
        let w2 = c.advance(clock.now());
        assert_eq!(w2.0, w1.1);
        assert_eq!(w2.1, t("2025-01-06T09:05:00.001Z"));
        let w3 = c.advance(clock.now());
        assert_eq!(w3, (w2.1, t("2025-01-06T09:05:00.002Z")));

        clock.set(t("2025-01-06T09:07:00Z")); // caught up, before the next boundary
        assert!(!c.is_behind(clock.now()));
        let w4 = c.advance(clock.now());
        assert_eq!(w4, (w3.1, t("2025-01-06T09:07:00Z")));
        clock.set(t("2025-01-06T09:10:00Z"));
        let w5 = c.advance(clock.now());
        assert_eq!(w5, (w4.1, t("2025-01-06T09:10:00Z")));
    }

    #[test]
    fn forward_jump_gives_one_long_aligned_window() {
        let clock = ManualClock::new(t("2025-01-06T09:01:00Z"));
        let mut c = WindowClock::new(DEFAULT_INTERVAL, clock.now()).unwrap();
        clock.advance(secs(7200 + 42));
        let w = c.advance(clock.now());
        assert_eq!(w, (t("2025-01-06T09:01:00Z"), t("2025-01-06T11:00:00Z")));
        assert_eq!(c.next_boundary(), t("2025-01-06T11:05:00Z"));
    }

    #[test]
    fn windows_tile_under_random_clock_jumps() {
        use proptest::prelude::*;
        proptest!(|(interval_ms in 1u64..600_000,
                    start_ms in 0i64..4_000_000_000_000,
                    steps in proptest::collection::vec(-900_000i64..900_000, 1..60))| {
            let start = DateTime::from_timestamp_millis(start_ms).unwrap();
            let mut c = WindowClock::new(Duration::from_millis(interval_ms), start).unwrap();
            let mut now = start;
            let mut prev_to = c.current_start();
            prop_assert_eq!(prev_to, start);
            for step in steps {
                now += TimeDelta::milliseconds(step);
                let boundary = c.next_boundary();
                prop_assert!(boundary > c.current_start());
                prop_assert_eq!(boundary.timestamp_millis() % interval_ms as i64, 0);
                prop_assert!(c.wait(now) <= Duration::from_millis(interval_ms));
                let (from, to) = c.advance(now);
                prop_assert_eq!(from, prev_to);
                prop_assert!(to > from);
                // `to` is an aligned boundary, or `now` (early close), or a
                // 1 ms nudge when the clock is behind
                let aligned = to.timestamp_millis() % interval_ms as i64 == 0;
                prop_assert!(aligned || to == now || to == from + TimeDelta::milliseconds(1));
                prop_assert!(to <= now.max(from + TimeDelta::milliseconds(1)));
                prev_to = to;
            }
        });
    }

    #[test]
    fn bad_intervals_are_rejected() {
        let start = t("2025-01-06T09:00:00Z");
        for bad in [
            Duration::ZERO,
            Duration::from_micros(1500),
            MAX_INTERVAL + secs(1),
        ] {
            let err = WindowClock::new(bad, start).unwrap_err();
            assert_eq!(err, ClockError::BadInterval(bad));
            assert!(err.to_string().contains("between 1 ms and 1 day"));
        }
        assert_eq!(
            WindowClock::new(MAX_INTERVAL, start).unwrap().interval(),
            MAX_INTERVAL
        );
    }

    #[test]
    fn system_clock_moves_forward() {
        let a = SystemClock.now();
        let b = std::sync::Arc::new(SystemClock).now();
        assert!(b >= a);
    }

    #[test]
    fn a_backward_jump_past_a_boundary_is_behind_and_waits_one_interval() {
        // Times given directly: this fails if the window clock ignores a
        // jump, whatever a test clock does (issue 10's surviving mutant).
        let mut c = WindowClock::new(DEFAULT_INTERVAL, t("2025-01-06T09:00:00Z")).unwrap();
        c.advance(t("2025-01-06T09:05:00Z"));
        let back = t("2025-01-06T08:05:00Z");
        assert!(c.is_behind(back));
        assert_eq!(c.next_boundary() - back, TimeDelta::minutes(65));
        assert_eq!(
            c.wait(back),
            secs(300),
            "65 minutes away, one interval waited"
        );
        assert!(
            c.is_behind(t("2025-01-06T09:05:00.000999Z")),
            "cut to whole ms"
        );
        assert!(!c.is_behind(t("2025-01-06T09:05:00.001Z")));
        assert_eq!(
            c.advance(back),
            (t("2025-01-06T09:05:00Z"), t("2025-01-06T09:05:00.001Z"))
        );
    }
}
