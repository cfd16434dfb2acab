//! The one door to atomics and locks for the metering core.
//!
//! Every atomic, lock and spin hint that `src/meter/` uses comes from this
//! module. Under `--cfg loom` it re-exports loom's checked versions, so the
//! loom suite in `loom-tests/` model-checks the production code itself, not
//! a copy of it (the pattern of tokio's `src/loom/` and sharded-slab's
//! `src/sync.rs`).
//!
//! Only the operations the core needs are exposed. In particular there are
//! no fences: loom models acquire fences only, so the seqlock in
//! `meter::slot` is written with acquire loads and release stores, which
//! compile to the same plain `mov`s as relaxed ones on x86-64.

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::Mutex;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64};

    /// A spin-wait hint. Under loom it yields, so that the model checker
    /// schedules the thread being waited for instead of exploring an
    /// endless spin.
    #[inline]
    pub(crate) fn spin_loop() {
        loom::thread::yield_now();
    }

    /// The owning writer's read of its own slot word (see the non-loom
    /// version). Under loom this is an unsynchronized read: it is not a
    /// scheduling point, and loom checks that every store to the word
    /// happens-before it, i.e. that the slot really has a single writer.
    /// As a tracked load it would hide the writer's next store from loom's
    /// partial-order reduction (tokio-rs/loom#392) and leave races with the
    /// rotator unexplored.
    #[inline]
    pub(crate) fn load_own(a: &AtomicU64) -> u64 {
        // safety:
        // - only the thread that claimed the slot stores to its words, and
        //   a claim happens-after the previous owner's release;
        // - so every store to `a` happens-before this read, which loom
        //   verifies on every execution it explores.
        unsafe { a.unsync_load() }
    }

    /// Locks a mutex (loom's mutex returns a `LockResult`).
    pub(crate) fn lock<T>(m: &Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
        m.lock()
            .expect("the rotation lock is never poisoned: no code panics while holding it")
    }
}

#[cfg(not(loom))]
mod imp {
    pub(crate) use parking_lot::Mutex;
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64};

    /// A spin-wait hint (`pause` on x86-64).
    #[inline]
    pub(crate) fn spin_loop() {
        std::hint::spin_loop();
    }

    /// The owning writer's read of its own slot word. Relaxed: only the
    /// owner stores to it, so coherence gives the owner its own last store
    /// (or, after a hand-over, the previous owner's, made visible by the
    /// `Acquire` claim).
    #[inline(always)]
    pub(crate) fn load_own(a: &AtomicU64) -> u64 {
        a.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Locks a mutex.
    #[inline]
    pub(crate) fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
        m.lock()
    }
}

pub(crate) use imp::*;
pub(crate) use std::sync::atomic::Ordering;
