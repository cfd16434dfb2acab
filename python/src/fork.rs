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
//! May import: pyo3, [`crate::meter`], [`crate::reporter`].

use crate::meter::Cell;
use crate::reporter::Shared;
use parking_lot::Mutex;
use pyo3::prelude::*;
use std::sync::{Arc, Weak};

/// Every live meter of this process.
static METERS: Mutex<Vec<Weak<Cell>>> = Mutex::new(Vec::new());
/// Every live reporter of this process.
static REPORTERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Adds `item` to `registry`, dropping entries whose object is gone.
/// `strong_count`, not `upgrade`: an upgraded `Arc` dropped inside the
/// critical section could run Python code (a gauge's `__del__`).
fn register<T>(_py: Python<'_>, registry: &Mutex<Vec<Weak<T>>>, item: &Arc<T>) {
    let mut r = registry.lock();
    r.retain(|w| w.strong_count() > 0);
    r.push(Arc::downgrade(item));
}

/// The live entries of `registry`. The `Arc`s are handed to the caller, so
/// none is dropped (which could run Python code) while the lock is held.
fn live<T>(_py: Python<'_>, registry: &Mutex<Vec<Weak<T>>>) -> Vec<Arc<T>> {
    registry.lock().iter().filter_map(Weak::upgrade).collect()
}

/// Registers a meter for [`after_fork_in_child`].
pub(crate) fn register_meter(py: Python<'_>, cell: &Arc<Cell>) {
    register(py, &METERS, cell);
}

/// Registers a reporter for [`after_fork_in_child`] and `shutdown_all`.
pub(crate) fn register_reporter(py: Python<'_>, shared: &Arc<Shared>) {
    register(py, &REPORTERS, shared);
}

/// Every live reporter of this process.
pub(crate) fn reporters(py: Python<'_>) -> Vec<Arc<Shared>> {
    live(py, &REPORTERS)
}

/// Starts, each on a thread of its own, the forked reporters that record
/// from `cell`'s meter: called by the meter's first use in a forked child.
pub(crate) fn start_forked_reporters(py: Python<'_>, cell: &Cell) {
    for shared in reporters(py) {
        if shared.is_forked_for(py, cell) {
            let spawned = std::thread::Builder::new()
                .name("beacon-meter-start".into())
                .spawn(move || Python::attach(|py| shared.start_logged(py)));
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
    for cell in live(py, &METERS) {
        cell.forget_after_fork();
    }
    for shared in reporters(py) {
        shared.forget_after_fork(py);
    }
}
