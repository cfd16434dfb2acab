//! Per-thread handles, and the thread cache behind `Meter`'s direct calls.
//! May import `super` and `crate::sync`; no other part of the crate.

use super::slot::Padded;
use super::{CounterId, Inner, Meter};
use crate::sync::Arc;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A per-thread recording handle: one claimed slot, no per-call lookup.
///
/// Made by [`Meter::local`]. Executors keep one per worker thread. It can be
/// moved to another thread (`Send`) but not shared (`!Sync`), so exactly one
/// thread writes its slot at a time.
///
/// Dropping it (or the thread exiting with it) releases the slot for the next
/// thread. The counts already recorded stay in the slot and are reported by
/// the next rotation: nothing is lost when a thread retires.
pub struct LocalMeter {
    /// Invariant: claimed by this handle (`in_use`), lives as long as
    /// `inner`, and is written by no one else until `Drop` releases it.
    slot: NonNull<Padded>,
    /// Keeps the slot list (and so `slot`) alive.
    inner: Arc<Inner>,
    /// `!Sync`: two threads must never record through one handle at once.
    _not_sync: PhantomData<Cell<()>>,
}

// safety:
// - the handle owns the exclusive right to write its slot; moving the handle
//   moves that right, and `!Sync` keeps it with one thread at a time;
// - the slot stays allocated while `inner` is alive.
unsafe impl Send for LocalMeter {}

impl LocalMeter {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        let slot = NonNull::from(inner.slots.claim());
        LocalMeter {
            slot,
            inner,
            _not_sync: PhantomData,
        }
    }

    #[inline(always)]
    fn slot(&self) -> &Padded {
        // safety: see the invariant on `slot`.
        unsafe { self.slot.as_ref() }
    }

    /// Records one graph run that executed `nodes` nodes, as one indivisible
    /// record: the run and its nodes always land in the same window.
    #[inline(always)]
    pub fn record_run(&self, nodes: u64) {
        self.slot().record_run(nodes);
    }

    /// Records `n` nodes executed outside a completed run.
    #[inline(always)]
    pub fn record_nodes(&self, n: u64) {
        self.slot().record_nodes(n);
    }

    /// Adds `n` to a custom counter registered with [`MeterBuilder::counter`](super::MeterBuilder::counter).
    ///
    /// # Panics
    /// If `id` was registered on another meter (nothing is recorded).
    #[inline(always)]
    pub fn record(&self, id: CounterId, n: u64) {
        self.slot().record_custom(id, n);
    }

    /// Records a run of `nodes` nodes together with custom counter amounts,
    /// all in one indivisible record.
    ///
    /// # Panics
    /// If an id was registered on another meter (nothing is recorded).
    #[inline]
    pub fn record_run_with(&self, nodes: u64, extra: &[(CounterId, u64)]) {
        self.slot().record_run_with(nodes, extra);
    }

    /// The meter this handle records into.
    pub fn meter(&self) -> Meter {
        Meter {
            id: self.inner.id,
            inner: self.inner.clone(),
        }
    }
}

impl Drop for LocalMeter {
    fn drop(&mut self) {
        self.slot().release();
    }
}

impl std::fmt::Debug for LocalMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMeter")
            .field("meter", &self.inner.id)
            .field("slot", &self.slot().index())
            .finish()
    }
}

/// The slot this thread used last: `(meter id, slot)`. A plain `Cell` with
/// no destructor, so reading it is one thread-pointer-relative load with no
/// lazy-init check.
///
/// Invariant: when `.0 != 0`, `.1` is the slot of a `LocalMeter` held in
/// this thread's `OWNED` for meter `.0`. `Owned::drop` and `prune` clear it
/// before that handle goes away.
type Hot = (u64, *const Padded);

/// The handles this thread owns, one per meter it recorded into directly.
struct Owned(RefCell<Vec<LocalMeter>>);

crate::sync::thread_local! {
    static HOT: Cell<Hot> = Cell::new((0, std::ptr::null()));
    static OWNED: Owned = Owned(RefCell::new(Vec::new()));
}

impl Drop for Owned {
    fn drop(&mut self) {
        // The thread is exiting: forget the hot slot first, so a record made
        // by a later thread-local destructor takes the slow path instead of
        // writing a slot that is about to be handed to another thread.
        let _ = HOT.try_with(|h| h.set((0, std::ptr::null())));
        // Dropping the handles releases their slots.
    }
}

/// Runs `f` on this thread's slot for `meter`.
#[inline(always)]
pub(super) fn with_slot(meter: &Meter, f: impl FnOnce(&Padded)) {
    let hot = HOT.try_with(Cell::get).unwrap_or((0, std::ptr::null()));
    if hot.0 == meter.id {
        // safety: by the invariant on `Hot`, the slot belongs to a live
        // handle owned by this thread for this meter.
        f(unsafe { &*hot.1 })
    } else {
        slow(meter, f)
    }
}

#[cold]
#[inline(never)]
fn slow(meter: &Meter, f: impl FnOnce(&Padded)) {
    let mut f = Some(f);
    let done = OWNED.try_with(|owned| {
        let mut v = owned.0.borrow_mut();
        let pos = match v.iter().position(|l| l.inner.id == meter.id) {
            Some(pos) => pos,
            None => {
                prune(&mut v);
                v.push(LocalMeter::new(meter.inner.clone()));
                v.len() - 1
            }
        };
        let slot = v[pos].slot();
        let _ = HOT.try_with(|h| h.set((meter.id, slot as *const Padded)));
        (f.take().expect("called once"))(slot);
    });
    if done.is_err() {
        // This thread's cache is already destroyed (a record from another
        // thread-local destructor). Claim a slot just for this record; the
        // counts stay in it after it is released.
        let local = LocalMeter::new(meter.inner.clone());
        (f.take().expect("called once"))(local.slot());
    }
}

/// Drops cached handles whose meter nobody else holds any more, so a thread
/// that outlives many meters does not keep their slot lists alive.
fn prune(v: &mut Vec<LocalMeter>) {
    let hot_id = HOT.try_with(|h| h.get().0).unwrap_or(0);
    v.retain(|l| {
        let keep = Arc::strong_count(&l.inner) > 1;
        if !keep && l.inner.id == hot_id {
            let _ = HOT.try_with(|h| h.set((0, std::ptr::null())));
        }
        keep
    });
}
