//! The counting approaches compared by `benches/hot_path.rs` and
//! `examples/hotpath.rs`, and the harness that times them.
//!
//! Both targets include this file with `#[path]`, so the bench and the
//! example measure exactly the same code.
//!
//! Every approach records one graph run the way `record_run(3)` does: add 1
//! to a runs counter and 3 to a nodes counter. Three rows of this crate
//! take the custom-counter paths instead (`beacon_local_custom`,
//! `beacon_local_run_with`, `beacon_direct_custom`), the ones that check a
//! [`CounterId`] belongs to the meter it is used on.
//!
//! # Timing
//!
//! [`Approaches::run`] spawns `threads` threads. Each builds its per-thread
//! handle, records once untimed (so lazy per-thread set-up, such as the
//! slot claim behind `Meter::record_run`, is not timed), lines up on a
//! [`Barrier`], then times `iters` calls. The result is the **largest** of
//! the threads' elapsed times: divided by `iters` it is the per-call time of
//! the slowest thread, which is conservative (a thread that was descheduled,
//! or lost every race for a contended line, counts in full).

use beacon_meter::{CounterId, LocalMeter, Meter};
use crossbeam_utils::CachePadded;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Nodes per recorded run.
pub const NODES_PER_RUN: u64 = 3;

/// One way of counting runs and nodes from many threads.
pub trait Approach: Sync {
    /// What one thread holds to record.
    type Handle<'a>
    where
        Self: 'a;

    /// Builds thread `thread`'s handle, on that thread.
    fn handle(&self, thread: usize) -> Self::Handle<'_>;

    /// Records one run of `nodes` nodes.
    fn record(h: &Self::Handle<'_>, nodes: u64);
}

/// Runs `work(thread, barrier)` on each of `threads` threads and returns
/// the largest `Duration` they report. `work` must wait on the barrier
/// (once) before it starts its clock.
pub fn on_threads<F>(threads: usize, work: F) -> Duration
where
    F: Fn(usize, &Barrier) -> Duration + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || work(t, barrier))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("benchmark thread panicked"))
            .max()
            .expect("at least one thread")
    })
}

/// Times `iters` records on each of `threads` threads lined up on a
/// barrier; returns the slowest thread's elapsed time.
pub fn time_threads<A: Approach>(a: &A, threads: usize, iters: u64) -> Duration {
    on_threads(threads, |t, barrier| {
        let h = a.handle(t);
        A::record(&h, NODES_PER_RUN);
        barrier.wait();
        // The handle and the argument are opaque to the optimiser (it
        // cannot fold the constant or reason about where the handle
        // points). They are made opaque once, not per call: a per-call
        // `black_box` spills both to the stack and reloads them, two stores
        // and two loads that cost as much as the record being measured.
        // The loop cannot be elided: every record performs atomic
        // operations, which LLVM neither removes nor merges across
        // iterations (checked with objdump, see BENCHMARKS.md).
        let (h, nodes) = (black_box(&h), black_box(NODES_PER_RUN));
        let start = Instant::now();
        for _ in 0..iters {
            A::record(h, nodes);
        }
        start.elapsed()
    })
}

/// This crate, through a per-thread [`LocalMeter`].
pub struct Local(pub Meter);

impl Approach for Local {
    type Handle<'a> = LocalMeter;
    fn handle(&self, _: usize) -> LocalMeter {
        self.0.local()
    }
    #[inline(always)]
    fn record(h: &LocalMeter, nodes: u64) {
        h.record_run(nodes);
    }
}

/// This crate, through `Meter::record_run` (thread-cache lookup per call).
pub struct Direct(pub Meter);

impl Approach for Direct {
    type Handle<'a> = &'a Meter;
    fn handle(&self, _: usize) -> &Meter {
        &self.0
    }
    #[inline(always)]
    fn record(h: &&Meter, nodes: u64) {
        h.record_run(nodes);
    }
}

/// A meter with one custom counter, and that counter's id.
fn meter_with_counter() -> (Meter, CounterId) {
    let mut b = Meter::builder();
    let id = b
        .counter("bench.tokens")
        .expect("a valid name, registered once");
    (b.build(), id)
}

/// This crate, a custom counter through a [`LocalMeter`]: `record(id, n)`,
/// the path that checks the id belongs to the meter.
pub struct LocalCustom(pub Meter, pub CounterId);

impl Default for LocalCustom {
    fn default() -> Self {
        let (m, id) = meter_with_counter();
        LocalCustom(m, id)
    }
}

impl Approach for LocalCustom {
    type Handle<'a> = (LocalMeter, CounterId);
    fn handle(&self, _: usize) -> (LocalMeter, CounterId) {
        (self.0.local(), self.1)
    }
    #[inline(always)]
    fn record(h: &(LocalMeter, CounterId), nodes: u64) {
        h.0.record(h.1, nodes);
    }
}

