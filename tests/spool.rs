//! The durable spool: persistence, ordering, atomicity, permissions, the
//! lock, corrupt-file handling, rejection, checkpoints, bounded merging and
//! export, and slots (one per process) under a spool root.

use crate::common::{T0, ts};
use beacon_meter::meter::{NODES, RUNS};
use beacon_meter::spool::{
    Checkpoint, CheckpointPeek, Destination, EXPORT_FORMAT, Spool, SpoolError, SpoolExport,
    SpoolLimits, SpooledWindow, slots,
};
use beacon_meter::wire::ReportBody;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use uuid::Uuid;

const GRAPHS: &str = "langgraph.platform.py_graphs";

fn tags(version: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("langgraph_api.version".to_owned(), version.to_owned()),
        (
            "langgraph.platform.host".to_owned(),
            "self-hosted".to_owned(),
        ),
    ])
}

/// Window `i` of a 5-minute sequence.
fn window(dest: Destination, i: i64, runs: u64, nodes: u64) -> SpooledWindow {
    SpooledWindow::new(
        Uuid::new_v4(),
        dest,
        ts(T0 + (i + 1) * 300 + 1),
        vec![GRAPHS.to_owned()],
        ReportBody {
            from_timestamp: ts(T0 + i * 300),
            to_timestamp: ts(T0 + (i + 1) * 300),
            tags: tags("0.2.0"),
            measures: BTreeMap::from([
                (RUNS.to_owned(), runs),
                (NODES.to_owned(), nodes),
                (GRAPHS.to_owned(), i as u64),
            ]),
            logs: vec![],
        },
    )
}

fn open(dir: &Path) -> Spool {
    Spool::open(dir, SpoolLimits::default()).unwrap()
}

/// A slot of the spool root `root`, claimed with the default limits.
fn claim(root: &Path) -> slots::Claim {
    slots::claim(root, SpoolLimits::default()).unwrap()
}

/// Spools `w` in `spool`, then has it refused (`422`) with `answer`.
fn push_rejected(spool: &Spool, w: &SpooledWindow, answer: &str) {
    spool.push(w).unwrap();
    spool.reject(w.destination, w.id, 422, answer).unwrap();
}

fn pending_dir(root: &Path, dest: Destination) -> PathBuf {
    root.join(dest.as_str()).join("pending")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn total(windows: &[SpooledWindow], name: &str) -> u64 {
    windows.iter().map(|w| w.report.measures[name]).sum()
}

#[test]
fn push_then_pending_roundtrips_as_readable_json() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let mut w = window(Destination::Beacon, 0, 150, 450);
    w.report.logs = vec![
        serde_json::json!({"level": "info", "msg": "hi"})
            .as_object()
            .unwrap()
            .clone(),
    ];
    spool.push(&w).unwrap();

    assert_eq!(spool.pending(Destination::Beacon).unwrap(), vec![w.clone()]);
    assert_eq!(spool.oldest(Destination::Beacon).unwrap(), Some(w.clone()));
    assert!(spool.pending(Destination::Auth).unwrap().is_empty());
    assert_eq!(spool.oldest(Destination::Auth).unwrap(), None);

    let files = names(&pending_dir(tmp.path(), Destination::Beacon));
    assert_eq!(
        files,
        vec![format!("20250106T090000.000000000Z_{}.json", w.id)]
    );
    let text =
        fs::read_to_string(pending_dir(tmp.path(), Destination::Beacon).join(&files[0])).unwrap();
    assert!(text.contains("\n  \"version\": 1,\n"), "{text}");
    assert!(
        text.contains("\"from_timestamp\": \"2025-01-06T09:00:00Z\""),
        "{text}"
    );
    assert!(text.ends_with("}\n"));
    assert_eq!(spool.show(&w.id.to_string()).unwrap(), text);
    assert_eq!(spool.show(&files[0]).unwrap(), text);
    assert_eq!(
        spool.show(&format!("beacon/pending/{}", files[0])).unwrap(),
        text
    );
    assert!(matches!(
        spool.show("../etc/passwd"),
        Err(SpoolError::NoSuchEntry { .. })
    ));
    assert!(matches!(
        spool.show(&Uuid::new_v4().to_string()),
        Err(SpoolError::NoSuchEntry { .. })
    ));

    // Survives a restart.
    drop(spool);
    let spool = open(tmp.path());
    assert_eq!(spool.pending(Destination::Beacon).unwrap(), vec![w]);
    let (count, bytes) = spool.stats(Destination::Beacon).unwrap();
    assert_eq!((count, bytes), (1, text.len() as u64));
}

#[test]
fn pending_is_oldest_first_by_from_then_closed_at_then_id() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let d = Destination::Auth;
    let a = window(d, 0, 1, 1);
    let b = window(d, 1, 2, 2);
    let c = window(d, 2, 3, 3);
    // Same start as `c`, closed earlier: sorts before it.
    let mut c0 = window(d, 2, 4, 4);
    c0.closed_at = c.closed_at - chrono::TimeDelta::seconds(10);
    // Same start and close as `c`: the id decides.
    let mut c1 = window(d, 2, 5, 5);
    c1.closed_at = c.closed_at;
    for w in [&c, &a, &c1, &b, &c0] {
        spool.push(w).unwrap();
    }
    let (lo, hi) = if c.id < c1.id { (&c, &c1) } else { (&c1, &c) };
    let want: Vec<Uuid> = [&a, &b, &c0, lo, hi].iter().map(|w| w.id).collect();
    let got: Vec<Uuid> = spool.pending(d).unwrap().iter().map(|w| w.id).collect();
    assert_eq!(got, want);
    assert_eq!(spool.oldest(d).unwrap().unwrap().id, a.id);
    spool.remove(d, a.id).unwrap();
    spool.remove(d, b.id).unwrap();
    // Among equal starts `oldest` applies the full key too.
    assert_eq!(spool.oldest(d).unwrap().unwrap().id, c0.id);
    assert!(matches!(
        spool.remove(d, a.id),
        Err(SpoolError::NotFound { .. })
    ));
    // File names sort in time order.
    let files = names(&pending_dir(tmp.path(), d));
    assert!(files[0].starts_with("20250106T091000"), "{files:?}");
}

#[test]
fn writes_are_atomic_and_leave_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let beacon = pending_dir(tmp.path(), Destination::Beacon);
    {
        let spool = open(tmp.path());
        let mut w = window(Destination::Beacon, 0, 1, 2);
        spool.push(&w).unwrap();
        w.attempts = 3;
        spool.update(&w).unwrap();
        spool
            .save_checkpoint(&Checkpoint::new(
                ts(T0 + 900),
                vec![window(Destination::Beacon, 3, 0, 0)],
            ))
            .unwrap();
    }
    let leftovers: Vec<_> = all_files(tmp.path())
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A write cut short by a crash leaves a temp file; the next open removes it.
    fs::write(beacon.join(".tmp-deadbeef-x.json"), b"{\"vers").unwrap();
    fs::write(tmp.path().join(".tmp-cafe-checkpoint.json"), b"").unwrap();
    let spool = open(tmp.path());
    assert_eq!(names(&beacon).len(), 1);
    assert!(!tmp.path().join(".tmp-cafe-checkpoint.json").exists());
    assert_eq!(spool.pending(Destination::Beacon).unwrap()[0].attempts, 3);
}

