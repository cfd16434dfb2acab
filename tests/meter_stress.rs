//! Multi-threaded stress of the metering core: writers record while another
//! thread rotates in a tight loop. Totals and per-record atomicity are
//! checked at the end.

use beacon_meter::{Meter, Window};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

/// Writer `w` records runs of `node_weight(w)` nodes each. The weights are
/// powers of 2^20 (more than the records of one writer), so a window's node
/// total decomposes uniquely into each writer's run count, and any record
/// split from its nodes shows up as a mismatch with `runs`.
const W: u64 = 1 << 20;

fn node_weight(w: usize) -> u64 {
    W.pow(w as u32)
}

/// Decomposes a window into per-writer run counts, asserting it holds only
/// whole records.
fn whole_records(w: &Window, writers: usize) -> Vec<u64> {
    let mut rest = w.nodes();
    let per_writer: Vec<u64> = (0..writers)
        .map(|_| {
            let n = rest % W;
            rest /= W;
            n
        })
        .collect();
    assert_eq!(rest, 0, "window {} has stray nodes", w.sequence());
    assert_eq!(
        per_writer.iter().sum::<u64>(),
        w.runs(),
        "window {} split a record: runs={} nodes={}",
        w.sequence(),
        w.runs(),
        w.nodes()
    );
    per_writer
}

#[test]
fn rotation_in_a_tight_loop_loses_nothing_and_splits_nothing() {
    // Three writers: two through `local()` and one through `Meter` directly.
    // Each records until the rotator has rotated `ROTATIONS` times (so the
    // rotations really race the records, however the 2 cores are shared
    // out), and at least `MIN_RECORDS` times; `MAX_RECORDS` keeps every
    // writer under `W` records in all, which the decomposition needs.
    const ROTATIONS: u64 = 200;
    const MIN_RECORDS: u64 = 10_000;
    const MAX_RECORDS: u64 = 1_000_000;
    let meter = Meter::new();
    let writers = 3;
    let start = Arc::new(Barrier::new(writers + 1));
    let done = Arc::new(AtomicBool::new(false));
    let rotations = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let m = meter.clone();
            let start = start.clone();
            let rotations = rotations.clone();
            thread::spawn(move || {
                start.wait();
                let weight = node_weight(w);
                let local = m.local();
                let mut n = 0u64;
                while n < MAX_RECORDS
                    && (n < MIN_RECORDS || rotations.load(Ordering::Relaxed) < ROTATIONS)
                {
                    for _ in 0..100 {
                        if w == 2 {
                            m.record_run(weight);
                        } else {
                            local.record_run(weight);
                        }
                    }
                    n += 100;
                }
                n
            })
        })
        .collect();
    let rotator = {
        let m = meter.clone();
        let done = done.clone();
        let start = start.clone();
        let rotations = rotations.clone();
        thread::spawn(move || {
            start.wait();
            let mut windows = Vec::new();
            while !done.load(Ordering::Acquire) {
                windows.push(m.rotate());
                rotations.fetch_add(1, Ordering::Relaxed);
            }
            windows
        })
    };
    let recorded: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    done.store(true, Ordering::Release);
    let mut windows = rotator.join().unwrap();
    windows.push(meter.rotate());
    assert!(
        windows.len() > 10,
        "the rotator ran {} times",
        windows.len()
    );

    let mut total_runs = 0;
    let mut total_nodes = 0u64;
    let mut per_writer = vec![0u64; writers];
    for w in &windows {
        for (i, n) in whole_records(w, writers).into_iter().enumerate() {
            per_writer[i] += n;
        }
        total_runs += w.runs();
        total_nodes += w.nodes();
    }
    assert_eq!(per_writer, recorded);
    assert_eq!(total_runs, recorded.iter().sum::<u64>());
    let expected_nodes: u64 = (0..writers).map(|w| recorded[w] * node_weight(w)).sum();
    assert_eq!(total_nodes, expected_nodes);
    // Windows are numbered consecutively.
    for (i, w) in windows.iter().enumerate() {
        assert_eq!(w.sequence(), i as u64);
    }
}

#[test]
fn churning_threads_keep_counts_and_reuse_slots() {
    let meter = Meter::new();
    let mut windows = Vec::new();
    for round in 0..50u64 {
        let ts: Vec<_> = (0..4)
            .map(|i| {
                let m = meter.clone();
                thread::spawn(move || {
                    if i % 2 == 0 {
                        m.local().record_run(round);
                    } else {
                        m.record_run(round);
                    }
                })
            })
            .collect();
        windows.push(meter.rotate());
        for t in ts {
            t.join().unwrap();
        }
    }
    windows.push(meter.rotate());
    let runs: u64 = windows.iter().map(Window::runs).sum();
    let nodes: u64 = windows.iter().map(Window::nodes).sum();
    assert_eq!(runs, 200);
    assert_eq!(nodes, 4 * (0..50).sum::<u64>());
    assert!(
        meter.slot_count() <= 5,
        "200 short-lived threads, at most 4 alive at once (+1 for timing), used {} slots",
        meter.slot_count()
    );
}

#[test]
fn custom_counters_and_gauges_by_name() {
    let mut b = Meter::builder();
    let tokens = b.counter("x.tokens").unwrap();
    b.gauge("langgraph.platform.py_graphs", || 7).unwrap();
    b.gauge("x.broken", || panic!("gauge bug")).unwrap();
    assert!(
        b.counter("x.tokens").is_err(),
        "duplicate names are refused"
    );
    assert!(b.counter("langgraph.platform.runs").is_err());
    assert!(b.counter("bad name").is_err());
    let meter = b.build();
    assert_eq!(meter.counter_id("x.tokens"), Some(tokens));
    let local = meter.local();
    local.record(tokens, 5);
    meter.record_run_with(2, &[(tokens, 10)]);
    let w = meter.rotate();
    assert_eq!(w.get("x.tokens"), Some(15));
    assert_eq!(w.runs(), 1);
    assert_eq!(w.nodes(), 2);
    assert_eq!(w.get("langgraph.platform.py_graphs"), Some(7));
    assert_eq!(w.get("x.broken"), None);
    assert_eq!(w.gauge_failures().collect::<Vec<_>>(), vec!["x.broken"]);
    assert_eq!(w.get("no.such"), None);
}

