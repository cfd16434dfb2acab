//! Per-writer counter slots and the append-only list that holds them.
//!
//! # The seqlock
//!
//! A slot has exactly one writer at a time (the thread that claimed it), so
//! the writer never needs a read-modify-write: it loads its own counter and
//! stores the sum. Counters are **monotonic**; they are never reset. The
//! rotator keeps, per slot, the snapshot it took last time, and a window is
//! the difference. "Snapshot and reset" is therefore done without ever
//! writing to a writer's cache line from another thread.
//!
//! A record that touches several counters (a run and its nodes) must be seen
//! whole or not at all. The writer brackets the record with `seq`:
//!
//! ```text
//! writer                              rotator (snapshot)
//! s = seq            (own value)      s1 = seq.load(Acquire)   -- retry if odd
//! seq.store(s+1, Relaxed)             c  = counter.load(Acquire) for each
//! counter.store(c+n, Release) ...     s2 = seq.load(Relaxed)   -- retry if s1 != s2
//! seq.store(s+2, Release)
//! ```
//!
//! Why this is exact:
//! * If the rotator reads any counter value written inside record `k`
//!   (opened by `seq = 2k+1`), its `Acquire` load synchronises with that
//!   `Release` store, so `seq = 2k+1` happens-before the later `s2` load and
//!   `s2 >= 2k+1`. If `s1 <= 2k` then `s1 != s2` and the snapshot is retried.
//! * If `s1 = 2k+2`, its `Acquire` load synchronises with the closing
//!   `Release` store of record `k`, so every counter store of records
//!   `<= k` is visible: nothing of a finished record is missed.
//!
//! There are no fences: the `Release` stores and `Acquire` loads on the
//! counters do their job, cost the same plain `mov` as `Relaxed` on x86-64,
//! and loom models them exactly (loom supports acquire fences only).
//!
//! May import `super` (for `CounterId`) and `crate::sync`; every atomic,
//! cell and yield comes from `crate::sync`, so loom checks all of them.

use super::{CounterId, MAX_CUSTOM_COUNTERS};
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicU64, Ordering, UnsafeCell, load_own, spin_loop, yield_now,
};
use crossbeam_utils::CachePadded;
use std::ptr;

/// Number of spins before a waiting snapshot starts yielding the CPU to the
/// writer it waits for (a writer preempted in the middle of a record).
const SPINS_BEFORE_YIELD: u32 = 64;

/// One writer's counters.
///
/// Invariants:
/// * only the thread holding the claim (`in_use == true`, won by a CAS)
///   stores to `seq`, `runs`, `nodes` and `custom`;
/// * `seq` is even outside a record and odd inside one;
/// * `runs`, `nodes`, `custom` only ever grow (wrapping at `u64::MAX`,
///   which is centuries away at any real rate);
/// * `key_base`, `index` and `next` are written before the slot is published
///   and never again. `index` and `next` are `sync::UnsafeCell`s so that
///   loom checks every read of them happens-after that write.
///
/// Layout (`repr(C)`): the three words a record writes fill the first 64
/// bytes alone; what the rotator walks (`next`, `index`, the custom
/// counters' pointer) and what a custom record reads (that pointer and
/// `key_base`) sit in the second half of the 128-byte padded slot.
/// A writer's stores then never evict the line the rotator follows from
/// slot to slot, which keeps `rotate()` from stalling on every slot a busy
/// thread is writing.
#[repr(C)]
pub(crate) struct Slot {
    seq: AtomicU64,
    runs: AtomicU64,
    nodes: AtomicU64,
    _hot_line: [u64; 5],
    /// `CUSTOM_PAD` unused counters, then the custom counters, then
    /// `CUSTOM_PAD` more: the allocation is separate from the slot, and the
    /// padding keeps another thread's allocation off these cache lines.
    custom: Box<[AtomicU64]>,
    /// The first [`CounterId`] key of the meter this slot belongs to
    /// (`super::key_base`): an id of another meter is refused before a
    /// record opens.
    key_base: u64,
    in_use: AtomicBool,
    index: UnsafeCell<usize>,
    next: UnsafeCell<*mut Padded>,
}

// The layout the doc comment on `Slot` promises.
#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::offset_of!(Slot, custom) == 64);
    assert!(std::mem::size_of::<Slot>() <= 128);
};

