//! The lock-free metering core.
//!
//! This module knows nothing of time, async, HTTP or JSON. It counts, and it
//! cuts the counts into windows when asked to.
//!
//! * [`Meter`] is the shared handle. [`Meter::record_run`] finds this
//!   thread's slot through a one-load thread cache.
//! * [`LocalMeter`] (from [`Meter::local`]) is a per-thread handle with no
//!   lookup at all.
//! * [`Meter::rotate`] closes the current window and returns it as a
//!   [`Window`].
//! * [`Meter::attach`] gives one owner at a time (a reporter) an
//!   [`Attachment`] to close and checkpoint windows through, so that a
//!   second owner cannot deliver counts the first one saved.
//!
//! Each writer thread owns a cache-padded slot of monotonic counters and
//! writes it with plain loads and stores bracketed by a sequence number (see
//! `slot.rs`). Rotation reads every slot consistently and subtracts what it
//! read last time. Writers never wait, never lock and never allocate after
//! their first record; rotation never holds anything a writer needs.
//!
//! May import `std`, `crossbeam_utils` and `crate::sync` (every atomic,
//! lock, cell and thread-local goes through it, for loom); nothing of the
//! shell (no tokio, HTTP, JSON or time).

mod attach;
mod local;
mod slot;

pub use attach::{AttachError, Attachment};
pub use local::LocalMeter;

use crate::sync::Arc;
use crate::sync::{self, AtomicU64, Mutex, Ordering};
use slot::{SlotList, Snapshot};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The measure name of graph runs, as the Beacon protocol spells it.
pub const RUNS: &str = "langgraph.platform.runs";
/// The measure name of graph nodes, as the Beacon protocol spells it.
pub const NODES: &str = "langgraph.platform.nodes";
/// The largest number of custom counters one meter can carry.
pub const MAX_CUSTOM_COUNTERS: usize = 64;
/// The largest number of gauges one meter can carry.
pub const MAX_GAUGES: usize = 64;

/// A handle to a custom counter, returned by [`MeterBuilder::counter`] and
/// [`Meter::counter_id`].
///
/// It belongs to the meter it was registered on: recording it on another
/// meter panics, before anything is recorded, with a message naming both
/// meters (never into another meter's counter).
///
/// The check is the bounds check that indexing the counters needs anyway,
/// plus one subtraction: each meter owns its own range of keys,
/// `[id × MAX_CUSTOM_COUNTERS, (id + 1) × MAX_CUSTOM_COUNTERS)`, and the
/// writer's slot holds its meter's range start, so `key − start` is a valid
/// counter index for this meter's ids and out of bounds (wrapping) for every
/// other meter's. `examples/hotpath.rs` measures it (`BENCHMARKS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterId {
    /// `meter id × MAX_CUSTOM_COUNTERS + index among the meter's custom
    /// counters`. Meter ids count from 1 and would need 2^58 meters to
    /// overflow this, so two meters' ranges never meet.
    key: u64,
}

impl CounterId {
    /// The id of custom counter `index` of meter `meter`.
    fn new(meter: u64, index: usize) -> CounterId {
        debug_assert!(index < MAX_CUSTOM_COUNTERS);
        CounterId {
            key: key_base(meter) + index as u64,
        }
    }

    /// The meter it belongs to, and its index there (for messages).
    pub(crate) fn parts(self) -> (u64, u64) {
        let per = MAX_CUSTOM_COUNTERS as u64;
        (self.key / per, self.key % per)
    }
}

/// The first key of meter `meter`'s range of [`CounterId`] keys.
pub(crate) fn key_base(meter: u64) -> u64 {
    meter * MAX_CUSTOM_COUNTERS as u64
}

/// What kind of value a measure holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasureKind {
    /// A count of events within the window (runs, nodes, custom counters).
    /// Windows of counters can be summed.
    Counter,
    /// A value sampled when the window closes (e.g. graphs loaded). Of two
    /// adjacent windows, the later value stands.
    Gauge,
}

/// A gauge callback: sampled once each time a window closes.
type GaugeFn = Box<dyn Fn() -> u64 + Send + Sync>;

