//! `Meter` and `Window`: the hot path, a thin shell over [`beacon_meter::Meter`].
//!
//! A record is one call into the core with the GIL held for that call only;
//! it never waits for the reporter (the core's writers never wait).
//!
//! # Fork
//!
//! A forked child inherits a copy of the parent's slots, including counts
//! the parent has recorded but not yet reported. Rotating them in the child
//! would report them once per child, and a slot whose seqlock was mid-write
//! in another parent thread at the moment of the fork stays odd forever in
//! the child (its owner does not exist there), so `rotate()` would spin on
//! it forever. The child therefore never reads the inherited core at all:
//! [`Cell::forget_after_fork`] drops this process's pointer to it, and the
//! first use builds a fresh core with the same counters and gauges
//! ([`Cell::revive`]). The fresh core has new slots (all even, all zero),
//! so the child starts from zero and its rotations cannot meet the stuck
//! slot. No change to the core is needed.
//!
//! May import: `beacon_meter` (core), pyo3, [`crate::fork`], [`crate::callback`].

use crate::{callback, fork};
use beacon_meter::{CounterId, MeasureKind, Meter as Core};
use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::HashMap;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

/// What a core meter is built from, kept to build it again after a fork.
struct Spec {
    counters: Vec<String>,
    gauges: Vec<(String, Arc<Py<PyAny>>)>,
}

impl Spec {
    fn build(&self) -> Result<Live, beacon_meter::MeterError> {
        let mut b = Core::builder();
        for c in &self.counters {
            b.counter(c)?;
        }
        for (name, f) in &self.gauges {
            b.gauge(name, callback::gauge(name.clone(), f.clone()))?;
        }
        let core = b.build();
        let keywords = keywords(&core, &self.counters);
        Ok(Live { core, keywords })
    }
}

/// A core and the ids of its counters. The ids belong to this core (a
/// `CounterId` is branded with its meter), so a fresh core after a fork
/// comes with ids of its own.
pub(crate) struct Live {
    pub(crate) core: Core,
    /// Keyword of `record_run(**custom)` → counter: each counter's full
    /// name, and its last dotted part when no other counter shares it.
    keywords: HashMap<String, CounterId>,
}

impl Live {
    /// The counter a keyword of `record_run(**custom)` or `record(name)`
    /// names: a full name, or a last dotted part no other counter shares.
    #[inline]
    pub(crate) fn counter(&self, name: &str) -> Option<CounterId> {
        self.keywords.get(name).copied()
    }
}

/// One Python `Meter`'s state, shared with its reporters and the fork
/// registry.
pub(crate) struct Cell {
    /// The core this process records into (with its counter ids), from
    /// `Box::into_raw`.
    ///
    /// Invariant: non-null, except in a forked child between the fork and
    /// the first use. It changes only in [`Cell::forget_after_fork`] (the
    /// child, still single-threaded) and from null in [`Cell::revive`]. A
    /// core it once pointed to is never freed while the cell lives (a
    /// forked child leaks the parent's), so a `&Live` taken from it stays
    /// valid for the cell's lifetime even if a fork happens meanwhile (a
    /// gauge callback may fork in the middle of `rotate()`).
    live: AtomicPtr<Live>,
    spec: Spec,
    /// Serialises revivals (two threads' first records after a fork).
    revive_lock: Mutex<()>,
}

// safety: the raw pointer is a `Box<Live>` (Send + Sync) owned by the cell.
unsafe impl Send for Cell {}
// safety: see `Send`; the pointer is only ever read and swapped atomically.
unsafe impl Sync for Cell {}

impl Cell {
    /// The current core, building a fresh one on the first use after a fork.
    #[inline(always)]
    pub(crate) fn core(&self, py: Python<'_>) -> &Core {
        &self.live(py).core
    }

    /// The current core and its counter ids, building fresh ones on the
    /// first use after a fork.
    #[inline(always)]
    pub(crate) fn live(&self, py: Python<'_>) -> &Live {
        // Acquire: pairs with the `Release` stores in `Meter::build` and
        // `revive`, so the core's fields are visible before it is used.
        let p = self.live.load(Ordering::Acquire);
        if p.is_null() {
            return self.revive(py);
        }
        // safety: non-null pointers come from `Box::into_raw` and are never
        // freed while `self` lives (see the invariant on `live`).
        unsafe { &*p }
    }

    #[cold]
    #[inline(never)]
    fn revive(&self, py: Python<'_>) -> &Live {
        let guard = self.revive_lock.lock();
        let mut p = self.live.load(Ordering::Acquire);
        if p.is_null() {
            // The spec built once already, so it builds again.
            let fresh = self.spec.build().expect("the same spec built before");
            p = Box::into_raw(Box::new(fresh));
            self.live.store(p, Ordering::Release);
            drop(guard);
            // First use in a forked child: start the reporters that ran in
            // the parent, on threads of their own (recording never waits).
            fork::start_forked_reporters(py, ptr::from_ref(self).cast());
        }
        // safety: as in `core`.
        unsafe { &*p }
    }

    /// Why `name` names no counter, and which counters there are.
    pub(crate) fn not_a_counter(&self, name: &str) -> String {
        format!(
            "{name:?} is not a counter of this meter; its counters are {:?} \
             (pass a full name or its last dotted part)",
            self.spec.counters
        )
    }
}

