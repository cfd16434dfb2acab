//! Report windows: aligned to UTC multiples of the interval, tiling time.
//!
//! The first window of a process starts when the process starts; every later
//! window starts where the previous one ended, and windows end on UTC
//! multiples of the interval (with the default 300 s: `:00`, `:05`, `:10`, …).
//! So a process started at 09:02:17 reports `[09:02:17, 09:05:00)`, then
//! `[09:05:00, 09:10:00)`, and so on.
//!
//! This module only computes: the caller reads the wall clock (the shell's
//! `crate::clock::Clock`) and passes the time in. [`WindowClock`] stays
//! sane whatever the clock does: a window always has `to > from`, and no
//! two windows overlap.
//!
//! Layer: wire (pure). May import chrono, thiserror and
//! `std::time::Duration`; must not read a clock, sleep or import the shell.

use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// The default report interval: 300 seconds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// The longest report interval [`WindowClock`] accepts: one day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// The resolution of window boundaries. Timestamps are cut to whole
/// milliseconds, and a window is never shorter than this.
pub const RESOLUTION: Duration = Duration::from_millis(1);

/// Why a [`WindowClock`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
/// The clock does not read time itself: the caller passes `now` (from the
/// shell's `Clock`), so the same rules apply to real and injected time.
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
        boundary_at_or_before(self.current_start, self.interval()) + self.interval
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
            let aligned = boundary_at_or_before(now, self.interval());
            if aligned > from { aligned } else { now }
        };
        debug_assert!(to > from);
        self.current_start = to;
        (from, to)
    }
}

/// The last UTC multiple of `interval` at or before `t`: where the window
/// holding `t` starts. The interval is taken in whole milliseconds, at
/// least one; `t` itself if the boundary is outside chrono's range.
pub fn boundary_at_or_before(t: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = i64::try_from(interval.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let ms = t.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(step)).unwrap_or(t)
}

/// `t` cut to whole milliseconds (towards the past), the resolution of
/// window boundaries.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
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
        let mut now = t("2025-01-06T09:00:00Z");
        let mut c = WindowClock::new(DEFAULT_INTERVAL, now).unwrap();
        now += TimeDelta::seconds(300);
        let w1 = c.advance(now);
        assert_eq!(w1.1, t("2025-01-06T09:05:00Z"));

        now -= TimeDelta::seconds(3600); // 08:05
        assert!(c.is_behind(now));
        assert_eq!(c.wait(now), secs(300), "wait is capped at one interval");
        let w2 = c.advance(now);
        assert_eq!(w2.0, w1.1);
        assert_eq!(w2.1, t("2025-01-06T09:05:00.001Z"));
        let w3 = c.advance(now);
        assert_eq!(w3, (w2.1, t("2025-01-06T09:05:00.002Z")));

        now = t("2025-01-06T09:07:00Z"); // caught up, before the next boundary
        assert!(!c.is_behind(now));
        let w4 = c.advance(now);
        assert_eq!(w4, (w3.1, t("2025-01-06T09:07:00Z")));
        let w5 = c.advance(t("2025-01-06T09:10:00Z"));
        assert_eq!(w5, (w4.1, t("2025-01-06T09:10:00Z")));
    }

    #[test]
    fn forward_jump_gives_one_long_aligned_window() {
        let start = t("2025-01-06T09:01:00Z");
        let mut c = WindowClock::new(DEFAULT_INTERVAL, start).unwrap();
        let w = c.advance(start + TimeDelta::seconds(7200 + 42));
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
    fn boundary_at_or_before_aligns_to_utc_multiples() {
        let five = DEFAULT_INTERVAL;
        let at = |s| boundary_at_or_before(t(s), five);
        assert_eq!(at("2025-01-06T09:07:59.999Z"), t("2025-01-06T09:05:00Z"));
        assert_eq!(at("2025-01-06T09:05:00Z"), t("2025-01-06T09:05:00Z"));
        assert_eq!(at("1969-12-31T23:58:00Z"), t("1969-12-31T23:55:00Z"));
        let odd = t("2025-01-06T09:07:00.5Z");
        assert_eq!(
            boundary_at_or_before(odd, Duration::ZERO),
            odd,
            "1 ms at least"
        );
        assert_eq!(
            truncate(t("2025-01-06T09:07:00.123999Z")),
            t("2025-01-06T09:07:00.123Z")
        );
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
