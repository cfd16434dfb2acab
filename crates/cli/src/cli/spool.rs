//! `beacon-meter spool list | show | export | requeue`: the spool of unsent
//! usage windows ([`beacon_meter::spool`]).
//!
//! `list`, `show` and `export` open the spool read-only
//! ([`Spool::open_read_only`]): they take no lock, change nothing and work
//! while a reporter runs. `requeue` changes the spool and so needs its lock
//! (the lock of every slot holding rejected windows: [`slots::requeue_all`]).

use super::args::{SpoolAction, SpoolArgs};
use super::term::Term;
use beacon_meter::spool::{Spool, SpoolError, slots};
use serde_json::json;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a `spool` subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolCommandError {
    /// The spool said no; its message names the path and the fix.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// `requeue` while a reporter holds the spool.
    #[error(
        "cannot requeue: spool {} is locked by {holder}; stop that reporter first (it holds the \
         lock while it runs), then run `beacon-meter spool requeue` again",
        dir.display()
    )]
    Busy {
        /// The spool directory.
        dir: PathBuf,
        /// The lock holder (pid, host, start time).
        holder: String,
    },
    /// The listing could not be written as JSON.
    #[error("could not write the listing as JSON: {0} (is the spool path valid UTF-8?)")]
    Json(#[from] serde_json::Error),
    /// Writing to stdout failed.
    #[error("could not write the output: {0}")]
    Output(#[from] io::Error),
}

/// Runs one `spool` subcommand on `--dir`, else [`Spool::default_dir`]
/// (which reads `BEACON_SPOOL_DIR` first), writing its result to `out`.
pub fn run(args: &SpoolArgs, term: Term, out: &mut dyn Write) -> Result<(), SpoolCommandError> {
    let dir = args.dir.clone().unwrap_or_else(Spool::default_dir);
    match &args.action {
        SpoolAction::List { json } => list(&dir, *json, term, out),
        SpoolAction::Show { id } => {
            let text = Spool::open_read_only(&dir)?.show(id)?;
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
            Ok(())
        }
        SpoolAction::Export { path, json } => export(&dir, path, *json, out),
        SpoolAction::Requeue { json } => requeue(&dir, *json, out),
    }
}

fn list(dir: &Path, json: bool, term: Term, out: &mut dyn Write) -> Result<(), SpoolCommandError> {
    let listing = Spool::open_read_only(dir)?.list()?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&listing)?)?;
        return Ok(());
    }
    write!(out, "{listing}")?;
    if !listing.rejected.is_empty() {
        writeln!(
            out,
            "{} the server refused {} window(s); the .answer.txt beside each says why. Fix the \
             cause, then `beacon-meter spool requeue` (with the reporter stopped), or `spool \
             export` them for reporting by hand.",
            term.warn("note:"),
            listing.rejected.len()
        )?;
    }
    if !listing.corrupt.is_empty() {
        writeln!(
            out,
            "{} {} unreadable file(s) were set aside in corrupt/ with a .reason.txt each; \
             nothing reads them again until moved back.",
            term.warn("note:"),
            listing.corrupt.len()
        )?;
    }
    Ok(())
}

fn export(
    dir: &Path,
    path: &Path,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), SpoolCommandError> {
    let count = Spool::open_read_only(dir)?.export(path)?;
    if json {
        writeln!(out, "{}", json!({ "count": count, "path": path }))?;
    } else {
        writeln!(
            out,
            "Exported {count} pending window(s) to {}.\nEach entry holds the exact report body \
             (add the license or api_key field) and the id to send it with as Idempotency-Key. \
             The windows stay pending here.",
            path.display()
        )?;
    }
    Ok(())
}

fn requeue(dir: &Path, json: bool, out: &mut dyn Write) -> Result<(), SpoolCommandError> {
    // Spool::open would create a missing directory: an empty spool is never
    // what the operator meant.
    if !dir.is_dir() {
        return Err(SpoolError::NoSpool {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    let moved = match slots::requeue_all(dir) {
        Ok(n) => n,
        Err(SpoolError::Locked { dir, holder }) => {
            return Err(SpoolCommandError::Busy { dir, holder });
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        writeln!(out, "{}", json!({ "requeued": moved }))?;
    } else if moved == 0 {
        writeln!(out, "No rejected windows in {}.", dir.display())?;
    } else {
        writeln!(
            out,
            "Requeued {moved} rejected window(s) in {}; the reporter sends them when it next runs.",
            dir.display()
        )?;
    }
    Ok(())
}
