fn main() {
    let m = beacon_meter::Meter::new();
    m.record_run(3);
    println!("{:?}", m.rotate());
}