#[cfg(unix)]
#[test]
fn directories_are_0700_and_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state").join("spool");
    let spool = open(&root);
    let w = window(Destination::Beacon, 0, 1, 1);
    spool.push(&w).unwrap();
    let r = window(Destination::Auth, 0, 1, 1);
    spool.push(&r).unwrap();
    spool.reject(Destination::Auth, r.id, 400, "bad").unwrap();
    spool
        .save_checkpoint(&Checkpoint::new(ts(T0 + 400), vec![]))
        .unwrap();
    spool.export(&tmp.path().join("export.json")).unwrap();

    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&tmp.path().join("state")), 0o700);
    for sub in [
        "beacon",
        "beacon/pending",
        "beacon/rejected",
        "auth/pending",
        "corrupt",
    ] {
        assert_eq!(mode(&root.join(sub)), 0o700, "{sub}");
    }
    let mut files = all_files(&root);
    files.push(tmp.path().join("export.json"));
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn a_second_opener_is_told_who_holds_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let first = open(tmp.path());
    let err = Spool::open(tmp.path(), SpoolLimits::default()).unwrap_err();
    let SpoolError::Locked { holder, .. } = &err else {
        panic!("{err}");
    };
    let pid = std::process::id().to_string();
    assert!(holder.contains(&format!("pid {pid}")), "{holder}");
    assert!(holder.contains("on host "), "{holder}");
    assert!(!holder.contains("host ?"), "{holder}");
    let msg = err.to_string();
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    assert!(msg.contains("BEACON_SPOOL_DIR"), "{msg}");

    // Inspection works meanwhile, and changes nothing.
    first.push(&window(Destination::Beacon, 0, 7, 7)).unwrap();
    let ro = Spool::open_read_only(tmp.path()).unwrap();
    assert!(ro.is_read_only());
    assert!(!first.is_read_only());
    assert_eq!(ro.pending(Destination::Beacon).unwrap().len(), 1);
    assert!(matches!(
        ro.push(&window(Destination::Beacon, 1, 1, 1)),
        Err(SpoolError::ReadOnly { .. })
    ));
    assert!(matches!(
        ro.recover_checkpoint(),
        Err(SpoolError::ReadOnly { .. })
    ));

    drop(first);
    let again = open(tmp.path());
    assert_eq!(again.pending(Destination::Beacon).unwrap().len(), 1);
    assert!(matches!(
        Spool::open_read_only(&tmp.path().join("nope")),
        Err(SpoolError::NoSpool { .. })
    ));
}

#[test]
fn unreadable_files_go_to_corrupt_and_never_break_pending() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pending_dir(tmp.path(), Destination::Beacon);
    let good = window(Destination::Beacon, 5, 10, 30);
    let good_json = {
        let s = open(tmp.path());
        s.push(&good).unwrap();
        fs::read_to_string(dir.join(good.file_name())).unwrap()
    };
    let sibling = |i: i64| {
        let w = window(Destination::Beacon, i, 1, 1);
        (w.file_name(), serde_json::to_string_pretty(&w).unwrap())
    };

    let mut bad: Vec<(String, Vec<u8>)> = Vec::new();
    let (n, _) = sibling(0);
    bad.push((n, Vec::new())); // empty
    let (n, j) = sibling(1);
    bad.push((n, j.as_bytes()[..j.len() / 2].to_vec())); // truncated
    let (n, _) = sibling(2);
    bad.push((n, b"{\"hello\": \"world\"}".to_vec())); // other JSON
    let (n, j) = sibling(3);
    let negative = j.replace(
        "\"langgraph.platform.runs\": 1",
        "\"langgraph.platform.runs\": -1",
    );
    assert_ne!(negative, j);
    bad.push((n, negative.into_bytes()));
    let (n, j) = sibling(4);
    let overflow = j.replace(
        "\"langgraph.platform.runs\": 1",
        "\"langgraph.platform.runs\": 18446744073709551616",
    );
    bad.push((n, overflow.into_bytes()));
    let (n, j) = sibling(6);
    let future = j.replace("\"version\": 1", "\"version\": 2");
    bad.push((n.clone(), future.clone().into_bytes()));
    let future_name = n;
    let (n, j) = sibling(7);
    let wrong_dest = j.replace("\"destination\": \"beacon\"", "\"destination\": \"auth\"");
    bad.push((n, wrong_dest.into_bytes()));
    bad.push(("notes.txt".to_owned(), b"hello".to_vec()));
    for (name, bytes) in &bad {
        fs::write(dir.join(name), bytes).unwrap();
    }
    // A symbolic link to a valid window elsewhere must not be followed.
    let outside = tmp.path().join("outside.json");
    let (link_name, link_target_json) = sibling(8);
    fs::write(&outside, &link_target_json).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, dir.join(&link_name)).unwrap();
    fs::create_dir(dir.join("a-directory.json")).unwrap();

    let spool = open(tmp.path());
    assert_eq!(
        spool.pending(Destination::Beacon).unwrap(),
        vec![good.clone()]
    );
    assert_eq!(
        spool.oldest(Destination::Beacon).unwrap(),
        Some(good.clone())
    );
    assert_eq!(names(&dir), vec![good.file_name()]);
    assert_eq!(
        fs::read_to_string(dir.join(good.file_name())).unwrap(),
        good_json
    );

    let corrupt = tmp.path().join("corrupt");
    let listing = spool.list().unwrap();
    let expected = bad.len() + 1 + usize::from(cfg!(unix));
    assert_eq!(listing.corrupt.len(), expected, "{listing}");
    for c in &listing.corrupt {
        assert!(c.file.starts_with("corrupt/beacon-pending-"), "{}", c.file);
        assert!(c.reason.as_deref().is_some_and(|r| !r.is_empty()), "{c:?}");
    }
    let reason_of = |name: &str| {
        listing
            .corrupt
            .iter()
            .find(|c| c.file.ends_with(name))
            .and_then(|c| c.reason.clone())
            .unwrap_or_else(|| panic!("{name} not in corrupt/: {listing}"))
    };
    assert!(reason_of(&bad[0].0).contains("empty"));
    assert!(reason_of(&bad[1].0).contains("truncated"));
    assert!(reason_of(&bad[2].0).contains("no numeric \"version\""));
    assert!(reason_of(&bad[3].0).contains("not a valid spooled window"));
    assert!(reason_of(&bad[4].0).contains("not a valid spooled window"));
    let fut = reason_of(&future_name);
    assert!(
        fut.contains("newer beacon-meter") && fut.contains("version 2"),
        "{fut}"
    );
    assert!(reason_of(&bad[6].0).contains("auth window in the beacon directory"));
    assert!(reason_of("a-directory.json").contains("directory"));
    // The future-version file is kept byte for byte.
    assert_eq!(
        fs::read_to_string(corrupt.join(format!("beacon-pending-{future_name}"))).unwrap(),
        future
    );
    #[cfg(unix)]
    {
        assert!(reason_of(&link_name).contains("symbolic link"));
        let moved = corrupt.join(format!("beacon-pending-{link_name}"));
        assert!(
            fs::symlink_metadata(&moved)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&outside).unwrap(), link_target_json);
        let shown = spool.show(&format!("beacon-pending-{link_name}")).unwrap();
        assert!(shown.contains("symbolic link"), "{shown}");
        assert!(!shown.contains("\"version\""), "{shown}");
    }
    // A later push still works, and a second scan moves nothing more.
    spool.push(&window(Destination::Beacon, 9, 1, 1)).unwrap();
    assert_eq!(spool.pending(Destination::Beacon).unwrap().len(), 2);
    assert_eq!(spool.list().unwrap().corrupt.len(), expected);
}