/// Counters of padding on each side of a slot's custom counters: 128 bytes.
#[cfg(not(loom))]
const CUSTOM_PAD: usize = 16;
/// Under loom, padding would only add objects for the model to track.
#[cfg(loom)]
const CUSTOM_PAD: usize = 0;

/// A slot on its own cache line(s).
///
/// `CachePadded` aligns to 128 bytes on x86-64 (the adjacent-line
/// prefetcher pulls pairs of 64-byte lines), so two writers' slots never
/// share a line and a record is a store to a line this core already owns.
pub(crate) type Padded = CachePadded<Slot>;

/// A consistent copy of one slot's counters: `[runs, nodes, custom...]`.
pub(crate) type Snapshot = Vec<u64>;

impl Slot {
    fn new(meter: u64, custom: usize) -> Self {
        Slot {
            key_base: super::key_base(meter),
            seq: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            nodes: AtomicU64::new(0),
            _hot_line: [0; 5],
            custom: if custom == 0 {
                Box::new([])
            } else {
                (0..custom + 2 * CUSTOM_PAD)
                    .map(|_| AtomicU64::new(0))
                    .collect()
            },
            in_use: AtomicBool::new(true),
            index: UnsafeCell::new(0),
            next: UnsafeCell::new(ptr::null_mut()),
        }
    }

    /// The custom counters, without their padding.
    #[inline(always)]
    fn custom(&self) -> &[AtomicU64] {
        match self.custom.len() {
            0 => &[],
            n => &self.custom[CUSTOM_PAD..n - CUSTOM_PAD],
        }
    }

    /// This slot's dense index (0 for the first slot of a meter).
    pub(crate) fn index(&self) -> usize {
        // safety: written only before the slot was published (`push`), and
        // every `&Slot` was reached through an `Acquire` read that
        // synchronises with the publishing `Release` CAS (see `iter_from`).
        self.index.with(|i| unsafe { *i })
    }

    /// The next older slot (null for the first slot of a meter).
    fn next(&self) -> *mut Padded {
        // safety: as for `index`.
        self.next.with(|n| unsafe { *n })
    }

    /// Custom counter `id` of this slot.
    ///
    /// Called before a record opens (`begin`), so a wrong id panics with
    /// `seq` even: the slot stays readable and its owner can go on.
    ///
    /// # Panics
    /// If `id` was registered on another meter.
    #[inline(always)]
    fn custom_counter(&self, id: CounterId) -> &AtomicU64 {
        // One bounds check is also the meter check: an id of this meter is
        // `key_base + index` with `index` below the meter's counter count
        // (`MeterBuilder::counter`, `Meter::counter_id`); another meter's
        // key lies outside `[key_base, key_base + MAX_CUSTOM_COUNTERS)`, so
        // the wrapping difference is at least `MAX_CUSTOM_COUNTERS`, past
        // every slot's counters.
        let i = id.key.wrapping_sub(self.key_base);
        match usize::try_from(i).ok().and_then(|i| self.custom().get(i)) {
            Some(cell) => cell,
            None => wrong_meter(id, self.key_base),
        }
    }

    /// Opens a record. Only the claiming thread may call this.
    #[inline(always)]
    fn begin(&self) -> u64 {
        let s = load_own(&self.seq);
        // Relaxed: ordered before the counter stores below by their
        // `Release`, which is what the snapshot's `s2` check relies on.
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        s
    }

