//! Fork safety: what a forked child (a gunicorn or uvicorn worker) does so
//! that it reports only its own counts, with a reporter of its own.
//!
//! `beacon_meter/__init__.py` registers [`after_fork_in_child`] with
//! `os.register_at_fork`. In the child it:
//! * makes every meter forget the parent's core (see `meter.rs`, "Fork"):
//!   the first use builds a fresh one, so counts recorded in the parent
//!   before the fork are never reported by a child;
//! * marks every reporter that was running (or starting) in the parent as
//!   forked, leaking the parent's runtime and reporter without touching
//!   them (their threads do not exist in the child, and their locks may
//!   have been held by those threads). A forked reporter starts again on
//!   the first record into its meter, on its own thread, or on any call to
//!   it (`start()`, `stats()`, `with`).
//!
//! # The registries' locks cannot be held across a fork
//!
//! Every lock in this binding's own state (the two registries here, each
//! reporter's state, each meter's revive lock) is only ever taken by a
//! thread that holds the GIL, and no critical section calls into Python
//! (which could release the GIL) or blocks. `fork()` is called by a thread
//! holding the GIL, so at that moment no other thread is inside one of
//! these critical sections, and the child finds every one of them
//! unlocked. The functions here take a `Python` token to make that
//! precondition visible at each call site.
//!
//! # A leaf
//!
//! This module knows meters and reporters only as the two traits below,
//! which `meter.rs` and `reporter.rs` implement and register with; it
//! imports neither. The reporter's `atexit` hook walks the same registry
//! ([`reporters`]).
//!
//! May import: pyo3, parking_lot, tracing.

use parking_lot::Mutex;
use pyo3::prelude::*;
use std::sync::{Arc, Weak};

/// What a forked child does to a meter.
pub(crate) trait ForkedMeter: Send + Sync {
    /// Stop using the parent's counts (single-threaded, GIL held).
    fn forget_after_fork(&self);
}

/// What a forked child, and the exit hook, do to a reporter.
pub(crate) trait ForkedReporter: Send + Sync {
    /// Leak the parent's reporter without running its code, and mark this
    /// one for a restart on first use (single-threaded, GIL held).
    fn forget_after_fork(&self, py: Python<'_>);
    /// True if it is marked forked and records from the meter whose
    /// registered object is at `meter` (compared by address only).
    fn is_forked_for(&self, py: Python<'_>, meter: *const ()) -> bool;
    /// Starts it, logging a failure (it is retried on the next call).
    fn start_logged(&self, py: Python<'_>);
    /// Shuts it down within its own timeout, logging a failure.
    fn shutdown_logged(&self, py: Python<'_>);
}

/// Every live meter of this process.
static METERS: Mutex<Vec<Weak<dyn ForkedMeter>>> = Mutex::new(Vec::new());
/// Every live reporter of this process.
static REPORTERS: Mutex<Vec<Weak<dyn ForkedReporter>>> = Mutex::new(Vec::new());

/// Adds `item` to `registry`, dropping entries whose object is gone.
/// `strong_count`, not `upgrade`: an upgraded `Arc` dropped inside the
/// critical section could run Python code (a gauge's `__del__`).
fn register<T: ?Sized>(_py: Python<'_>, registry: &Mutex<Vec<Weak<T>>>, item: Weak<T>) {
    let mut r = registry.lock();
    r.retain(|w| w.strong_count() > 0);
    r.push(item);
}

/// The live entries of `registry`. The `Arc`s are handed to the caller, so
/// none is dropped (which could run Python code) while the lock is held.
fn live<T: ?Sized>(_py: Python<'_>, registry: &Mutex<Vec<Weak<T>>>) -> Vec<Arc<T>> {
    registry.lock().iter().filter_map(Weak::upgrade).collect()
}

/// Registers a meter for [`after_fork_in_child`].
pub(crate) fn register_meter<M: ForkedMeter + 'static>(py: Python<'_>, meter: &Arc<M>) {
    let weak: Weak<M> = Arc::downgrade(meter);
    register::<dyn ForkedMeter>(py, &METERS, weak);
}

/// Registers a reporter for [`after_fork_in_child`] and the exit hook.
pub(crate) fn register_reporter<R: ForkedReporter + 'static>(py: Python<'_>, reporter: &Arc<R>) {
    let weak: Weak<R> = Arc::downgrade(reporter);
    register::<dyn ForkedReporter>(py, &REPORTERS, weak);
}

/// Every live reporter of this process.
pub(crate) fn reporters(py: Python<'_>) -> Vec<Arc<dyn ForkedReporter>> {
    live(py, &REPORTERS)
}

/// Starts, each on a thread of its own, the forked reporters that record
/// from the meter at `meter` (the address of the object it registered):
/// called by the meter's first use in a forked child.
pub(crate) fn start_forked_reporters(py: Python<'_>, meter: *const ()) {
    for reporter in reporters(py) {
        if reporter.is_forked_for(py, meter) {
            let spawned = std::thread::Builder::new()
                .name("beacon-meter-start".into())
                .spawn(move || Python::attach(|py| reporter.start_logged(py)));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a thread to restart the reporter after fork; it starts on the next call to it");
            }
        }
    }
}

/// `os.register_at_fork(after_in_child=...)`: the child's meters start
/// from zero and its reporters restart on first use.
#[pyfunction]
pub(crate) fn after_fork_in_child(py: Python<'_>) {
    for meter in live(py, &METERS) {
        meter.forget_after_fork();
    }
    for reporter in reporters(py) {
        reporter.forget_after_fork(py);
    }
}