#[test]
fn a_hand_renamed_file_gets_its_canonical_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pending_dir(tmp.path(), Destination::Beacon);
    let spool = open(tmp.path());
    let a = window(Destination::Beacon, 0, 1, 1);
    let b = window(Destination::Beacon, 1, 2, 2);
    spool.push(&a).unwrap();
    spool.push(&b).unwrap();
    // Repairs happen at open and on an explicit rescan, never on a read:
    // the index still knows both windows.
    fs::rename(dir.join(b.file_name()), dir.join("0000-first.json")).unwrap();
    assert_eq!(spool.oldest(Destination::Beacon).unwrap().unwrap().id, a.id);
    spool.rescan().unwrap();
    assert_eq!(names(&dir), vec![a.file_name(), b.file_name()]);
    fs::rename(dir.join(b.file_name()), dir.join("x.json")).unwrap();
    drop(spool);
    let spool = open(tmp.path());
    spool.remove(Destination::Beacon, b.id).unwrap();
    assert_eq!(names(&dir), vec![a.file_name()]);
}

/// Two files holding one window (a copy made by hand): the rescan keeps the
/// one under the canonical name and moves the copy to `corrupt/`, naming
/// the reason, so the window is counted once.
#[test]
fn of_two_files_with_one_window_the_canonical_one_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pending_dir(tmp.path(), Destination::Beacon);
    let spool = open(tmp.path());
    let a = window(Destination::Beacon, 0, 1, 1);
    spool.push(&a).unwrap();
    fs::copy(dir.join(a.file_name()), dir.join("0000-copy.json")).unwrap();
    spool.rescan().unwrap();
    assert_eq!(names(&dir), vec![a.file_name()]);
    assert_eq!(spool.pending(Destination::Beacon).unwrap(), vec![a.clone()]);
    let corrupt = spool.list().unwrap().corrupt;
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    assert!(corrupt[0].file.contains("0000-copy.json"), "{corrupt:?}");
    let reason = corrupt[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("same window id"), "{reason}");
}

/// A file quarantined under a name already in `corrupt/` gets the next free
/// name, even when the earlier file's reason is missing (a crash between
/// moving it and writing the reason): nothing in `corrupt/` is replaced.
#[test]
fn quarantine_never_replaces_a_file_in_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pending_dir(tmp.path(), Destination::Beacon);
    let corrupt = tmp.path().join("corrupt");
    let spool = open(tmp.path());
    fs::write(dir.join("bad.json"), b"first").unwrap();
    spool.rescan().unwrap();
    let first = names(&corrupt);
    assert_eq!(first.len(), 2, "the file and its reason: {first:?}");
    let reason = first.iter().find(|n| n.ends_with(".reason.txt")).unwrap();
    fs::remove_file(corrupt.join(reason)).unwrap();
    fs::write(dir.join("bad.json"), b"second").unwrap();
    spool.rescan().unwrap();
    let mut kept: Vec<Vec<u8>> = names(&corrupt)
        .iter()
        .filter(|n| !n.ends_with(".reason.txt"))
        .map(|n| fs::read(corrupt.join(n)).unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, vec![b"first".to_vec(), b"second".to_vec()]);
}

/// Every file under `root` with its bytes (a link as its target).
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = all_files(root)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
        .map(|p| {
            let bytes = match fs::read_link(&p) {
                Ok(target) => target.to_string_lossy().into_owned().into_bytes(),
                Err(_) => fs::read(&p).unwrap(),
            };
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Windows a, b, c pushed into the spool held at `root`, then damaged
/// behind its back: a's file truncated, b's renamed by hand, and c
/// rejected, then renamed by hand in `rejected/` with its answer file.
fn damage(spool: &Spool, root: &Path) -> [SpooledWindow; 3] {
    let d = Destination::Beacon;
    let (dir, rejected) = (pending_dir(root, d), root.join("beacon/rejected"));
    let [a, b, c] = [0, 1, 2].map(|i| window(d, i, 1, 1));
    for w in [&a, &b, &c] {
        spool.push(w).unwrap();
    }
    spool.reject(d, c.id, 422, "no").unwrap();
    fs::rename(rejected.join(c.file_name()), rejected.join("by-hand.json")).unwrap();
    let answer = c.file_name().replace(".json", ".answer.txt");
    fs::rename(rejected.join(answer), rejected.join("by-hand.answer.txt")).unwrap();
    fs::write(dir.join(a.file_name()), b"{\"version\": 1, \"id\"").unwrap();
    fs::rename(dir.join(b.file_name()), dir.join("renamed.json")).unwrap();
    [a, b, c]
}

/// The damage of [`damage`] repaired: a in `corrupt/`, b and c under
/// their canonical names.
fn assert_repaired(root: &Path, [a, b, c]: &[SpooledWindow; 3]) {
    assert_eq!(
        names(&pending_dir(root, Destination::Beacon)),
        vec![b.file_name()]
    );
    let rejected = names(&root.join("beacon/rejected"));
    let answer = c.file_name().replace(".json", ".answer.txt");
    assert_eq!(
        rejected,
        vec![answer, c.file_name()],
        "the answer follows its window"
    );
    let corrupt = names(&root.join("corrupt"));
    assert_eq!(corrupt.len(), 2, "the file and its reason: {corrupt:?}");
    assert!(corrupt[0].ends_with(&a.file_name()), "{corrupt:?}");
}

#[test]
fn reads_never_repair_open_and_rescan_do() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let d = Destination::Beacon;
    let spool = open(root);
    let windows = damage(&spool, root);
    let [_, b, c] = &windows;
    let reads = |spool: &Spool| {
        assert_eq!(spool.pending(d).unwrap(), vec![b.clone()], "a is skipped");
        let listing = spool.list().unwrap();
        assert_eq!(listing.pending[&d].len(), 1);
        assert_eq!(listing.rejected.len(), 1, "{listing}");
        assert!(listing.corrupt.is_empty(), "{listing}");
        for id in [b.id, c.id].map(|id| id.to_string()) {
            assert!(spool.show(&id).unwrap().contains(&id));
        }
        spool.stats(d).unwrap();
        assert_eq!(spool.oldest(d).unwrap().map(|w| w.id), Some(b.id));
        spool.export(&root.join("export.json")).unwrap();
        fs::remove_file(root.join("export.json")).unwrap();
    };
    // Reads, held or read-only, change nothing; a rescan repairs.
    let before = snapshot(root);
    reads(&spool);
    assert_eq!(snapshot(root), before, "a read changed the held spool");
    reads(&Spool::open_read_only(root).unwrap());
    assert_eq!(snapshot(root), before, "a read changed the spool");
    spool.rescan().unwrap();
    assert_repaired(root, &windows);
    assert_eq!(spool.pending(d).unwrap(), vec![b.clone()]);

    // The same damage found when the spool is opened: open repairs.
    let tmp = tempfile::tempdir().unwrap();
    let windows = damage(&open(tmp.path()), tmp.path());
    let _spool = open(tmp.path());
    assert_repaired(tmp.path(), &windows);
}

#[test]
fn reject_keeps_the_answer_and_requeue_puts_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let d = Destination::Beacon;
    let mut w = window(d, 0, 3, 9);
    spool.push(&w).unwrap();
    w.attempts = 2;
    spool.update(&w).unwrap();
    let keep = window(d, 1, 1, 1);
    spool.push(&keep).unwrap();

    let answer = format!("{{\"error\":\"bad tags\"}}{}", "é".repeat(10_000));
    spool.reject(d, w.id, 422, &answer).unwrap();
    assert_eq!(spool.pending(d).unwrap(), vec![keep.clone()]);
    let rejected = tmp.path().join("beacon/rejected");
    let stem = w.file_name().trim_end_matches(".json").to_owned();
    assert_eq!(
        names(&rejected),
        vec![format!("{stem}.answer.txt"), w.file_name()]
    );
    let text = fs::read_to_string(rejected.join(format!("{stem}.answer.txt"))).unwrap();
    assert!(text.starts_with("status: 422\n"), "{text}");
    assert!(text.contains("{\"error\":\"bad tags\"}"));
    assert!(text.len() < 16 * 1024 + 300, "{}", text.len());
    // The answer is kept up to 16 KiB, cut on a character boundary.
    let kept = text.matches('é').count() * 2 + "{\"error\":\"bad tags\"}".len();
    assert!((16 * 1024 - 1..=16 * 1024).contains(&kept), "{kept}");
    let more = answer.len() - kept;
    assert!(
        text.contains(&format!("[... {more} more bytes of the answer not kept]")),
        "{text}"
    );

    let listing = spool.list().unwrap();
    assert_eq!(listing.rejected.len(), 1);
    assert_eq!(listing.rejected[0].status, Some(422));
    assert_eq!(listing.rejected[0].window.id, w.id);
    assert!(listing.to_string().contains("HTTP 422"), "{listing}");
    assert!(matches!(
        spool.reject(d, w.id, 422, "again"),
        Err(SpoolError::NotFound { .. })
    ));
    // `show` finds rejected windows by id too.
    assert!(
        spool
            .show(&w.id.to_string())
            .unwrap()
            .contains("\"attempts\": 2")
    );

    assert_eq!(spool.requeue_rejected().unwrap(), 1);
    assert!(names(&rejected).is_empty());
    let back = spool.pending(d).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].id, w.id, "same id: it was refused, not counted");
    assert_eq!(back[0].attempts, 0);
    assert_eq!(back[0].report, w.report);
    assert_eq!(spool.requeue_rejected().unwrap(), 0);
}