/// Why a meter could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeterError {
    /// The measure name is empty, too long, or has characters outside
    /// `[A-Za-z0-9._-]`.
    InvalidName(String),
    /// The measure name is already registered on this meter.
    DuplicateName(String),
    /// More than [`MAX_CUSTOM_COUNTERS`] counters or [`MAX_GAUGES`] gauges.
    TooMany {
        /// "counters" or "gauges".
        kind: &'static str,
        /// The limit that was hit.
        limit: usize,
    },
}

impl fmt::Display for MeterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeterError::InvalidName(n) => write!(
                f,
                "measure name {n:?} is invalid: use 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-'"
            ),
            MeterError::DuplicateName(n) => write!(
                f,
                "measure name {n:?} is registered twice on this meter: give each measure its own name"
            ),
            MeterError::TooMany { kind, limit } => write!(
                f,
                "a meter holds at most {limit} custom {kind}: fold rarely used measures together"
            ),
        }
    }
}

impl std::error::Error for MeterError {}

/// Builds a [`Meter`] with custom counters and gauges.
///
/// ```
/// let mut b = beacon_meter::Meter::builder();
/// let tokens = b.counter("myplatform.tokens").unwrap();
/// b.gauge("langgraph.platform.py_graphs", || 3).unwrap();
/// let meter = b.build();
/// meter.record(tokens, 120);
/// let w = meter.rotate();
/// assert_eq!(w.get("myplatform.tokens"), Some(120));
/// assert_eq!(w.get("langgraph.platform.py_graphs"), Some(3));
/// ```
pub struct MeterBuilder {
    /// The id the meter will have, fixed now so that the builder's
    /// [`CounterId`]s carry it. Ids start at 1: 0 means "no meter" in the
    /// thread cache.
    id: u64,
    counters: Vec<String>,
    gauges: Vec<(String, GaugeFn)>,
}

impl Default for MeterBuilder {
    fn default() -> Self {
        MeterBuilder {
            id: sync::next_id(),
            counters: Vec::new(),
            gauges: Vec::new(),
        }
    }
}

impl fmt::Debug for MeterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeterBuilder")
            .field("id", &self.id)
            .field("counters", &self.counters)
            .field(
                "gauges",
                &self.gauges.iter().map(|g| &g.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl MeterBuilder {
    fn check_name(&self, name: &str) -> Result<(), MeterError> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(MeterError::InvalidName(name.to_owned()));
        }
        let taken = name == RUNS
            || name == NODES
            || self.counters.iter().any(|c| c == name)
            || self.gauges.iter().any(|g| g.0 == name);
        if taken {
            return Err(MeterError::DuplicateName(name.to_owned()));
        }
        Ok(())
    }

    /// Registers a custom counter. It is recorded through the same hot path
    /// as runs and nodes ([`Meter::record`], [`LocalMeter::record`]).
    pub fn counter(&mut self, name: &str) -> Result<CounterId, MeterError> {
        self.check_name(name)?;
        if self.counters.len() == MAX_CUSTOM_COUNTERS {
            return Err(MeterError::TooMany {
                kind: "counters",
                limit: MAX_CUSTOM_COUNTERS,
            });
        }
        self.counters.push(name.to_owned());
        Ok(CounterId::new(self.id, self.counters.len() - 1))
    }

    /// Registers a gauge: `sample` is called once each time a window closes,
    /// and its value is reported under `name`.
    ///
    /// A gauge that panics does not break rotation: its value is left out of
    /// that window and its name is listed in [`Window::gauge_failures`].
    pub fn gauge(
        &mut self,
        name: &str,
        sample: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Result<(), MeterError> {
        self.check_name(name)?;
        if self.gauges.len() == MAX_GAUGES {
            return Err(MeterError::TooMany {
                kind: "gauges",
                limit: MAX_GAUGES,
            });
        }
        self.gauges.push((name.to_owned(), Box::new(sample)));
        Ok(())
    }

    /// Builds the meter. Its first window opens now.
    pub fn build(self) -> Meter {
        let mut names: Vec<String> = vec![RUNS.to_owned(), NODES.to_owned()];
        names.extend(self.counters.iter().cloned());
        let counters = names.len();
        let mut gauge_fns = Vec::with_capacity(self.gauges.len());
        for (name, f) in self.gauges {
            names.push(name);
            gauge_fns.push(f);
        }
        let id = self.id;
        Meter {
            id,
            inner: Arc::new(Inner {
                id,
                slots: SlotList::new(id, self.counters.len()),
                schema: Arc::new(Schema { names, counters }),
                gauges: gauge_fns,
                rotor: Mutex::new(Rotor::default()),
                owner: Mutex::new(attach::Owner::default()),
                windows: AtomicU64::new(0),
            }),
        }
    }
}

/// The names of a meter's measures: counters first (runs, nodes, custom),
/// then gauges.
#[derive(Debug)]
struct Schema {
    names: Vec<String>,
    counters: usize,
}

impl Schema {
    /// The kind of measure `i`.
    fn kind(&self, i: usize) -> MeasureKind {
        if i < self.counters {
            MeasureKind::Counter
        } else {
            MeasureKind::Gauge
        }
    }
}

/// What only the rotator touches, behind the rotation lock. Writers never
/// take this lock.
#[derive(Default)]
struct Rotor {
    /// Per slot index: the counters as the last rotation read them.
    /// Invariant: `baselines[i]` is what slot `i` held at the end of the
    /// last window; a slot with no entry yet started from zero.
    baselines: Vec<Snapshot>,
    /// Scratch buffer for snapshots, to avoid allocating per slot.
    scratch: Snapshot,
}

pub(crate) struct Inner {
    id: u64,
    slots: SlotList,
    schema: Arc<Schema>,
    gauges: Vec<GaugeFn>,
    rotor: Mutex<Rotor>,
    /// Who closes this meter's windows for delivery (see `attach.rs`).
    owner: Mutex<attach::Owner>,
    /// Number of windows closed so far (the next window's sequence number).
    windows: AtomicU64,
}

/// The shared metering handle. Cheap to clone; clones share the counters.
///
/// Recording through `Meter` finds the calling thread's slot through a
/// thread cache (one thread-local load and a compare). Hot loops that can
/// keep a handle should use [`Meter::local`], which skips even that.
///
/// ```
/// let meter = beacon_meter::Meter::new();
/// meter.record_run(3);
/// meter.record_nodes(2);
/// let w = meter.rotate();
/// assert_eq!((w.runs(), w.nodes()), (1, 5));
/// assert_eq!(meter.rotate().runs(), 0);
/// ```
#[derive(Clone)]
pub struct Meter {
    /// Copy of `inner.id`, kept here so the hot path compares without a
    /// pointer chase.
    id: u64,
    inner: Arc<Inner>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("id", &self.id)
            .field("measures", &self.inner.schema.names)
            .field("slots", &self.inner.slots.len())
            .finish()
    }
}

