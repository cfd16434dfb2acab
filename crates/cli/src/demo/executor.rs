//! The synthetic graph executor of the demo and of the soak test
//! (`examples/soak.rs`): worker threads run graph "runs" of 1–20 "nodes",
//! every node a few microseconds of real work, and record them into a
//! [`Meter`].
//!
//! Each worker alternates a block of [`BLOCK_RUNS`] metered runs with a
//! block of unmetered ones and times both, so the overhead of metering is
//! measured side by side, under the same load. After each metered block a
//! worker adds it to the [`Live`] totals, so at any moment the meter holds
//! at least what `Live` says, and at most one block per worker more.

use beacon_meter::meter::Meter;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// Runs per block; a worker alternates metered and unmetered blocks.
pub const BLOCK_RUNS: u64 = 32;
/// Spin iterations per node: a few microseconds of real work.
pub const NODE_WORK: u32 = 400;

/// What the synthetic executor did, over all workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorTotals {
    /// Runs recorded into the meter.
    pub runs_on: u64,
    /// Nodes of those runs.
    pub nodes_on: u64,
    /// Time spent in metered blocks, in nanoseconds (summed over workers).
    pub nanos_on: u128,
    /// Runs executed without metering.
    pub runs_off: u64,
    /// Time spent in unmetered blocks, in nanoseconds.
    pub nanos_off: u128,
}

/// Live totals of the metered runs, published by the workers after each
/// metered block (for progress displays and crash accounting).
#[derive(Debug, Default)]
pub struct Live {
    /// Runs recorded so far.
    pub runs: AtomicU64,
    /// Nodes recorded so far.
    pub nodes: AtomicU64,
}

/// Runs the executor on `threads` workers until `stop` is set, then returns
/// the totals. Blocks the calling thread.
pub fn run_executor(
    meter: Meter,
    threads: usize,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> ExecutorTotals {
    let threads = threads.max(1);
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (meter, live) = (meter.clone(), live.clone());
            let (stop, start) = (stop.clone(), start.clone());
            std::thread::spawn(move || {
                let local = meter.local();
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((i as u64 + 1) << 32);
                let mut t = ExecutorTotals::default();
                let mut sink = 0u64;
                start.wait();
                let mut metered = i % 2 == 0;
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    let (mut runs, mut nodes) = (0u64, 0u64);
                    for _ in 0..BLOCK_RUNS {
                        rng = xorshift(rng);
                        let n = 1 + rng % 20;
                        for node in 0..n {
                            sink = sink.wrapping_add(node_work(rng ^ node));
                        }
                        if metered {
                            local.record_run(n);
                        }
                        runs += 1;
                        nodes += n;
                    }
                    let nanos = began.elapsed().as_nanos();
                    if metered {
                        t.runs_on += runs;
                        t.nodes_on += nodes;
                        t.nanos_on += nanos;
                        live.runs.fetch_add(runs, Ordering::Relaxed);
                        live.nodes.fetch_add(nodes, Ordering::Relaxed);
                    } else {
                        t.runs_off += runs;
                        t.nanos_off += nanos;
                    }
                    metered = !metered;
                }
                std::hint::black_box(sink);
                t
            })
        })
        .collect();
    let mut total = ExecutorTotals::default();
    for w in workers {
        let t = w.join().expect("an executor worker panicked");
        total.runs_on += t.runs_on;
        total.nodes_on += t.nodes_on;
        total.nanos_on += t.nanos_on;
        total.runs_off += t.runs_off;
        total.nanos_off += t.nanos_off;
    }
    total
}

/// A few microseconds of arithmetic the optimizer cannot remove.
fn node_work(seed: u64) -> u64 {
    std::hint::black_box((0..NODE_WORK).fold(seed | 1, |x, _| xorshift(x)))
}

/// One step of Marsaglia's xorshift64 generator.
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_totals_match_the_meter_once_stopped() {
        let meter = Meter::new();
        let live = Arc::new(Live::default());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (meter, live, stop) = (meter.clone(), live.clone(), stop.clone());
            std::thread::spawn(move || run_executor(meter, 2, live, stop))
        };
        let until = Instant::now() + std::time::Duration::from_secs(10);
        while live.runs.load(Ordering::Relaxed) == 0 && Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        let totals = worker.join().unwrap();
        let w = meter.rotate();
        assert!(totals.runs_on > 0, "{totals:?}");
        assert_eq!(w.runs(), totals.runs_on);
        assert_eq!(w.nodes(), totals.nodes_on);
        assert_eq!(live.runs.load(Ordering::Relaxed), totals.runs_on);
        assert_eq!(live.nodes.load(Ordering::Relaxed), totals.nodes_on);
        assert!(totals.nodes_on >= totals.runs_on && totals.nodes_on <= 20 * totals.runs_on);
    }
}