/// This crate, a run plus a custom counter in one record through a
/// [`LocalMeter`]: `record_run_with(n, &[(id, 1)])`.
pub struct LocalRunWith(pub Meter, pub CounterId);

impl Default for LocalRunWith {
    fn default() -> Self {
        let (m, id) = meter_with_counter();
        LocalRunWith(m, id)
    }
}

impl Approach for LocalRunWith {
    type Handle<'a> = (LocalMeter, CounterId);
    fn handle(&self, _: usize) -> (LocalMeter, CounterId) {
        (self.0.local(), self.1)
    }
    #[inline(always)]
    fn record(h: &(LocalMeter, CounterId), nodes: u64) {
        h.0.record_run_with(nodes, &[(h.1, 1)]);
    }
}

/// This crate, a custom counter through `Meter::record(id, n)` (thread-cache
/// lookup per call).
pub struct DirectCustom(pub Meter, pub CounterId);

impl Default for DirectCustom {
    fn default() -> Self {
        let (m, id) = meter_with_counter();
        DirectCustom(m, id)
    }
}

impl Approach for DirectCustom {
    type Handle<'a> = (&'a Meter, CounterId);
    fn handle(&self, _: usize) -> (&Meter, CounterId) {
        (&self.0, self.1)
    }
    #[inline(always)]
    fn record(h: &(&Meter, CounterId), nodes: u64) {
        h.0.record(h.1, nodes);
    }
}

/// The physical limit: a single-writer cache-padded slot per thread,
/// relaxed load + store of two counters, no lookup, no seqlock.
pub struct PaddedSlots(pub Vec<CachePadded<[AtomicU64; 2]>>);

impl PaddedSlots {
    /// One slot per thread, for up to `threads` threads.
    pub fn new(threads: usize) -> Self {
        PaddedSlots(
            (0..threads)
                .map(|_| CachePadded::new(Default::default()))
                .collect(),
        )
    }
}

impl Approach for PaddedSlots {
    type Handle<'a> = &'a [AtomicU64; 2];
    fn handle(&self, thread: usize) -> &[AtomicU64; 2] {
        &self.0[thread]
    }
    #[inline(always)]
    fn record(h: &&[AtomicU64; 2], nodes: u64) {
        h[0].store(h[0].load(Relaxed).wrapping_add(1), Relaxed);
        h[1].store(h[1].load(Relaxed).wrapping_add(nodes), Relaxed);
    }
}

/// One shared pair of counters bumped with `fetch_add` (what the
/// `prometheus` crate's counters do).
#[derive(Default)]
pub struct SharedAtomic(pub CachePadded<[AtomicU64; 2]>);

impl Approach for SharedAtomic {
    type Handle<'a> = &'a [AtomicU64; 2];
    fn handle(&self, _: usize) -> &[AtomicU64; 2] {
        &self.0
    }
    #[inline(always)]
    fn record(h: &&[AtomicU64; 2], nodes: u64) {
        h[0].fetch_add(1, Relaxed);
        h[1].fetch_add(nodes, Relaxed);
    }
}

/// Number of stripes of [`Striped`].
pub const STRIPES: usize = 16;

/// LongAdder-style: 16 cache-padded stripes bumped with `fetch_add`; a
/// thread picks stripe `thread % 16` (so up to 16 threads never collide:
/// the best case for striping).
pub struct Striped(pub Vec<CachePadded<[AtomicU64; 2]>>);

impl Default for Striped {
    fn default() -> Self {
        Striped(
            (0..STRIPES)
                .map(|_| CachePadded::new(Default::default()))
                .collect(),
        )
    }
}

impl Approach for Striped {
    type Handle<'a> = &'a [AtomicU64; 2];
    fn handle(&self, thread: usize) -> &[AtomicU64; 2] {
        &self.0[thread % STRIPES]
    }
    #[inline(always)]
    fn record(h: &&[AtomicU64; 2], nodes: u64) {
        h[0].fetch_add(1, Relaxed);
        h[1].fetch_add(nodes, Relaxed);
    }
}

/// One `parking_lot::Mutex` around both counters.
#[derive(Default)]
pub struct Locked(pub parking_lot::Mutex<(u64, u64)>);

impl Approach for Locked {
    type Handle<'a> = &'a parking_lot::Mutex<(u64, u64)>;
    fn handle(&self, _: usize) -> &parking_lot::Mutex<(u64, u64)> {
        &self.0
    }
    #[inline(always)]
    fn record(h: &&parking_lot::Mutex<(u64, u64)>, nodes: u64) {
        let mut g = h.lock();
        g.0 = g.0.wrapping_add(1);
        g.1 = g.1.wrapping_add(nodes);
    }
}