#[test]
fn update_changes_only_attempts_and_in_doubt_which_is_sticky() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let d = Destination::Beacon;
    let mut w = window(d, 0, 1, 1);
    spool.push(&w).unwrap();
    w.attempts = 1;
    w.in_doubt = true;
    spool.update(&w).unwrap();
    w.attempts = 2;
    w.in_doubt = false;
    spool.update(&w).unwrap();
    let stored = spool.oldest(d).unwrap().unwrap();
    assert_eq!((stored.attempts, stored.in_doubt), (2, true));

    let mut changed = stored.clone();
    changed.report.measures.insert(RUNS.to_owned(), 99);
    let err = spool.update(&changed).unwrap_err();
    assert!(
        err.to_string().contains("only `attempts` and `in_doubt`"),
        "{err}"
    );
    // A retried push of the same id keeps it in doubt.
    let mut again = stored.clone();
    again.in_doubt = false;
    spool.push(&again).unwrap();
    assert!(spool.oldest(d).unwrap().unwrap().in_doubt);
    assert_eq!(spool.pending(d).unwrap().len(), 1);

    spool.remove(d, w.id).unwrap();
    assert!(matches!(spool.update(&w), Err(SpoolError::NotFound { .. })));

    let mut bad = window(d, 1, 1, 1);
    bad.report.to_timestamp = bad.report.from_timestamp;
    assert!(matches!(
        spool.push(&bad),
        Err(SpoolError::InvalidWindow { .. })
    ));
}

#[test]
fn checkpoint_save_read_and_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let peek = || Spool::peek_checkpoint(tmp.path()).unwrap();
    assert_eq!(peek(), CheckpointPeek::Absent);
    assert_eq!(spool.recover_checkpoint().unwrap(), 0);
    let mut open_w = window(Destination::Beacon, 0, 5, 5);
    open_w.report.to_timestamp = ts(T0 + 120);
    let cp = Checkpoint::new(ts(T0 + 120), vec![open_w]);
    spool.save_checkpoint(&cp).unwrap();
    let text = fs::read_to_string(tmp.path().join("checkpoint.json")).unwrap();
    assert!(text.contains("\"saved_at\""), "{text}");
    assert_eq!(peek(), CheckpointPeek::Found(cp.clone()));
    assert_eq!(spool.recover_checkpoint().unwrap(), 1);
    assert!(!tmp.path().join("checkpoint.json").exists());
    assert_eq!(spool.recover_checkpoint().unwrap(), 0);

    fs::write(tmp.path().join("checkpoint.json"), &text[..text.len() - 10]).unwrap();
    assert!(matches!(peek(), CheckpointPeek::Unreadable(_)));
    assert_eq!(spool.recover_checkpoint().unwrap(), 0);
    assert!(!tmp.path().join("checkpoint.json").exists());
    let listing = spool.list().unwrap();
    assert_eq!(listing.corrupt.len(), 1);
    assert_eq!(listing.corrupt[0].file, "corrupt/root-checkpoint.json");

    let mut bad = cp.clone();
    bad.version = 7;
    assert!(spool.save_checkpoint(&bad).is_err());
}

