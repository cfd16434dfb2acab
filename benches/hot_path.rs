//! Hot-path benchmarks: `record_run(3)` across counting approaches at 1, 2
//! and 8 threads, and `Meter::rotate()` with 1 and 64 live slots.
//!
//! Each `record_run` measurement spawns the threads, lines them up on a
//! `Barrier`, and reports the **slowest** thread's elapsed time divided by
//! the calls it made: the per-call time per thread, worst thread. The
//! throughput line is the aggregate over all threads (`threads` calls per
//! iteration). With more threads than cores, per-thread wall time includes
//! time spent descheduled.
//!
//! ```text
//! cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 2
//! ```

#[path = "support/approaches.rs"]
mod approaches;

use approaches::{Approaches, Which};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn record_run(c: &mut Criterion) {
    let all = Approaches::default();
    for threads in [1usize, 2, 8] {
        let mut g = c.benchmark_group(format!("record_run/{threads}_threads"));
        g.throughput(Throughput::Elements(threads as u64));
        for which in Which::ALL {
            g.bench_function(which.name(), |b| {
                b.iter_custom(|iters| all.run(which, threads, iters))
            });
        }
        g.finish();
    }
}

fn rotate(c: &mut Criterion) {
    let mut g = c.benchmark_group("rotate");
    for slots in [1usize, 64] {
        let (meter, mut locals) = approaches::meter_with_slots(slots);
        g.bench_function(format!("{slots}_slots_hot"), |b| {
            b.iter_custom(|iters| approaches::time_rotate_hot(&meter, iters))
        });
        g.bench_function(format!("{slots}_slots_written_by_other_thread"), |b| {
            b.iter_custom(|iters| approaches::time_rotate_dirty(&meter, &mut locals, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, record_run, rotate);
criterion_main!(benches);