    /// Closes a record opened by `begin`.
    #[inline(always)]
    fn end(&self, s: u64) {
        // Release: pairs with the `Acquire` load of `s1` in `snapshot`; a
        // reader that sees this even value sees every counter store above.
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    #[inline(always)]
    fn bump(cell: &AtomicU64, n: u64) {
        let v = load_own(cell).wrapping_add(n);
        // Release: pairs with the `Acquire` counter loads in `snapshot`; a
        // reader that sees this value also sees `seq = odd` stored before
        // it, so its `s2` check rejects a half-read record.
        cell.store(v, Ordering::Release);
    }

    /// One graph run of `nodes` nodes, as one indivisible record.
    #[inline(always)]
    pub(crate) fn record_run(&self, nodes: u64) {
        let s = self.begin();
        Self::bump(&self.runs, 1);
        Self::bump(&self.nodes, nodes);
        self.end(s);
    }

    /// `n` nodes outside a completed run.
    #[inline(always)]
    pub(crate) fn record_nodes(&self, n: u64) {
        let s = self.begin();
        Self::bump(&self.nodes, n);
        self.end(s);
    }

    /// `n` on custom counter `id`.
    ///
    /// # Panics
    /// If `id` was registered on another meter (before recording anything).
    #[inline(always)]
    pub(crate) fn record_custom(&self, id: CounterId, n: u64) {
        let cell = self.custom_counter(id);
        let s = self.begin();
        Self::bump(cell, n);
        self.end(s);
    }

    /// A run plus custom counters, all as one indivisible record.
    ///
    /// # Panics
    /// If an id was registered on another meter (before recording anything).
    #[inline]
    pub(crate) fn record_run_with(&self, nodes: u64, extra: &[(CounterId, u64)]) {
        for &(id, _) in extra {
            self.custom_counter(id);
        }
        let s = self.begin();
        Self::bump(&self.runs, 1);
        Self::bump(&self.nodes, nodes);
        for &(id, n) in extra {
            Self::bump(self.custom_counter(id), n);
        }
        self.end(s);
    }

    /// A consistent copy of the counters, as they stood between two records.
    ///
    /// May wait (spinning, then yielding) while the owner is inside a
    /// record; it holds nothing the owner needs, so the owner always
    /// finishes and the wait is a few nanoseconds unless the owner was
    /// preempted mid-record.
    pub(crate) fn snapshot_into(&self, out: &mut Snapshot) {
        let mut spins = 0u32;
        loop {
            out.clear();
            // Acquire: pairs with the `Release` store in `end`.
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                // Acquire: each pairs with the `Release` store in `bump`.
                out.push(self.runs.load(Ordering::Acquire));
                out.push(self.nodes.load(Ordering::Acquire));
                out.extend(self.custom().iter().map(|c| c.load(Ordering::Acquire)));
                // Relaxed: kept after the loads above by their `Acquire`.
                let s2 = self.seq.load(Ordering::Relaxed);
                if s1 == s2 {
                    return;
                }
            }
            spins += 1;
            if spins < SPINS_BEFORE_YIELD {
                spin_loop();
            } else {
                yield_now();
            }
        }
    }

    /// Gives the slot up for another thread to claim.
    pub(crate) fn release(&self) {
        // Release: pairs with the `Acquire` CAS in `SlotList::claim`; the
        // next owner sees this owner's last counter and `seq` values.
        self.in_use.store(false, Ordering::Release);
    }
}

/// The panic of a [`CounterId`] used on a meter it was not registered on.
#[cold]
#[inline(never)]
#[track_caller]
fn wrong_meter(id: CounterId, key_base: u64) -> ! {
    let ((meter, index), here) = (id.parts(), key_base / MAX_CUSTOM_COUNTERS as u64);
    panic!(
        "counter id {index} of meter #{meter} was used on meter #{here}: a CounterId \
         belongs to the meter it was registered on; look the counter up on this \
         meter with Meter::counter_id(name)"
    )
}

/// An append-only, lock-free list of slots. Slots are never removed while
/// the list lives; a retired thread's slot is released and reused by the
/// next thread that claims one, so the list's length is bounded by the
/// largest number of writers alive at once.
pub(crate) struct SlotList {
    /// Newest slot. Every slot is reachable from here through `next`.
    head: AtomicPtr<Padded>,
    /// The meter's id, stamped on every slot.
    meter: u64,
    custom: usize,
}

// safety:
// - the raw pointers in the list point to boxed slots owned by the list and
//   freed only in `Drop`, when no other reference to the list exists;
// - everything reachable through them is atomics or fields that are
//   immutable after publication.
unsafe impl Send for SlotList {}
// safety: see `Send` above; shared access only touches atomics.
unsafe impl Sync for SlotList {}

impl SlotList {
    /// An empty list of meter `meter`'s slots, each with `custom` custom
    /// counters.
    pub(crate) fn new(meter: u64, custom: usize) -> Self {
        SlotList {
            head: AtomicPtr::new(ptr::null_mut()),
            meter,
            custom,
        }
    }

