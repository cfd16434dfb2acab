//! The checkpoint of the open windows: saved periodically, pruned as
//! windows close, recovered into pending windows after a crash.
//!
//! May import `super` (the spool's types and file helpers), `std`,
//! `chrono`, `uuid`.

use super::fsutil::{Read, read_regular};
use super::fsutil::{remove_if_exists, sync_dir, write_atomic};
use super::scan::Loaded;
use super::window::{self, Unreadable, parse_checkpoint};
use super::{
    Area, CHECKPOINT_FILE, Checkpoint, Destination, MAX_FILE_BYTES, Spool, SpoolError,
    SpooledWindow,
};
use chrono::TimeDelta;
use std::path::Path;

/// What [`Spool::peek_checkpoint`] found in one spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointPeek {
    /// There is no checkpoint.
    Absent,
    /// The open windows of the process that saved it.
    Found(Checkpoint),
    /// Written by a newer beacon-meter, in this format version.
    Newer(u64),
    /// It cannot be read as a checkpoint, for this reason.
    Unreadable(String),
}

impl Spool {
    /// Atomically replaces `checkpoint.json`. Windows must be version 1 with
    /// `from <= to`.
    pub fn save_checkpoint(&self, cp: &Checkpoint) -> Result<(), SpoolError> {
        let _st = self.held()?;
        cp.check()
            .map_err(|(id, reason)| SpoolError::InvalidWindow { id, reason })?;
        write_atomic(&self.dir, CHECKPOINT_FILE, &window::to_pretty(cp))?;
        Ok(())
    }

    /// The restart path: turns the checkpoint's open windows into pending
    /// windows, then deletes the checkpoint. Returns how many windows were
    /// recovered.
    ///
    /// A checkpoint window already spooled (pending or rejected: same id or
    /// start, replaced by or inside a merged window) is skipped: the crash
    /// may have come between spooling a closed window and replacing the
    /// checkpoint. A zero-length window is skipped if it counted nothing,
    /// else stretched to 1 ms.
    ///
    /// Safe to interrupt: recovered windows are pushed before the checkpoint
    /// is deleted, and a second run skips them.
    pub fn recover_checkpoint(&self) -> Result<usize, SpoolError> {
        let mut st = self.held()?;
        let Some(cp) = self.read_checkpoint()? else {
            return Ok(0);
        };
        let mut recovered = 0;
        for dest in Destination::ALL {
            let mut known = self.windows(dest, Area::Pending)?;
            known.extend(self.windows(dest, Area::Rejected)?);
            for w in cp.windows.iter().filter(|w| w.destination == dest) {
                if let Some(p) = known.iter().find(|l| covers(l, w)) {
                    tracing::info!(destination = %dest, id = %w.id, spooled_as = %p.window.id,
                        "checkpoint window already spooled; not recovered twice");
                    continue;
                }
                let Some(w) = closable(w) else { continue };
                self.push_locked(&mut st, &w)?;
                let (name, bytes) = (w.file_name(), 0);
                known.push(Loaded {
                    window: w,
                    replaces: Vec::new(),
                    name,
                    bytes,
                });
                recovered += 1;
            }
        }
        remove_if_exists(&Spool::checkpoint_file(&self.dir))?;
        sync_dir(&self.dir)?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                saved_at = %crate::wire::format_timestamp(&cp.saved_at),
                "recovered the open windows of the previous run from its checkpoint"
            );
        }
        Ok(recovered)
    }

    /// Drops from the checkpoint the open window that `w` closed.
    pub(super) fn prune_checkpoint(&self, w: &SpooledWindow) -> Result<(), SpoolError> {
        let path = Spool::checkpoint_file(&self.dir);
        // An unreadable checkpoint is left for recover to report.
        let CheckpointPeek::Found(mut cp) = peek_file(&path)? else {
            return Ok(());
        };
        let before = cp.windows.len();
        cp.windows.retain(|c| {
            !(c.destination == w.destination
                && (c.id == w.id || c.report.from_timestamp == w.report.from_timestamp))
        });
        if cp.windows.len() == before {
            return Ok(());
        }
        if cp.windows.is_empty() {
            remove_if_exists(&path)?;
            sync_dir(&self.dir)?;
        } else {
            write_atomic(&self.dir, CHECKPOINT_FILE, &window::to_pretty(&cp))?;
        }
        tracing::debug!(id = %w.id, "dropped the spooled window's open copy from the checkpoint");
        Ok(())
    }

    /// The checkpoint, if there is a readable one; an unreadable one is
    /// moved to `corrupt/`.
    fn read_checkpoint(&self) -> Result<Option<Checkpoint>, SpoolError> {
        let path = Spool::checkpoint_file(&self.dir);
        let why = match peek_file(&path)? {
            CheckpointPeek::Absent => return Ok(None),
            CheckpointPeek::Found(cp) => return Ok(Some(cp)),
            CheckpointPeek::Newer(v) => Unreadable::Future(v).to_string(),
            CheckpointPeek::Unreadable(why) => why,
        };
        self.quarantine(&path, "root", &why)?;
        Ok(None)
    }

    /// The checkpoint of the directory `dir` alone (not its slots), read
    /// without taking the lock and without changing anything (an
    /// unreadable one is left for the reporter to quarantine).
    /// [`SpoolError::NoSpool`] if `dir` is not a directory.
    pub fn peek_checkpoint(dir: &Path) -> Result<CheckpointPeek, SpoolError> {
        if !dir.is_dir() {
            return Err(SpoolError::NoSpool {
                dir: dir.to_path_buf(),
            });
        }
        peek_file(&Spool::checkpoint_file(dir))
    }
}

/// What the checkpoint file at `path` holds.
fn peek_file(path: &Path) -> Result<CheckpointPeek, SpoolError> {
    Ok(match read_regular(path, MAX_FILE_BYTES)? {
        Read::Gone => CheckpointPeek::Absent,
        Read::Found(bytes) => match parse_checkpoint(&bytes) {
            Ok(cp) => CheckpointPeek::Found(cp),
            Err(Unreadable::Future(v)) => CheckpointPeek::Newer(v),
            Err(Unreadable::Invalid(why)) => CheckpointPeek::Unreadable(why),
        },
        Read::Bad(why) => CheckpointPeek::Unreadable(why),
    })
}

/// True if spooled window `l` already holds the usage of checkpoint window
/// `w`: same id, replaces it, same start, or a merged span holding its start.
fn covers(l: &Loaded, w: &SpooledWindow) -> bool {
    let (p, from) = (&l.window, w.report.from_timestamp);
    p.id == w.id
        || l.replaces.contains(&w.id)
        || p.report.from_timestamp == from
        || (p.merged > 1 && p.report.from_timestamp <= from && from < p.report.to_timestamp)
}

/// `w` as a closed window: a zero-length one is dropped if it counted
/// nothing (saved right after a rotation), else stretched to 1 ms.
fn closable(w: &SpooledWindow) -> Option<SpooledWindow> {
    let mut w = w.clone();
    if w.report.from_timestamp < w.report.to_timestamp {
        return Some(w);
    }
    let counted = w
        .report
        .measures
        .iter()
        .any(|(k, &v)| v > 0 && !w.is_gauge(k));
    if !counted {
        tracing::debug!(id = %w.id, "skipping an empty zero-length checkpoint window");
        return None;
    }
    tracing::warn!(id = %w.id, "checkpoint window has zero length but counts; stretching it to 1 ms");
    w.report.to_timestamp = w.report.from_timestamp + TimeDelta::milliseconds(1);
    Some(w)
}