#[test]
fn peek_does_not_close_the_window() {
    let meter = Meter::new();
    meter.record_run(4);
    assert_eq!(meter.peek().runs(), 1);
    meter.record_run(4);
    let w = meter.rotate();
    assert_eq!((w.runs(), w.nodes()), (2, 8));
    assert_eq!(w.sequence(), 0);
    assert_eq!(meter.rotate().sequence(), 1);
}

#[test]
fn two_meters_on_one_thread_do_not_mix() {
    let a = Meter::new();
    let b = Meter::new();
    for _ in 0..10 {
        a.record_run(1);
        b.record_run(2);
    }
    assert_eq!(a.rotate().nodes(), 10);
    assert_eq!(b.rotate().nodes(), 20);
    // A meter dropped while this thread caches its slot is pruned later.
    for _ in 0..100 {
        let m = Meter::new();
        m.record_run(1);
        assert_eq!(m.rotate().runs(), 1);
    }
    a.record_run(1);
    assert_eq!(a.rotate().runs(), 1);
}

/// A `CounterId` of one meter used on another panics before anything is
/// recorded, on every path, and leaves the slot usable: it neither lands in
/// the other meter's counter of the same index nor leaves a record open
/// (which would make every later rotation wait forever).
#[test]
fn counter_id_of_another_meter_is_refused_before_recording() {
    let mut a = Meter::builder();
    let a_tokens = a.counter("a.tokens").unwrap();
    let _a = a.build();
    let mut b = Meter::builder();
    let b_tokens = b.counter("b.tokens").unwrap();
    let b = b.build();
    let local = b.local();
    type Attempt<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let attempts: [Attempt; 4] = [
        ("LocalMeter::record", Box::new(|| local.record(a_tokens, 5))),
        (
            "LocalMeter::record_run_with",
            Box::new(|| local.record_run_with(2, &[(b_tokens, 1), (a_tokens, 5)])),
        ),
        ("Meter::record", Box::new(|| b.record(a_tokens, 5))),
        (
            "Meter::record_run_with",
            Box::new(|| b.record_run_with(2, &[(b_tokens, 1), (a_tokens, 5)])),
        ),
    ];
    for (path, attempt) in attempts {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)).expect_err(path);
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("was used on meter") && msg.contains("Meter::counter_id"),
            "{path}: {msg:?}"
        );
    }
    local.record_run_with(1, &[(b_tokens, 2)]);
    b.record(b_tokens, 3);
    let w = b.rotate();
    assert_eq!(
        (w.runs(), w.nodes()),
        (1, 1),
        "nothing of the refused records"
    );
    assert_eq!(w.get("b.tokens"), Some(5));
    assert_eq!(b.counter_id("b.tokens"), Some(b_tokens));
    assert_ne!(a_tokens, b_tokens, "same index, different meters");
}

/// Meters built one after the other, each with the most counters a meter
/// may have: no id of one is accepted by the other, at either edge of their
/// ranges, and each meter's own last counter is accepted.
#[test]
fn full_meters_built_back_to_back_refuse_each_others_ids() {
    use beacon_meter::meter::MAX_CUSTOM_COUNTERS;
    let full = |tag: &str| {
        let mut b = Meter::builder();
        let ids: Vec<_> = (0..MAX_CUSTOM_COUNTERS)
            .map(|i| b.counter(&format!("{tag}.c{i}")).unwrap())
            .collect();
        (b.build(), ids)
    };
    let (a, a_ids) = full("a");
    let (b, b_ids) = full("b");
    let refused = |m: &Meter, id| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.record(id, 1))).is_err()
    };
    for (m, tag, own, other) in [(&a, "a", &a_ids, &b_ids), (&b, "b", &b_ids, &a_ids)] {
        assert!(refused(m, other[0]) && refused(m, *other.last().unwrap()));
        m.record(*own.last().unwrap(), 7);
        let last = format!("{tag}.c{}", MAX_CUSTOM_COUNTERS - 1);
        assert_eq!(m.rotate().get(&last), Some(7));
    }
}

/// `Meter::attach`: one owner at a time; an owner that drops with a peek
/// not followed by a rotate abandons the meter for good.
#[test]
fn attach_refuses_a_second_owner_and_an_abandoned_meter() {
    use beacon_meter::AttachError;
    let meter = Meter::new();
    let mut owner = meter.attach().unwrap();
    assert_eq!(meter.attach().unwrap_err(), AttachError::Attached);
    meter.record_run(1);
    assert_eq!(owner.peek().runs(), 1);
    assert_eq!(owner.rotate().runs(), 1);
    drop(owner);
    // Dropped after a rotate: nothing it saw is left in the meter.
    let owner = meter.attach().expect("freed by a clean drop");
    drop(owner);
    let mut owner = meter.attach().unwrap();
    meter.record_run(2);
    assert_eq!(owner.peek().nodes(), 2);
    drop(owner);
    assert_eq!(meter.attach().unwrap_err(), AttachError::Abandoned);
    assert_eq!(meter.clone().attach().unwrap_err(), AttachError::Abandoned);
    assert!(AttachError::Abandoned.to_string().contains("new Meter"));
    // Other meters are not affected.
    assert!(Meter::new().attach().is_ok());
}