/// Two `metrics` 0.24 counter handles, each backed by an `Arc<AtomicU64>`
/// (the storage `metrics-util`'s registry gives exporters such as
/// `metrics-exporter-prometheus`). Threads hold cloned handles, the fastest
/// way to use the crate; the `counter!` macro adds a registry lookup.
pub struct MetricsCrate {
    runs: metrics::Counter,
    nodes: metrics::Counter,
}

impl Default for MetricsCrate {
    fn default() -> Self {
        MetricsCrate {
            runs: metrics::Counter::from_arc(Arc::new(AtomicU64::new(0))),
            nodes: metrics::Counter::from_arc(Arc::new(AtomicU64::new(0))),
        }
    }
}

impl Approach for MetricsCrate {
    type Handle<'a> = (metrics::Counter, metrics::Counter);
    fn handle(&self, _: usize) -> (metrics::Counter, metrics::Counter) {
        (self.runs.clone(), self.nodes.clone())
    }
    #[inline(always)]
    fn record(h: &(metrics::Counter, metrics::Counter), nodes: u64) {
        h.0.increment(1);
        h.1.increment(nodes);
    }
}

/// An exporter that drops everything: the reader exists so the SDK
/// aggregates measurements (with no reader, instruments are no-ops).
struct DiscardExporter;

impl PushMetricExporter for DiscardExporter {
    fn export(
        &self,
        _: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        std::future::ready(Ok(()))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// Two `opentelemetry_sdk` 0.30 `Counter<u64>`s with no attributes, from an
/// `SdkMeterProvider` with a `PeriodicReader` whose interval (1 h) never
/// fires during a benchmark.
pub struct OpenTelemetry {
    _provider: SdkMeterProvider,
    runs: opentelemetry::metrics::Counter<u64>,
    nodes: opentelemetry::metrics::Counter<u64>,
}

impl Default for OpenTelemetry {
    fn default() -> Self {
        let reader = PeriodicReader::builder(DiscardExporter)
            .with_interval(Duration::from_secs(3600))
            .build();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = provider.meter("hot_path");
        let runs = meter.u64_counter("langgraph.platform.runs").build();
        let nodes = meter.u64_counter("langgraph.platform.nodes").build();
        OpenTelemetry {
            _provider: provider,
            runs,
            nodes,
        }
    }
}

impl Approach for OpenTelemetry {
    type Handle<'a> = &'a OpenTelemetry;
    fn handle(&self, _: usize) -> &OpenTelemetry {
        self
    }
    #[inline(always)]
    fn record(h: &&OpenTelemetry, nodes: u64) {
        h.runs.add(1, &[]);
        h.nodes.add(nodes, &[]);
    }
}

/// The approaches, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// [`Local`]
    Local,
    /// [`Direct`]
    Direct,
    /// [`LocalCustom`]
    LocalCustom,
    /// [`LocalRunWith`]
    LocalRunWith,
    /// [`DirectCustom`]
    DirectCustom,
    /// [`PaddedSlots`]
    PaddedSlots,
    /// [`SharedAtomic`]
    SharedAtomic,
    /// [`Striped`]
    Striped,
    /// [`Locked`]
    Mutex,
    /// [`MetricsCrate`]
    Metrics,
    /// [`OpenTelemetry`]
    OpenTelemetry,
}

impl Which {
    /// Every approach, in table order.
    pub const ALL: [Which; 11] = [
        Which::Local,
        Which::Direct,
        Which::LocalCustom,
        Which::LocalRunWith,
        Which::DirectCustom,
        Which::PaddedSlots,
        Which::SharedAtomic,
        Which::Striped,
        Which::Mutex,
        Which::Metrics,
        Which::OpenTelemetry,
    ];

    /// A short, stable name (used as the criterion benchmark id).
    pub fn name(self) -> &'static str {
        match self {
            Which::Local => "beacon_local",
            Which::Direct => "beacon_direct",
            Which::LocalCustom => "beacon_local_custom",
            Which::LocalRunWith => "beacon_local_run_with",
            Which::DirectCustom => "beacon_direct_custom",
            Which::PaddedSlots => "padded_slot_limit",
            Which::SharedAtomic => "shared_atomic",
            Which::Striped => "striped16",
            Which::Mutex => "parking_lot_mutex",
            Which::Metrics => "metrics_crate",
            Which::OpenTelemetry => "opentelemetry_sdk",
        }
    }
}

/// The most threads [`Approaches`] is sized for.
pub const MAX_THREADS: usize = 64;

