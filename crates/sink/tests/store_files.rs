//! The sink's files under an unlucky operator: a disk that fills up (the
//! JSONL export stays equal to the database, every line whole), files
//! others could read (created 0600), and a damaged or empty database (the
//! sink refuses to start on it and says how to recover).

use beacon_meter_sink::{SinkConfig, SinkError, SinkHandle};
use beacon_meter_testkit::{Mount, http_client as client};
use serde_json::{Value, json};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use uuid::Uuid;

const LICENSE: &str = "lcl_store_files_test_0123456789abcdef";

/// Report `i`, with a log record of about 2 KB, so that a small disk
/// fills after a few dozen.
fn report(i: u64) -> Value {
    json!({
        "license": LICENSE,
        "from_timestamp": "2025-01-06T09:00:00Z",
        "to_timestamp": "2025-01-06T10:00:00Z",
        "tags": {"langgraph.platform.host": "self-hosted"},
        "measures": {"langgraph.platform.runs": i, "langgraph.platform.nodes": 3 * i},
        "logs": [{"level": "info", "message": format!("{i}:{}", "x".repeat(2000))}]
    })
}

/// Posts `body` under `key`; the status, or 0 if there was no answer.
async fn submit(sink: &SinkHandle, body: &Value, key: Uuid) -> u16 {
    let url = sink.base_url().join("/v1/metadata/submit").unwrap();
    let answer = client()
        .post(url)
        .header("idempotency-key", key.to_string())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    answer.map_or(0, |a| a.status().as_u16())
}

/// A sink storing into `dir`'s `sink.db` and exporting to its
/// `sink.jsonl`, and those two paths.
async fn start_in(dir: &Path) -> (SinkHandle, PathBuf, PathBuf) {
    let (db, jsonl) = (dir.join("sink.db"), dir.join("sink.jsonl"));
    let sink = SinkConfig::ephemeral()
        .db(&db)
        .jsonl(&jsonl)
        .start()
        .await
        .unwrap();
    (sink, db, jsonl)
}

/// Every line of the JSONL export, parsed; panics on a line that is not
/// whole JSON.
fn export_lines(jsonl: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(jsonl).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the export ends in a torn line"
    );
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("line {} of the export is not JSON ({e}): {line:.80}", n + 1)
            })
        })
        .collect()
}

/// A disk that fills up: each report is retried (under its key) until it
/// is accepted or has failed three times, as a reporter would. The export
/// must then hold exactly the stored reports, once each, every line whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_leaves_the_export_equal_to_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs_or_skip(tmp.path(), 384 * 1024, "full-disk export test") else {
        return;
    };
    let (sink, _, jsonl) = start_in(tmp.path()).await;
    let (mut accepted, mut failures, mut failed_in_a_row) = (0u64, 0u64, 0u64);
    for i in 0..1000 {
        let (body, key) = (report(i), Uuid::new_v4());
        let mut stored = false;
        for _ in 0..3 {
            if submit(&sink, &body, key).await == 204 {
                stored = true;
                break;
            }
            failures += 1;
        }
        if stored {
            accepted += 1;
            failed_in_a_row = 0;
        } else {
            failed_in_a_row += 1;
            if failed_in_a_row == 10 {
                break;
            }
        }
    }
    assert!(
        failures > 0 && accepted > 0,
        "accepted {accepted}, failed {failures}: the disk never filled"
    );
    let stored = sink.reports();
    let exported = export_lines(&jsonl);
    assert_eq!(
        exported.len(),
        stored.len(),
        "{} lines in the export for {} rows ({accepted} reports answered 204, {failures} failures)",
        exported.len(),
        stored.len()
    );
    assert_eq!(exported, stored, "the export differs from the database");
    assert_eq!(stored.len() as u64, accepted);
}

/// The database, its `-wal` and `-shm`, and the export hold every
/// tenant's usage: only their owner may read them, whatever the umask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_the_export_are_private_to_their_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, db, jsonl) = start_in(tmp.path()).await;
    assert_eq!(submit(&sink, &report(1), Uuid::new_v4()).await, 204);
    let wal = tmp.path().join("sink.db-wal");
    let shm = tmp.path().join("sink.db-shm");
    for file in [&db, &wal, &shm, &jsonl] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:04o}", file.display());
    }
    sink.shutdown().await;
}