impl Meter {
    /// A meter with the two built-in counters, runs and nodes.
    pub fn new() -> Self {
        MeterBuilder::default().build()
    }

    /// A builder, to add custom counters and gauges.
    pub fn builder() -> MeterBuilder {
        MeterBuilder::default()
    }

    /// A per-thread handle with no per-call lookup. See [`LocalMeter`].
    pub fn local(&self) -> LocalMeter {
        LocalMeter::new(self.inner.clone())
    }

    /// Records one graph run that executed `nodes` nodes, as one indivisible
    /// record: the run and its nodes always land in the same window.
    #[inline]
    pub fn record_run(&self, nodes: u64) {
        local::with_slot(self, move |s| s.record_run(nodes));
    }

    /// Records `n` nodes executed outside a completed run.
    #[inline]
    pub fn record_nodes(&self, n: u64) {
        local::with_slot(self, move |s| s.record_nodes(n));
    }

    /// Adds `n` to a custom counter.
    ///
    /// # Panics
    /// If `id` was registered on another meter (nothing is recorded).
    #[inline]
    pub fn record(&self, id: CounterId, n: u64) {
        local::with_slot(self, move |s| s.record_custom(id, n));
    }

    /// Records a run of `nodes` nodes together with custom counter amounts,
    /// all in one indivisible record.
    ///
    /// # Panics
    /// If an id was registered on another meter (nothing is recorded).
    #[inline]
    pub fn record_run_with(&self, nodes: u64, extra: &[(CounterId, u64)]) {
        local::with_slot(self, move |s| s.record_run_with(nodes, extra));
    }

    /// The id of a custom counter registered under `name`.
    pub fn counter_id(&self, name: &str) -> Option<CounterId> {
        let s = &self.inner.schema;
        s.names[2..s.counters]
            .iter()
            .position(|n| n == name)
            .map(|index| CounterId::new(self.id, index))
    }