impl fork::ForkedMeter for Cell {
    /// In a forked child (single-threaded, GIL held): stop using the
    /// parent's core. It is leaked, not freed: see the invariant on `live`.
    fn forget_after_fork(&self) {
        self.live.store(ptr::null_mut(), Ordering::Release);
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        let p = *self.live.get_mut();
        if !p.is_null() {
            // safety: from `Box::into_raw`, and `&mut self`: no `&Live` from
            // this cell is alive any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// A usage meter: runs, nodes and custom counters on a lock-free hot path.
#[pyclass(frozen, module = "beacon_meter")]
pub struct Meter {
    pub(crate) cell: Arc<Cell>,
}

impl Meter {
    fn build(counters: Vec<String>, gauges: Option<&Bound<'_, PyDict>>) -> PyResult<Meter> {
        let mut gs = Vec::new();
        for (k, v) in gauges.into_iter().flat_map(|d| d.iter()) {
            if !v.is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "gauge {k} must be a callable returning an int, got {}",
                    v.get_type().name()?
                )));
            }
            gs.push((k.extract::<String>()?, Arc::new(v.unbind())));
        }
        let spec = Spec {
            counters,
            gauges: gs,
        };
        let live = spec
            .build()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Meter {
            cell: Arc::new(Cell {
                live: AtomicPtr::new(Box::into_raw(Box::new(live))),
                spec,
                revive_lock: Mutex::new(()),
            }),
        })
    }
}

/// Each counter by its full name, and by its last dotted part when that is
/// unique among the counters.
fn keywords(core: &Core, counters: &[String]) -> HashMap<String, CounterId> {
    let mut out = HashMap::new();
    let mut short: HashMap<&str, Vec<CounterId>> = HashMap::new();
    for name in counters {
        let Some(id) = core.counter_id(name) else {
            continue;
        };
        out.insert(name.clone(), id);
        let last = name.rsplit('.').next().unwrap_or(name);
        short.entry(last).or_default().push(id);
    }
    for (last, ids) in short {
        if let [id] = ids[..] {
            out.entry(last.to_owned()).or_insert(id);
        }
    }
    out
}

#[pymethods]
impl Meter {
    /// `Meter(counters=[...], gauges={name: callable})`.
    #[new]
    #[pyo3(signature = (counters = Vec::new(), gauges = None))]
    fn new(
        py: Python<'_>,
        counters: Vec<String>,
        gauges: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Meter> {
        let m = Meter::build(counters, gauges)?;
        fork::register_meter(py, &m.cell);
        Ok(m)
    }

    // `record_run`, `record_nodes`, `incr_runs` and `incr_nodes` are in
    // `crate::fastcall`: the hot path's calling convention.

    /// Adds `n` to the custom counter `name` (full name or last dotted part).
    fn record(&self, py: Python<'_>, name: &str, n: u64) -> PyResult<()> {
        let live = self.cell.live(py);
        let id = live
            .counter(name)
            .ok_or_else(|| PyValueError::new_err(self.cell.not_a_counter(name)))?;
        live.core.record(id, n);
        Ok(())
    }

    /// Closes the current window and returns it.
    fn rotate(&self, py: Python<'_>) -> Window {
        let core = self.cell.core(py).clone();
        // Detached: rotation may wait for a preempted writer, and gauges
        // take the GIL themselves.
        Window::from(py.detach(move || core.rotate()))
    }

    /// The open window's counts so far, without closing it.
    fn peek(&self, py: Python<'_>) -> Window {
        let core = self.cell.core(py).clone();
        Window::from(py.detach(move || core.peek()))
    }

    /// The counters' and gauges' names.
    #[getter]
    fn names(&self, py: Python<'_>) -> Vec<String> {
        let core = self.cell.core(py);
        core.measures().map(|(n, _)| n.to_owned()).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Meter(counters={:?}, gauges={:?})",
            self.cell.spec.counters,
            self.cell
                .spec
                .gauges
                .iter()
                .map(|g| g.0.as_str())
                .collect::<Vec<_>>()
        )
    }
}

/// The counts of one closed window.
#[pyclass(frozen, module = "beacon_meter")]
pub struct Window {
    sequence: u64,
    measures: Vec<(String, u64, MeasureKind)>,
    gauge_failures: Vec<String>,
}

impl From<beacon_meter::Window> for Window {
    fn from(w: beacon_meter::Window) -> Self {
        Window {
            sequence: w.sequence(),
            measures: w.measures().map(|(n, v, k)| (n.to_owned(), v, k)).collect(),
            gauge_failures: w.gauge_failures().map(str::to_owned).collect(),
        }
    }
}

#[pymethods]
impl Window {
    /// Graph runs in the window.
    #[getter]
    fn runs(&self) -> u64 {
        self.measures[0].1
    }

    /// Graph nodes in the window.
    #[getter]
    fn nodes(&self) -> u64 {
        self.measures[1].1
    }

    /// The 0-based number of the window since the meter was built (or,
    /// in a forked child, since the child's first use of it).
    #[getter]
    fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Every measure by name: counters, then gauges (a gauge whose
    /// callback raised is left out).
    #[getter]
    fn measures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (n, v, _) in &self.measures {
            d.set_item(n, v)?;
        }
        Ok(d)
    }

    /// Gauges whose callback raised while the window closed.
    #[getter]
    fn gauge_failures(&self) -> Vec<String> {
        self.gauge_failures.clone()
    }

    fn __repr__(&self) -> String {
        let m: Vec<String> = self
            .measures
            .iter()
            .map(|(n, v, _)| format!("{n:?}: {v}"))
            .collect();
        format!("Window(sequence={}, {{{}}})", self.sequence, m.join(", "))
    }
}