#[test]
fn recover_checkpoint_skips_windows_already_spooled() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Destination::Beacon;
    let a = Destination::Auth;
    {
        let spool = open(tmp.path());
        // Closed and spooled before the crash: the checkpoint still holds
        // the open copy under the same id (saved before the window closed).
        let spooled = window(b, 0, 10, 30);
        // A closed auth window spooled under another id but the same start.
        let spooled_auth = window(a, 0, 4, 4);
        let mut cp_b = spooled.clone();
        cp_b.report.to_timestamp = ts(T0 + 200);
        let mut cp_a = window(a, 0, 3, 3);
        cp_a.report.to_timestamp = ts(T0 + 200);
        spool
            .save_checkpoint(&Checkpoint::new(ts(T0 + 200), vec![cp_b, cp_a]))
            .unwrap();
        // Simulate the crash window: the files are written, the checkpoint
        // not yet replaced (push drops the matching open windows itself, so
        // restore it afterwards).
        let cp_text = fs::read(tmp.path().join("checkpoint.json")).unwrap();
        spool.push(&spooled).unwrap();
        spool.push(&spooled_auth).unwrap();
        assert!(
            !tmp.path().join("checkpoint.json").exists(),
            "push pruned it"
        );
        fs::write(tmp.path().join("checkpoint.json"), cp_text).unwrap();
    }
    let spool = open(tmp.path());
    assert_eq!(spool.recover_checkpoint().unwrap(), 0);
    assert!(!tmp.path().join("checkpoint.json").exists());
    assert_eq!(spool.pending(b).unwrap().len(), 1);
    assert_eq!(spool.pending(a).unwrap().len(), 1);

    // A crash mid-window: the open windows become pending windows.
    let mut open_b = window(b, 1, 6, 18);
    open_b.report.to_timestamp = ts(T0 + 420);
    let mut open_a = window(a, 1, 2, 2);
    open_a.report.to_timestamp = ts(T0 + 420);
    // A zero-length window that counted nothing is not worth a report.
    let mut empty = window(a, 9, 0, 0);
    empty.report.to_timestamp = empty.report.from_timestamp;
    spool
        .save_checkpoint(&Checkpoint::new(
            ts(T0 + 420),
            vec![open_b.clone(), open_a.clone(), empty],
        ))
        .unwrap();
    drop(spool);
    let spool = open(tmp.path());
    assert_eq!(spool.recover_checkpoint().unwrap(), 2);
    assert_eq!(spool.pending(b).unwrap()[1], open_b);
    assert_eq!(spool.pending(a).unwrap()[1], open_a);
    assert_eq!(spool.pending(a).unwrap().len(), 2);
    assert_eq!(spool.recover_checkpoint().unwrap(), 0);
}

#[test]
fn recover_checkpoint_skips_a_window_inside_a_merged_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Destination::Beacon;
    let limits = SpoolLimits {
        max_windows: 2,
        max_bytes: u64::MAX,
    };
    let spool = Spool::open(tmp.path(), limits).unwrap();
    let ws: Vec<_> = (0..3).map(|i| window(d, i, 1, 1)).collect();
    for w in &ws {
        spool.push(w).unwrap();
    }
    let pending = spool.pending(d).unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1].merged, 2);
    // The checkpoint from before the crash still holds window 2 (open),
    // under a different id: the merged window covers its start.
    let mut cp_w = window(d, 2, 1, 1);
    cp_w.report.to_timestamp = ts(T0 + 2 * 300 + 100);
    spool
        .save_checkpoint(&Checkpoint::new(cp_w.report.to_timestamp, vec![cp_w]))
        .unwrap();
    assert_eq!(spool.recover_checkpoint().unwrap(), 0);
    assert_eq!(total(&spool.pending(d).unwrap(), RUNS), 3);
}

/// The rule of `recover_checkpoint`, case by case: a checkpoint window is
/// skipped only if a spooled window has its id or its start, or is a merged
/// window whose span holds its start; otherwise it is recovered.
#[test]
fn recover_checkpoint_skips_exactly_what_is_already_spooled() {
    let d = Destination::Beacon;
    let limits = SpoolLimits {
        max_windows: 2,
        max_bytes: u64::MAX,
    };
    let recovered = |spooled: &[SpooledWindow], open: SpooledWindow| {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path(), limits).unwrap();
        spooled.iter().for_each(|w| spool.push(w).unwrap());
        let cp = Checkpoint::new(open.report.to_timestamp, vec![open]);
        spool.save_checkpoint(&cp).unwrap();
        let n = spool.recover_checkpoint().unwrap();
        (n, spool.pending(d).unwrap())
    };
    let plain = window(d, 0, 1, 1);
    let at = |w: &SpooledWindow, from: i64, to: i64| {
        let mut w = w.clone();
        w.report.from_timestamp = ts(T0 + from);
        w.report.to_timestamp = ts(T0 + to);
        w
    };
    // Same id, another start (the id is fixed when the window opens).
    assert_eq!(
        recovered(std::slice::from_ref(&plain), at(&plain, 400, 500)).0,
        0
    );
    // Another id and start inside a plain window's span: not the same
    // window, so it is recovered.
    let inside = window(d, 0, 2, 2);
    assert_eq!(
        recovered(std::slice::from_ref(&plain), at(&inside, 100, 200)).0,
        1
    );
    // Three windows under a bound of two leave a merged window [300, 900)
    // (see the test above). It holds starts 300..900, not its end: the
    // window opened right after a merged backlog is recovered (and then
    // merged in by the bound).
    let three: Vec<_> = (0..3).map(|i| window(d, i, 1, 1)).collect();
    let (n, pending) = recovered(&three, window(d, 3, 5, 5));
    assert_eq!(n, 1);
    assert_eq!(total(&pending, RUNS), 8);
    assert_eq!(pending[1].merged, 3, "{pending:?}");
    // A zero-length window that counted is stretched to 1 ms, not dropped.
    let zero = at(&window(d, 0, 7, 7), 600, 600);
    let (n, pending) = recovered(&[], zero.clone());
    assert_eq!(n, 1);
    assert_eq!(
        pending[0].report.to_timestamp,
        zero.report.from_timestamp + chrono::TimeDelta::milliseconds(1)
    );
    assert_eq!(total(&pending, RUNS), 7);
}

/// Spooling a closed window drops its open copy from the checkpoint, and
/// only that one: the other destination's open window, with the same
/// start, stays to be recovered.
#[test]
fn push_prunes_only_its_own_open_window_from_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let closed_b = window(Destination::Beacon, 0, 3, 3);
    let mut open_b = closed_b.clone();
    open_b.report.to_timestamp = ts(T0 + 200);
    let mut open_a = window(Destination::Auth, 0, 1, 1);
    open_a.report.to_timestamp = ts(T0 + 200);
    let cp = Checkpoint::new(ts(T0 + 200), vec![open_b, open_a.clone()]);
    spool.save_checkpoint(&cp).unwrap();
    spool.push(&closed_b).unwrap();
    let CheckpointPeek::Found(left) = Spool::peek_checkpoint(tmp.path()).unwrap() else {
        panic!("the auth window's checkpoint is gone");
    };
    assert_eq!(left.windows, vec![open_a.clone()]);
    // An older window spooled late (it waited in memory while the disk was
    // full) leaves the newer open window of its destination in place.
    let mut open_b1 = window(Destination::Beacon, 1, 2, 2);
    open_b1.report.to_timestamp = ts(T0 + 400);
    let cp = Checkpoint::new(ts(T0 + 400), vec![open_b1.clone(), open_a.clone()]);
    spool.save_checkpoint(&cp).unwrap();
    spool.push(&window(Destination::Beacon, -1, 1, 1)).unwrap();
    let CheckpointPeek::Found(left) = Spool::peek_checkpoint(tmp.path()).unwrap() else {
        panic!("the checkpoint is gone");
    };
    assert_eq!(left.windows, vec![open_b1, open_a]);
}