/// The message of a sink that would not start.
async fn refused(db: &Path) -> String {
    match SinkConfig::ephemeral().db(db).start().await {
        Ok(sink) => {
            let reports = sink.summary().reports;
            sink.shutdown().await;
            panic!(
                "the sink started on {} (holding {reports} reports)",
                db.display()
            )
        }
        Err(e @ SinkError::Store(_)) => e.to_string(),
        Err(e) => panic!("refused for another reason: {e}"),
    }
}

#[tokio::test]
async fn an_empty_database_file_is_refused_not_taken_for_a_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("sink.db");
    std::fs::File::create(&db).unwrap();
    let e = refused(&db).await;
    assert!(
        e.contains(&db.display().to_string()) && e.contains("is damaged: the file is empty"),
        "{e}"
    );
    assert!(e.contains("move the file away"), "{e}");
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "the refused file was written"
    );
}

/// Overwrites `pages` pages of `db` from page `first` (0-based, 4 KiB
/// pages, SQLite's default) with garbage.
fn overwrite(db: &Path, first: u64, pages: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    for page in first..first + pages {
        file.write_all_at(&[0xA5; 4096], page * 4096).unwrap();
    }
}

/// A database with four overwritten pages in its middle, and one with a
/// garbage last page, are refused at start (where both used to start and
/// fail later with 500s), with the recovery steps; the intact file starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_start_with_the_way_to_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("sink.db");
    let sink = SinkConfig::ephemeral().db(&db).start().await.unwrap();
    for i in 0..200 {
        assert_eq!(submit(&sink, &report(i), Uuid::new_v4()).await, 204);
    }
    sink.shutdown().await;
    let wal = tmp.path().join("sink.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the WAL was not checkpointed at shutdown"
    );
    let pages = std::fs::metadata(&db).unwrap().len() / 4096;
    assert!(pages > 40, "only {pages} pages");

    let middle = tmp.path().join("middle.db");
    std::fs::copy(&db, &middle).unwrap();
    overwrite(&middle, pages / 2, 4);
    let last = tmp.path().join("last.db");
    std::fs::copy(&db, &last).unwrap();
    overwrite(&last, pages - 1, 1);
    for damaged in [&middle, &last] {
        let e = refused(damaged).await;
        assert!(
            e.contains(&format!("{} is damaged", damaged.display())),
            "{e}"
        );
        assert!(e.contains(".recover") && e.contains("backup"), "{e}");
    }

    let sink = SinkConfig::ephemeral().db(&db).start().await.unwrap();
    assert_eq!(sink.summary().reports, 200);
    sink.shutdown().await;
}

/// A database written before `tenant_measures` existed (schema version 1)
/// is upgraded at open: the names its tenants already have are counted, so
/// the per-tenant bound holds across the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_upgraded_with_the_names_it_holds() {
    use beacon_meter_sink::{MAX_MEASURES_PER_REPORT, MAX_MEASURES_PER_TENANT};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("sink.db");
    let tenant = "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1";
    let names = |range: std::ops::Range<usize>| {
        let mut body = report(0);
        body["tags"] = json!({"langgraph.platform.tenant_id": tenant});
        body["measures"] = range.map(|i| (format!("m{i}"), json!(1))).collect();
        body
    };
    let sink = SinkConfig::ephemeral().db(&db).start().await.unwrap();
    let per_tenant = MAX_MEASURES_PER_TENANT as usize;
    for start in (0..per_tenant).step_by(MAX_MEASURES_PER_REPORT) {
        let body = names(start..start + MAX_MEASURES_PER_REPORT);
        assert_eq!(submit(&sink, &body, Uuid::new_v4()).await, 204);
    }
    sink.shutdown().await;
    // What a version-1 sink left: no tenant_measures table.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TABLE tenant_measures; PRAGMA user_version = 1;")
        .unwrap();
    drop(conn);

    let sink = SinkConfig::ephemeral().db(&db).start().await.unwrap();
    let one_more = names(per_tenant..per_tenant + 1);
    assert_eq!(submit(&sink, &one_more, Uuid::new_v4()).await, 422);
    assert_eq!(submit(&sink, &names(0..10), Uuid::new_v4()).await, 204);
    assert_eq!(
        sink.summary().reports,
        (per_tenant / MAX_MEASURES_PER_REPORT) as u64 + 1
    );
    sink.shutdown().await;
}