    /// Claims a free slot for the calling writer, or appends a new one.
    ///
    /// Lock-free: it never waits for a rotation or for another claimer. It
    /// allocates only when every existing slot is taken.
    pub(crate) fn claim(&self) -> &Padded {
        // Read the head with an RMW (a CAS that changes nothing) rather than
        // a load: this cold path loses nothing, and loom's partial-order
        // reduction then sees the claim race a rotation (a load followed by
        // an RMW of the same object hides that race from it,
        // tokio-rs/loom#392).
        //
        // Relaxed on success: the CAS succeeds only if the head is null, and
        // then no slot is read through it (the walk below is empty and
        // `push` starts at index 0). Acquire on failure: pairs with the
        // `Release` CAS in `push`, which published the head read here.
        let head = match self.head.compare_exchange(
            ptr::null_mut(),
            ptr::null_mut(),
            Ordering::Relaxed,
            Ordering::Acquire,
        ) {
            Ok(h) | Err(h) => h,
        };
        // safety: `head` is null or came from the `Acquire` failure above.
        for slot in unsafe { self.iter_from(head) } {
            // Acquire on success: pairs with the `Release` in
            // `Slot::release`, so this thread sees the previous owner's
            // counters and `seq` before adding to them.
            if slot
                .in_use
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return slot;
            }
        }
        self.push(head)
    }

    /// Publishes a new slot; `head` is the caller's last view of the head.
    fn push(&self, mut head: *mut Padded) -> &Padded {
        let node = Box::into_raw(Box::new(CachePadded::new(Slot::new(
            self.meter,
            self.custom,
        ))));
        // safety: published only by the CAS below; freed only when the list
        // drops.
        let n: &Padded = unsafe { &*node };
        loop {
            let index = if head.is_null() {
                0
            } else {
                // safety:
                // - `head` was published by a `Release` CAS that this
                //   thread's `Acquire` read (in `claim` or a failed CAS
                //   below) synchronised with;
                // - slots are only freed when the list is dropped.
                unsafe { &*head }.index() + 1
            };
            // safety: `node` is unpublished, so no other thread can reach
            // these cells.
            n.next.with_mut(|p| unsafe { *p = head });
            // safety: as above.
            n.index.with_mut(|p| unsafe { *p = index });
            // Release on success: publishes the slot's initial counters,
            // `index` and `next` to the `Acquire` reads in `iter` and
            // `claim`. Acquire on failure: to read the newer head's `index`.
            match self
                .head
                .compare_exchange(head, node, Ordering::Release, Ordering::Acquire)
            {
                Ok(_) => return n,
                Err(actual) => head = actual,
            }
        }
    }

    /// Every slot published so far, newest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Padded> {
        // Acquire: pairs with the `Release` CAS in `push`.
        let head = self.head.load(Ordering::Acquire);
        // safety: `head` came from the `Acquire` load just above.
        unsafe { self.iter_from(head) }
    }

    /// The slots from `head` on, newest first.
    ///
    /// # Safety
    /// `head` must be null or a value of `self.head` read by an `Acquire`
    /// operation (a load, or a CAS's success or failure), so that it
    /// synchronises with the `Release` CAS in `push` that published it.
    unsafe fn iter_from(&self, head: *mut Padded) -> impl Iterator<Item = &Padded> {
        let mut cur = head as *const Padded;
        std::iter::from_fn(move || {
            if cur.is_null() {
                return None;
            }
            // safety:
            // - `cur` was published by a `Release` CAS in `push` (directly,
            //   or as the `next` of a published slot, written before that
            //   slot's own publication), and the caller read it with
            //   `Acquire` (this function's contract);
            // - slots live until the list is dropped, which needs `&mut`,
            //   so not while the `&self` the items borrow from lives.
            let slot = unsafe { &*cur };
            cur = slot.next();
            Some(slot)
        })
    }

    /// The number of slots ever created (the high-water mark of writers).
    pub(crate) fn len(&self) -> usize {
        self.iter().next().map_or(0, |s| s.index() + 1)
    }
}

impl Drop for SlotList {
    fn drop(&mut self) {
        // Relaxed: `&mut self` means every other thread is done with the
        // list, and their accesses happen-before this drop.
        let mut cur = self.head.load(Ordering::Relaxed);
        while !cur.is_null() {
            // safety:
            // - `&mut self`: no writer or reader holds a slot any more
            //   (handles keep the meter, and so this list, alive);
            // - every node came from `Box::into_raw` in `push` and is
            //   reached exactly once by this walk.
            let node = unsafe { Box::from_raw(cur) };
            cur = node.next();
        }
    }
}
