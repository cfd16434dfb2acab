//! The one door to atomics and locks for the metering core.
//!
//! Every atomic, `Arc`, lock, shared cell, thread-local, spin hint and
//! yield that `src/meter/` uses comes from this module. Under `--cfg loom` it
//! re-exports loom's checked versions, so the loom suite in `loom-tests/`
//! model-checks the production code itself, not a copy of it (the pattern of
//! tokio's `src/loom/` and sharded-slab's `src/sync.rs`). May import `std`,
//! `parking_lot` and (under loom) `loom`; nothing of the crate.
//!
//! Only the operations the core needs are exposed. In particular there are
//! no fences: loom models acquire fences only, so the seqlock in
//! `meter::slot` is written with acquire loads and release stores, which
//! compile to the same plain `mov`s as relaxed ones on x86-64.

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64};
    pub(crate) use loom::sync::{Arc, Mutex};

    /// Gives the CPU to another thread (under loom: lets the model checker
    /// schedule another thread).
    #[inline]
    pub(crate) fn yield_now() {
        loom::thread::yield_now();
    }

    /// A process-wide unique id, counting from 1. Under loom the counter is
    /// a `lazy_static` of the model, so each execution starts again from 1.
    pub(crate) fn next_id() -> u64 {
        loom::lazy_static! {
            static ref NEXT: AtomicU64 = AtomicU64::new(1);
        }
        // Relaxed: only uniqueness matters, which the RMW gives.
        NEXT.fetch_add(1, super::Ordering::Relaxed)
    }

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
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64};

    /// Gives the CPU to another thread.
    #[inline]
    pub(crate) fn yield_now() {
        std::thread::yield_now();
    }

    /// A process-wide unique id, counting from 1.
    pub(crate) fn next_id() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // Relaxed: only uniqueness matters, which the RMW gives.
        NEXT.fetch_add(1, super::Ordering::Relaxed)
    }

    /// A cell whose every access goes through a closure, so that under loom
    /// (`loom::cell::UnsafeCell`) each read and write is checked against the
    /// happens-before order. Here the closures compile to the bare access.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(v: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        /// Reads through a raw pointer; the caller proves no write races it.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Writes through a raw pointer; the caller proves no access races it.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

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

/// Declares thread-locals with `std::thread_local!` (with `const`
/// initialisers: no lazy-init check on access) or, under loom,
/// `loom::thread_local!` (per model execution, destroyed when its thread
/// ends).
macro_rules! thread_locals {
    ($(static $name:ident: $t:ty = $init:expr;)*) => {
        #[cfg(not(loom))]
        std::thread_local! { $(static $name: $t = const { $init };)* }
        #[cfg(loom)]
        loom::thread_local! { $(static $name: $t = $init;)* }
    };
}
pub(crate) use thread_locals as thread_local;