/// `next_to_send`: the oldest window alone, or the head of a backlog merged
/// (within the span and count given, never past an in-doubt window); what
/// it returns stays on disk until it is removed, and a file changed behind
/// the spool's back is re-read, not trusted to the index.
#[test]
fn next_to_send_merges_the_head_and_keeps_it_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let d = Destination::Beacon;
    let on_disk = || -> Vec<Uuid> {
        let ro = Spool::open_read_only(tmp.path()).unwrap();
        ro.pending(d).unwrap().iter().map(|w| w.id).collect()
    };
    let next = |span: i64, max: usize| {
        let span = chrono::TimeDelta::minutes(span);
        spool.next_to_send(d, span, max).unwrap().unwrap()
    };
    let w: Vec<_> = (0..5).map(|i| window(d, i, 1, 1)).collect();
    spool.push(&w[0]).unwrap();
    assert_eq!(next(360, 288), w[0], "one window goes as itself");
    assert_eq!(on_disk(), vec![w[0].id]);

    w[1..].iter().for_each(|x| spool.push(x).unwrap());
    let merged = next(360, 3);
    assert_eq!((merged.merged, merged.report.from_timestamp), (3, ts(T0)));
    assert_eq!(merged.report.to_timestamp, ts(T0 + 900));
    assert_eq!(total(std::slice::from_ref(&merged), RUNS), 3);
    assert_eq!(on_disk(), vec![merged.id, w[3].id, w[4].id]);
    spool.remove(d, merged.id).unwrap();

    assert_eq!(next(5, 288), w[3], "w[4] ends past a 5-minute span");
    let mut doubt = w[3].clone();
    doubt.in_doubt = true;
    spool.update(&doubt).unwrap();
    assert_eq!(next(360, 288), doubt, "an in-doubt head goes alone");
    spool.remove(d, w[3].id).unwrap();

    // w[4]'s file now holds another window: that one is sent, and its
    // removal finds it.
    let other = window(d, 4, 9, 9);
    let path = pending_dir(tmp.path(), d).join(w[4].file_name());
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replace(&w[4].id.to_string(), &other.id.to_string()),
    )
    .unwrap();
    assert_eq!(next(360, 288).id, other.id);
    spool.remove(d, other.id).unwrap();
    assert_eq!(on_disk(), Vec::<Uuid>::new());
}

/// The byte bound is inclusive: windows taking exactly `max_bytes` stay as
/// they are; one byte less and the oldest two after the head are merged.
#[test]
fn the_byte_bound_is_inclusive() {
    let d = Destination::Beacon;
    let ws = [0, 1, 2].map(|i| window(d, i, 1, 1));
    let pending_under = |max_bytes| {
        let tmp = tempfile::tempdir().unwrap();
        let limits = SpoolLimits {
            max_windows: 100,
            max_bytes,
        };
        let spool = Spool::open(tmp.path(), limits).unwrap();
        ws.iter().for_each(|w| spool.push(w).unwrap());
        spool.stats(d).unwrap()
    };
    let (n, bytes) = pending_under(u64::MAX);
    assert_eq!(n, 3);
    assert_eq!(pending_under(bytes), (3, bytes));
    assert_eq!(pending_under(bytes - 1).0, 2);
}

/// A spool file may hold up to 16 MiB: a 2 MiB window (a large tag) is
/// spooled and read back whole, a 17 MiB one refused.
#[test]
fn a_two_mib_window_is_spooled_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let d = Destination::Beacon;
    let mut w = window(d, 0, 1, 1);
    w.report
        .tags
        .insert("myplatform.big".to_owned(), "x".repeat(2 << 20));
    spool.push(&w).unwrap();
    assert_eq!(spool.pending(d).unwrap(), vec![w.clone()]);
    // Past 16 MiB it is refused, saying why, and nothing is written.
    w.id = Uuid::new_v4();
    w.report
        .tags
        .insert("myplatform.big".to_owned(), "x".repeat(17 << 20));
    let err = spool.push(&w).unwrap_err().to_string();
    assert!(err.contains("more than the 16777216 bytes"), "{err}");
    assert_eq!(spool.pending(d).unwrap().len(), 1);
}

/// A write in progress (its temporary file) is not a window: readers
/// neither list it nor count it as unreadable.
#[test]
fn a_write_in_progress_is_invisible_to_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let d = Destination::Beacon;
    let w = window(d, 0, 1, 1);
    spool.push(&w).unwrap();
    let half =
        pending_dir(tmp.path(), d).join(format!(".tmp-0001-{}", window(d, 1, 1, 1).file_name()));
    fs::write(&half, b"{\"version\": 1, \"id\"").unwrap();
    let ro = Spool::open_read_only(tmp.path()).unwrap();
    assert_eq!(ro.pending(d).unwrap(), vec![w.clone()]);
    let listing = ro.list().unwrap();
    assert!(listing.corrupt.is_empty(), "{listing}");
    assert_eq!(listing.pending[&d].len(), 1, "{listing}");
    assert_eq!(ro.stats(d).unwrap().0, 1, "the quick count skips it too");
    assert_eq!(spool.pending(d).unwrap(), vec![w]);
}

/// `spool list`'s text: one line per window with its span, attempts,
/// whether it is in doubt or merged, and its measures; a checkpoint in a
/// slot shows in the root's listing.
#[test]
fn the_listing_text_has_a_line_per_window() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Destination::Beacon;
    let limits = SpoolLimits {
        max_windows: 2,
        max_bytes: u64::MAX,
    };
    let slot = slots::claim(tmp.path(), limits).unwrap();
    let mut first = window(d, 0, 3, 9);
    for w in [first.clone(), window(d, 1, 1, 1), window(d, 2, 1, 1)] {
        slot.spool.push(&w).unwrap();
    }
    first.attempts = 2;
    first.in_doubt = true;
    slot.spool.update(&first).unwrap();
    let mut open_w = window(Destination::Auth, 3, 1, 1);
    open_w.report.to_timestamp = ts(T0 + 1000);
    let cp = Checkpoint::new(ts(T0 + 1000), vec![open_w]);
    slot.spool.save_checkpoint(&cp).unwrap();

    let ro = Spool::open_read_only(tmp.path()).unwrap();
    let listing = ro.list().unwrap();
    assert!(listing.checkpoint, "the slot's checkpoint counts");
    let text = listing.to_string();
    let merged = &listing.pending[&d][1];
    let bytes: u64 = listing.pending[&d].iter().map(|w| w.bytes).sum();
    // The quick count (file sizes, nothing parsed) agrees, slots summed.
    assert_eq!(ro.stats(d).unwrap(), (2, bytes));
    assert_eq!(ro.stats(Destination::Auth).unwrap(), (0, 0));
    let expected = [
        format!("beacon: 2 pending ({bytes} bytes)"),
        format!(
            "  {}  2025-01-06T09:00:00Z .. 2025-01-06T09:05:00Z  attempts=2 \
             IN-DOUBT  langgraph.platform.nodes=9 langgraph.platform.py_graphs=0 \
             langgraph.platform.runs=3",
            first.id
        ),
        format!(
            "  {}  2025-01-06T09:05:00Z .. 2025-01-06T09:15:00Z  attempts=0 \
             merged=2  langgraph.platform.nodes=2 langgraph.platform.py_graphs=2 \
             langgraph.platform.runs=2",
            merged.id
        ),
        "checkpoint: present (open windows of the last run)".to_owned(),
    ];
    for line in expected {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
}