/// One instance of every approach, built once and reused across runs.
pub struct Approaches {
    local: Local,
    direct: Direct,
    local_custom: LocalCustom,
    local_run_with: LocalRunWith,
    direct_custom: DirectCustom,
    padded: PaddedSlots,
    shared: SharedAtomic,
    striped: Striped,
    mutex: Locked,
    metrics: MetricsCrate,
    otel: OpenTelemetry,
}

impl Default for Approaches {
    fn default() -> Self {
        Approaches {
            local: Local(Meter::new()),
            direct: Direct(Meter::new()),
            local_custom: LocalCustom::default(),
            local_run_with: LocalRunWith::default(),
            direct_custom: DirectCustom::default(),
            padded: PaddedSlots::new(MAX_THREADS),
            shared: SharedAtomic::default(),
            striped: Striped::default(),
            mutex: Locked::default(),
            metrics: MetricsCrate::default(),
            otel: OpenTelemetry::default(),
        }
    }
}

impl Approaches {
    /// Times `iters` records of `which` on each of `threads` threads (at
    /// most [`MAX_THREADS`]); returns the slowest thread's elapsed time.
    pub fn run(&self, which: Which, threads: usize, iters: u64) -> Duration {
        assert!(
            (1..=MAX_THREADS).contains(&threads),
            "1..={MAX_THREADS} threads"
        );
        match which {
            Which::Local => time_threads(&self.local, threads, iters),
            Which::Direct => time_threads(&self.direct, threads, iters),
            Which::LocalCustom => time_threads(&self.local_custom, threads, iters),
            Which::LocalRunWith => time_threads(&self.local_run_with, threads, iters),
            Which::DirectCustom => time_threads(&self.direct_custom, threads, iters),
            Which::PaddedSlots => time_threads(&self.padded, threads, iters),
            Which::SharedAtomic => time_threads(&self.shared, threads, iters),
            Which::Striped => time_threads(&self.striped, threads, iters),
            Which::Mutex => time_threads(&self.mutex, threads, iters),
            Which::Metrics => time_threads(&self.metrics, threads, iters),
            Which::OpenTelemetry => time_threads(&self.otel, threads, iters),
        }
    }
}

/// A meter with `slots` live writer slots: `slots` handles, each of which
/// has recorded once. Keep the handles alive for the slots to stay claimed.
pub fn meter_with_slots(slots: usize) -> (Meter, Vec<LocalMeter>) {
    let meter = Meter::new();
    let locals: Vec<LocalMeter> = (0..slots)
        .map(|_| {
            let l = meter.local();
            l.record_run(NODES_PER_RUN);
            l
        })
        .collect();
    assert_eq!(meter.slot_count(), slots);
    (meter, locals)
}

/// Times `rounds` rotations of a meter whose slots are all hot in this
/// thread's cache (nothing writes them between rotations).
pub fn time_rotate_hot(meter: &Meter, rounds: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(black_box(meter).rotate());
    }
    start.elapsed()
}

/// Times `rounds` rotations, where before each one a second thread records
/// a run in every handle of `locals`, so each slot's cache line was last
/// written by another thread (the production pattern: workers write,
/// the reporter rotates). Only the `rotate()` calls are timed.
///
/// The two threads hand over through an atomic phase counter (spinning,
/// then yielding), not a `Barrier`: a futex round trip per rotation would
/// make a criterion run of this benchmark take minutes of untimed waiting.
/// The OS decides where the writer thread runs; on a loaded machine it may
/// share the rotator's core, and then the lines are not actually remote.
pub fn time_rotate_dirty(meter: &Meter, locals: &mut [LocalMeter], rounds: u64) -> Duration {
    let phase = AtomicU64::new(0);
    std::thread::scope(|s| {
        let phase = &phase;
        s.spawn(move || {
            for r in 0..rounds {
                wait_for(phase, 2 * r);
                for l in locals.iter() {
                    l.record_run(NODES_PER_RUN);
                }
                // Release: the rotation that follows sees these records.
                phase.store(2 * r + 1, Release);
            }
        });
        let mut total = Duration::ZERO;
        for r in 0..rounds {
            wait_for(phase, 2 * r + 1);
            let start = Instant::now();
            black_box(black_box(meter).rotate());
            total += start.elapsed();
            phase.store(2 * r + 2, Release);
        }
        total
    })
}

/// Waits until `phase` reaches `target`: spins briefly, then yields, so a
/// machine with fewer free cores than threads still makes progress.
fn wait_for(phase: &AtomicU64, target: u64) {
    let mut spins = 0u32;
    // Acquire: pairs with the `Release` store that set `target`.
    while phase.load(Acquire) != target {
        spins += 1;
        if spins < 1_000 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