    /// Every measure name, counters first, with its kind.
    pub fn measures(&self) -> impl Iterator<Item = (&str, MeasureKind)> {
        let s = &self.inner.schema;
        s.names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), s.kind(i)))
    }

    /// The number of writer slots ever created: the most threads that have
    /// held a slot at once. Retired threads' slots are reused, so this stays
    /// bounded as thread pools churn.
    pub fn slot_count(&self) -> usize {
        self.inner.slots.len()
    }

    /// Closes the current window and opens the next one, returning the
    /// closed window's counts.
    ///
    /// Every record lands in exactly one window. A record that is in flight
    /// during the rotation lands whole in this window or whole in the next.
    /// Rotation waits (briefly) only for a writer that is in the middle of a
    /// record; writers never wait for rotation. Concurrent rotations are
    /// serialised.
    pub fn rotate(&self) -> Window {
        self.read(true)
    }

    /// The current, still open window's counts so far, without closing it.
    /// The next [`rotate`](Self::rotate) still returns everything recorded
    /// since the last one.
    pub fn peek(&self) -> Window {
        self.read(false)
    }

    fn read(&self, close: bool) -> Window {
        let inner = &*self.inner;
        let schema = &inner.schema;
        let mut values = vec![0u64; schema.names.len()];
        let mut guard = sync::lock(&inner.rotor);
        let Rotor { baselines, scratch } = &mut *guard;
        for slot in inner.slots.iter() {
            slot.snapshot_into(scratch);
            let i = slot.index();
            if baselines.len() <= i {
                baselines.resize_with(i + 1, Vec::new);
            }
            let base = &mut baselines[i];
            if base.is_empty() {
                base.resize(scratch.len(), 0);
            }
            for (k, (now, then)) in scratch.iter().zip(base.iter()).enumerate() {
                values[k] = values[k].wrapping_add(now.wrapping_sub(*then));
            }
            if close {
                base.copy_from_slice(scratch);
            }
        }
        let sequence = if close {
            // Relaxed: read and written only under the rotation lock.
            inner.windows.fetch_add(1, Ordering::Relaxed)
        } else {
            inner.windows.load(Ordering::Relaxed)
        };
        drop(guard);
        let mut gauge_failures = Vec::new();
        for (g, f) in inner.gauges.iter().enumerate() {
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(v) => values[schema.counters + g] = v,
                Err(_) => gauge_failures.push(schema.counters + g),
            }
        }
        Window {
            sequence,
            schema: schema.clone(),
            values,
            gauge_failures,
        }
    }
}

/// The counts of one closed (or, from [`Meter::peek`], still open) window.
#[derive(Clone)]
pub struct Window {
    sequence: u64,
    schema: Arc<Schema>,
    values: Vec<u64>,
    gauge_failures: Vec<usize>,
}

impl Window {
    /// Graph runs in this window.
    pub fn runs(&self) -> u64 {
        self.values[0]
    }

    /// Graph nodes in this window.
    pub fn nodes(&self) -> u64 {
        self.values[1]
    }

    /// The 0-based number of this window since the meter was built.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// A measure by name, or `None` if the meter has no such measure (or the
    /// gauge panicked while being sampled).
    pub fn get(&self, name: &str) -> Option<u64> {
        let i = self.schema.names.iter().position(|n| n == name)?;
        (!self.gauge_failures.contains(&i)).then(|| self.values[i])
    }

    /// Every measure with its value and kind, counters first. Gauges that
    /// panicked are left out.
    pub fn measures(&self) -> impl Iterator<Item = (&str, u64, MeasureKind)> {
        self.schema
            .names
            .iter()
            .zip(&self.values)
            .enumerate()
            .filter(|(i, _)| !self.gauge_failures.contains(i))
            .map(|(i, (n, v))| (n.as_str(), *v, self.schema.kind(i)))
    }

    /// The names of gauges whose callback panicked while this window closed.
    pub fn gauge_failures(&self) -> impl Iterator<Item = &str> {
        self.gauge_failures
            .iter()
            .map(|&i| self.schema.names[i].as_str())
    }

    /// True if every counter is zero.
    pub fn is_empty(&self) -> bool {
        self.values[..self.schema.counters].iter().all(|&v| v == 0)
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (n, v, _) in self.measures() {
            m.entry(&n, &v);
        }
        m.finish()
    }
}