#[test]
fn bound_merges_adjacent_windows_and_keeps_totals_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = SpoolLimits {
        max_windows: 5,
        max_bytes: u64::MAX,
    };
    let spool = Spool::open(tmp.path(), limits).unwrap();
    let d = Destination::Beacon;
    let mut pushed = Vec::new();
    for i in 0..60 {
        let w = window(d, i, (i as u64 * 7) % 13 + 1, (i as u64 * 11) % 17);
        spool.push(&w).unwrap();
        pushed.push(w);
        let p = spool.pending(d).unwrap();
        // Merging stops exactly at the bound, never below it.
        assert_eq!(p.len(), (i as usize + 1).min(5), "pending after push {i}");
        assert_eq!(total(&p, RUNS), total(&pushed, RUNS), "push {i}");
        assert_eq!(total(&p, NODES), total(&pushed, NODES), "push {i}");
        assert_eq!(
            p.iter().map(|w| w.merged).sum::<u32>() as usize,
            pushed.len()
        );
        // Time still tiles: each window starts where the previous ended.
        for pair in p.windows(2) {
            assert_eq!(pair[0].report.to_timestamp, pair[1].report.from_timestamp);
        }
        assert_eq!(p[0].id, pushed[0].id, "the oldest window is never merged");
    }
    let p = spool.pending(d).unwrap();
    let merged = p.iter().find(|w| w.merged > 1).unwrap();
    assert_eq!(merged.attempts, 0);
    // A gauge takes the later window's value.
    let last_covered = (merged.report.to_timestamp.timestamp() - T0) / 300 - 1;
    assert_eq!(merged.report.measures[GRAPHS], last_covered as u64);
    assert!(!pushed.iter().any(|w| w.id == merged.id), "a new id");
    // The merged file records what it replaced; nothing else is on disk.
    let dir = pending_dir(tmp.path(), d);
    assert_eq!(names(&dir).len(), p.len());
    let text = fs::read_to_string(dir.join(merged.file_name())).unwrap();
    assert!(text.contains("\"replaces\""), "{text}");
}

#[test]
fn byte_bound_merges_too() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Destination::Auth;
    let one = {
        let probe = tempfile::tempdir().unwrap();
        let s = open(probe.path());
        s.push(&window(d, 0, 1, 1)).unwrap();
        s.stats(d).unwrap().1
    };
    let limits = SpoolLimits {
        max_windows: usize::MAX,
        max_bytes: one * 4,
    };
    let spool = Spool::open(tmp.path(), limits).unwrap();
    for i in 0..30 {
        spool.push(&window(d, i, 2, 3)).unwrap();
        let (_, bytes) = spool.stats(d).unwrap();
        assert!(bytes <= one * 4 + 64, "{bytes} > {}", one * 4);
        // ... and merging stops once within it: one merge frees about one
        // window's bytes, so a spool merged no further than needed is
        // within one window (plus the merged file's longer list) of it.
        if i >= 4 {
            assert!(
                bytes + one + 64 > one * 4,
                "merged below the bound: {bytes} bytes after push {i}"
            );
        }
    }
    let p = spool.pending(d).unwrap();
    assert_eq!(total(&p, RUNS), 60);
    assert_eq!(total(&p, NODES), 90);
}

#[test]
fn in_doubt_windows_and_different_tags_are_never_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = SpoolLimits {
        max_windows: 3,
        max_bytes: u64::MAX,
    };
    let spool = Spool::open(tmp.path(), limits).unwrap();
    let d = Destination::Beacon;
    let mut in_doubt = Vec::new();
    for i in 0..12 {
        let mut w = window(d, i, 1, 1);
        if i % 2 == 1 {
            w.in_doubt = true;
            w.attempts = 1;
            in_doubt.push(w.clone());
        }
        spool.push(&w).unwrap();
    }
    // Alternating in-doubt windows leave no mergeable pair: all are kept.
    let p = spool.pending(d).unwrap();
    assert_eq!(p.len(), 12);
    assert_eq!(total(&p, RUNS), 12);
    for w in &in_doubt {
        assert!(p.contains(w), "in-doubt window {} changed", w.id);
    }

    let tmp = tempfile::tempdir().unwrap();
    let spool = Spool::open(tmp.path(), limits).unwrap();
    for i in 0..8 {
        let mut w = window(d, i, 1, 1);
        w.report.tags = tags(if i % 2 == 0 { "0.2.0" } else { "0.3.0" });
        spool.push(&w).unwrap();
    }
    let p = spool.pending(d).unwrap();
    assert_eq!(p.len(), 8);
    assert!(p.iter().all(|w| w.merged == 1));
}

#[test]
fn an_interrupted_merge_never_counts_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Destination::Beacon;
    let dir = pending_dir(tmp.path(), d);
    let (a, b, c) = (window(d, 0, 1, 1), window(d, 1, 2, 2), window(d, 2, 4, 4));
    {
        let spool = open(tmp.path());
        for w in [&a, &b, &c] {
            spool.push(w).unwrap();
        }
    }
    // The state a crash leaves between writing a merged window and deleting
    // its originals: merged(b, c) beside b and c.
    let m = beacon_meter::spool::merge(&b, &c, Uuid::new_v4()).unwrap();
    let mut v = serde_json::to_value(&m).unwrap();
    v["replaces"] = serde_json::json!([b.id, c.id]);
    fs::write(
        dir.join(m.file_name()),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    let spool = open(tmp.path());
    let p = spool.pending(d).unwrap();
    assert_eq!(p.iter().map(|w| w.id).collect::<Vec<_>>(), vec![a.id, m.id]);
    assert_eq!(total(&p, RUNS), 7);
    assert_eq!(names(&dir).len(), 2);
}

