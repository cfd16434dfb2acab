//! Guards against a vacuous loom suite: these models *must* fail, proving
//! that loom really explores interleavings of the production code (see
//! tokio-rs/loom#392 for how a load-then-store pattern can hide races from
//! loom's partial-order reduction, which `src/meter/slot.rs` avoids).
#![cfg(loom)]

use beacon_meter::Meter;
use loom::thread;

#[test]
#[should_panic(expected = "loom explored the record landing first")]
fn loom_sees_a_claim_and_record_before_a_peek() {
    loom::model(|| {
        let meter = Meter::new();
        let m = meter.clone();
        let t = thread::spawn(move || m.local().record_run(1));
        assert_eq!(
            meter.peek().runs(),
            0,
            "loom explored the record landing first"
        );
        t.join().unwrap();
    });
}

#[test]
#[should_panic(expected = "loom explored the record landing first")]
fn loom_sees_a_record_on_an_existing_slot_before_a_rotation() {
    loom::model(|| {
        let meter = Meter::new();
        let local = meter.local();
        let m = meter.clone();
        let t = thread::spawn(move || {
            local.record_run(1);
            drop(m);
        });
        assert_eq!(
            meter.rotate().runs(),
            0,
            "loom explored the record landing first"
        );
        t.join().unwrap();
    });
}