#[test]
fn export_bundles_every_pending_window() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = open(tmp.path());
    let ws = [
        window(Destination::Beacon, 0, 1, 2),
        window(Destination::Beacon, 1, 3, 4),
        window(Destination::Auth, 0, 5, 6),
    ];
    for w in &ws {
        spool.push(w).unwrap();
    }
    let out = tmp.path().join("out").join("bundle.json");
    fs::create_dir(tmp.path().join("out")).unwrap();
    assert_eq!(spool.export(&out).unwrap(), 3);
    let text = fs::read_to_string(&out).unwrap();
    let bundle: SpoolExport = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle.format, EXPORT_FORMAT);
    assert_eq!(bundle.version, 1);
    assert_eq!(bundle.windows, ws.to_vec());
    // The report is exactly the wire body.
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        raw["windows"][0]["report"]["from_timestamp"],
        "2025-01-06T09:00:00Z"
    );
    assert_eq!(raw["windows"][2]["destination"], "auth");
    // Still pending.
    assert_eq!(spool.stats(Destination::Beacon).unwrap().0, 2);
    assert!(spool.export(tmp.path()).is_err(), "a directory is refused");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Any sequence of pushes (some in doubt, tags changing now and then)
    /// under small limits keeps every count: per tag set, the counter totals
    /// over pending equal what was pushed, and every in-doubt window is
    /// still there unchanged.
    #[test]
    fn merging_never_loses_or_doubles_a_count(
        steps in proptest::collection::vec((0u64..1_000_000, 0u64..5_000, any::<bool>(), 0u8..10), 1..50),
        max_windows in 2usize..6,
        byte_factor in 2u64..8,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let limits = SpoolLimits { max_windows, max_bytes: byte_factor * 700 };
        let spool = Spool::open(tmp.path(), limits).unwrap();
        let d = Destination::Beacon;
        let mut pushed = Vec::new();
        let mut version = 0;
        for (i, &(runs, nodes, doubt, r)) in steps.iter().enumerate() {
            if r == 0 {
                version += 1;
            }
            let mut w = window(d, i as i64, runs, nodes);
            w.report.tags = tags(&format!("0.{version}.0"));
            w.in_doubt = doubt && r % 3 == 0;
            spool.push(&w).unwrap();
            pushed.push(w);
        }
        let pending = spool.pending(d).unwrap();
        for v in 0..=version {
            let t = tags(&format!("0.{v}.0"));
            let of = |ws: &[SpooledWindow]| -> (u64, u64) {
                let sel: Vec<_> = ws.iter().filter(|w| w.report.tags == t).cloned().collect();
                (total(&sel, RUNS), total(&sel, NODES))
            };
            prop_assert_eq!(of(&pending), of(&pushed));
        }
        prop_assert_eq!(pending.iter().map(|w| w.merged as usize).sum::<usize>(), pushed.len());
        for w in pushed.iter().filter(|w| w.in_doubt) {
            prop_assert!(pending.contains(w));
        }
        // Over the bound only when nothing more may be merged.
        let (count, bytes) = spool.stats(d).unwrap();
        if count > max_windows || bytes > limits.max_bytes {
            for pair in pending[1..].windows(2) {
                prop_assert!(beacon_meter::spool::merge(&pair[0], &pair[1], Uuid::new_v4()).is_none());
            }
        }
    }
}

#[test]
fn an_unusable_spool_path_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let err = Spool::open(&file.join("spool"), SpoolLimits::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&file.join("spool").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("BEACON_SPOOL_DIR"), "{msg}");
}

#[test]
fn spool_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Spool>();
    let tmp = tempfile::tempdir().unwrap();
    let spool = std::sync::Arc::new(open(tmp.path()));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let spool = spool.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    spool
                        .push(&window(Destination::Beacon, t * 10 + i, 1, 2))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let p = spool.pending(Destination::Beacon).unwrap();
    assert_eq!((p.len(), total(&p, RUNS), total(&p, NODES)), (40, 40, 80));
}

/// A dead process's rejected window is adopted with its answer file, so
/// the listing still shows why the server refused it.
#[test]
fn an_adopted_rejected_window_keeps_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = Destination::Beacon;
    let a = claim(root);
    let b = claim(root);
    let w = window(d, 0, 1, 1);
    push_rejected(&b.spool, &w, "bad tags");
    drop(b);
    drop(a);
    let c = claim(root);
    assert_eq!((c.slot, c.adopted), (0, 1));
    let answer = w.file_name().replace(".json", ".answer.txt");
    assert_eq!(
        names(&root.join("slot-0/beacon/rejected")),
        vec![answer.clone(), w.file_name()]
    );
    let listing = c.spool.list().unwrap();
    assert_eq!(listing.rejected.len(), 1);
    assert_eq!(listing.rejected[0].status, Some(422));
    // A short answer is kept whole, with no note of bytes left out.
    let text = fs::read_to_string(root.join("slot-0/beacon/rejected").join(&answer)).unwrap();
    assert!(text.ends_with("\n\nbad tags\n"), "{text}");
}

/// `requeue_all` opens only the slots that hold rejected windows (a live
/// reporter's slot without any does not stop it), and moves all or none.
#[test]
fn requeue_all_takes_the_slots_with_rejected_windows_all_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = Destination::Beacon;
    let held = claim(root);
    let dead = claim(root);
    let w = window(d, 0, 1, 1);
    push_rejected(&dead.spool, &w, "no");
    drop(dead);
    assert_eq!(slots::requeue_all(root).unwrap(), 1);
    let slot1 = Spool::open_read_only(&root.join("slot-1")).unwrap();
    assert_eq!(slot1.pending(d).unwrap(), vec![w.clone()]);

    // A held slot with a rejected window: nothing moves anywhere.
    let v = window(d, 1, 1, 1);
    push_rejected(&held.spool, &v, "no");
    let other = Spool::open(&root.join("slot-1"), SpoolLimits::default()).unwrap();
    push_rejected(&other, &window(d, 2, 1, 1), "no");
    drop(other);
    assert!(matches!(
        slots::requeue_all(root),
        Err(SpoolError::Locked { .. })
    ));
    let slot1 = Spool::open_read_only(&root.join("slot-1")).unwrap();
    assert_eq!(slot1.list().unwrap().rejected.len(), 1, "not moved");
}

/// A `slot-N` that is not a directory is not ours: the claim skips it.
#[test]
fn a_claim_skips_a_slot_name_that_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("slot-0"), b"not a slot").unwrap();
    let c = claim(dir.path());
    assert_eq!(c.slot, 1);
    assert_eq!(fs::read(dir.path().join("slot-0")).unwrap(), b"not a slot");
}

/// In its own process-free test binary: a child process forked by another
/// test would briefly share this one's lock files (an flock belongs to the
/// open file, which a fork shares until the child execs).
#[test]
fn slots_are_claimed_lowest_first_and_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = claim(root);
    let b = claim(root);
    assert_eq!((a.slot, b.slot), (0, 1));
    let w = window(Destination::Beacon, 1, 4, 12);
    b.spool.push(&w).unwrap();
    drop(b);
    // slot-1 is free: a new claim takes it (the lowest free) and so holds
    // its window; nothing is adopted because nothing else is free.
    let c = claim(root);
    assert_eq!((c.slot, c.adopted), (1, 0));
    assert_eq!(c.spool.pending(Destination::Beacon).unwrap().len(), 1);
    drop(c);
    drop(a);
    // Both free: slot-0 is claimed and slot-1's window adopted, in doubt
    // (it may have been in flight when its process stopped).
    let d = claim(root);
    assert_eq!((d.slot, d.adopted), (0, 1));
    let p = d.spool.pending(Destination::Beacon).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].id, w.id);
    assert!(p[0].in_doubt);
    // The read-only view sees every slot.
    let e = claim(root);
    e.spool.push(&window(Destination::Beacon, 2, 2, 6)).unwrap();
    let ro = Spool::open_read_only(root).unwrap();
    assert_eq!(ro.pending(Destination::Beacon).unwrap().len(), 2);
    let listing = ro.list().unwrap();
    let files: Vec<&str> = listing.pending[&Destination::Beacon]
        .iter()
        .map(|w| w.file.as_str())
        .collect();
    // Oldest first across slots: window 1 (adopted into slot-0), then 2.
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].starts_with("slot-0/beacon/"), "{files:?}");
    assert!(files[1].starts_with("slot-1/beacon/"), "{files:?}");
    assert!(ro.show(&w.id.to_string()).is_ok());
}
