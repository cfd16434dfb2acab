//! The sending queue of a held spool: push, the next window (or merged
//! backlog) to send, and the outcome of a send (update, remove, reject),
//! all through the in-memory index.
//!
//! May import `super` (the spool's types and file helpers), `std`,
//! `chrono`, `uuid`.

use super::fsutil::Read;
use super::fsutil::{remove_if_exists, sync_dir, write_atomic};
use super::index::Index;
use super::scan::read_window;
use super::window::WindowFile;
use super::{
    Area, Destination, MAX_ANSWER_BYTES, MAX_FILE_BYTES, Spool, SpoolError, SpooledWindow, State,
    answer_file_name, merge,
};
use crate::wire::truncate::prefix_within;
use chrono::{TimeDelta, Utc};
use std::fs;
use std::path::Path;
use uuid::Uuid;

impl Spool {
    /// Stores a closed window durably (an atomic write, mode 0600), then
    /// drops its open copy from the checkpoint and enforces the bound.
    ///
    /// Pushing an id that is already pending replaces that window (a retried
    /// push); its `in_doubt` flag stays set if it was.
    ///
    /// On a full disk ([`SpoolError::Io`]) nothing was stored: keep the
    /// window and retry.
    pub fn push(&self, w: &SpooledWindow) -> Result<(), SpoolError> {
        let mut st = self.held()?;
        self.push_locked(&mut st, w)
    }

    /// [`push`](Self::push), with the state locked.
    pub(super) fn push_locked(&self, st: &mut State, w: &SpooledWindow) -> Result<(), SpoolError> {
        let invalid = |reason: String| SpoolError::InvalidWindow { id: w.id, reason };
        w.check(false).map_err(invalid)?;
        let dest = w.destination;
        let dir = self.area_dir(dest, Area::Pending);
        let existing = self.index(st, dest)?.get(w.id).map(|e| e.name.clone());
        let (window, replaces) = (w.clone(), Vec::new());
        let mut file = WindowFile { window, replaces };
        if let Some(name) = &existing
            && let Read::Found(old) = read_window(&dir.join(name), dest)?
        {
            file.window.in_doubt |= old.window.in_doubt;
            file.replaces = old.replaces;
        }
        let bytes = file.to_bytes();
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(invalid(format!(
                "it is {} bytes, more than the {MAX_FILE_BYTES} bytes a spool file may hold \
                 (too many or too large log records)",
                bytes.len()
            )));
        }
        let w = file.window;
        let name = w.file_name();
        write_atomic(&dir, &name, &bytes)?;
        remove_replaced(&dir, existing.as_deref(), &name)?;
        let ix = self.index(st, dest)?;
        ix.insert(&w, name, bytes.len() as u64);
        let over = self.limits.exceeded_by(ix.len(), ix.bytes());
        self.prune_checkpoint(&w)?;
        if over {
            let entries = self.windows(dest, Area::Pending)?;
            self.enforce_bound(st, dest, entries)?;
        } else {
            st.over_bound_warned[dest.index()] = false;
        }
        Ok(())
    }

    /// The oldest pending window of `dest` (the next to send): on a held
    /// spool, from the index and one file read.
    pub fn oldest(&self, dest: Destination) -> Result<Option<SpooledWindow>, SpoolError> {
        if self.is_read_only() {
            let first = self.windows(dest, Area::Pending)?.into_iter().next();
            return Ok(first.map(|l| l.window));
        }
        let mut st = self.state.lock();
        Ok(self.head_batch(&mut st, dest, 1)?.into_iter().next())
    }

    /// The next report to send for `dest`. The oldest pending window, or,
    /// when a backlog waits behind it, the oldest windows merged into one
    /// (see [`merge`]): as many as fit in `max_span` from the oldest's
    /// start, at most `max_windows`, stopping at the first in-doubt window
    /// or one [`merge`] refuses. An in-doubt oldest window is sent alone.
    ///
    /// **Exactly once.** The merged window gets a new id (its
    /// `Idempotency-Key`) and is written, recording the ids it `replaces`,
    /// *before* the originals are deleted and before it is returned for
    /// sending: a crash at any point leaves either the originals (never
    /// sent) or the merged window (sent only under its own id; every read
    /// skips an original it replaces). None of the originals was ever
    /// sent: only the oldest window is ever sent, it is merged only if not
    /// in doubt, and [`open`](Self::open) marks the oldest window in doubt
    /// (a previous holder may have been sending it when it stopped). If the
    /// merged window cannot be written (disk full), the oldest is returned
    /// alone, so delivery goes on.
    pub fn next_to_send(
        &self,
        dest: Destination,
        max_span: TimeDelta,
        max_windows: usize,
    ) -> Result<Option<SpooledWindow>, SpoolError> {
        let mut st = self.held()?;
        let ix = self.index(&mut st, dest)?;
        let Some(from) = ix.iter().next().map(|head| head.from) else {
            return Ok(None);
        };
        // An in-doubt oldest window stops the batch at once: sent alone.
        let n = ix
            .iter()
            .take(max_windows)
            .take_while(|e| !e.in_doubt && e.to - from <= max_span)
            .count();
        let batch = self.head_batch(&mut st, dest, n.max(1))?;
        let Some(mut merged) = batch.first().cloned() else {
            return Ok(None);
        };
        let (id, mut used) = (Uuid::new_v4(), 1);
        while let Some(next) = batch.get(used).and_then(|w| merge(&merged, w, id)) {
            (merged, used) = (next, used + 1);
        }
        Ok(Some(match used {
            1 => merged,
            _ => self.commit_merge(&mut st, &batch[..used], merged),
        }))
    }

    /// Makes `merged` (of `originals`, the head of the queue) durable and
    /// the head in their place; returns what to send: `merged`, or the
    /// oldest original alone if `merged` could not be written.
    fn commit_merge(
        &self,
        st: &mut State,
        originals: &[SpooledWindow],
        merged: SpooledWindow,
    ) -> SpooledWindow {
        let dest = merged.destination;
        let Some(ix) = st.index[dest.index()].as_mut() else {
            return originals[0].clone();
        };
        let named: Vec<(Uuid, String)> = originals
            .iter()
            .filter_map(|w| Some((w.id, ix.get(w.id)?.name.clone())))
            .collect();
        match self.write_merged(&merged, &named) {
            Ok(bytes) => {
                originals.iter().for_each(|w| drop(ix.remove(w.id)));
                ix.insert(&merged, merged.file_name(), bytes);
                merged
            }
            Err(e) => {
                tracing::debug!(destination = %dest, error = %e,
                    "could not write a merged window; sending the oldest alone");
                originals[0].clone()
            }
        }
    }

    /// Up to `max` windows from the head of `dest`'s queue, read from the
    /// files the index names. A file that is gone, unreadable or holds
    /// another window (changed behind the spool's back) makes the index be
    /// rebuilt from a scan (which skips it; a rescan repairs it) and a
    /// second try.
    fn head_batch(
        &self,
        st: &mut State,
        dest: Destination,
        max: usize,
    ) -> Result<Vec<SpooledWindow>, SpoolError> {
        let dir = self.area_dir(dest, Area::Pending);
        for attempt in 0..2 {
            let head: Vec<(String, Uuid)> = self
                .index(st, dest)?
                .iter()
                .take(max)
                .map(|e| (e.name.clone(), e.id))
                .collect();
            let mut out = Vec::with_capacity(head.len());
            for (name, id) in &head {
                match read_window(&dir.join(name), dest)? {
                    Read::Found(f) if f.window.id == *id => out.push(f.window),
                    _ => break,
                }
            }
            if out.len() == head.len() || attempt == 1 {
                return Ok(out);
            }
            tracing::warn!(destination = %dest, dir = %dir.display(),
                "a pending file changed behind the spool's back: re-reading the directory (the spool repairs it when next opened, e.g. at the reporter's restart, or on Spool::rescan)");
            st.stale[dest.index()] = true;
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The index of `dest`, rebuilt from a scan if it is missing or stale.
    pub(super) fn index<'s>(
        &self,
        st: &'s mut State,
        dest: Destination,
    ) -> Result<&'s mut Index, SpoolError> {
        let d = dest.index();
        if st.index[d].is_none() || st.stale[d] {
            let entries = self.windows(dest, Area::Pending)?;
            st.install_index(dest, &entries);
        }
        Ok(st.index[d].get_or_insert_with(Index::default))
    }

    /// The file name of pending window `id`, or [`SpoolError::NotFound`].
    fn pending_name(
        &self,
        st: &mut State,
        dest: Destination,
        id: Uuid,
    ) -> Result<String, SpoolError> {
        let dir = self.area_dir(dest, Area::Pending);
        let not_found = || SpoolError::NotFound {
            destination: dest,
            id,
            dir,
        };
        let name = self.index(st, dest)?.get(id).map(|e| e.name.clone());
        name.ok_or_else(not_found)
    }

    /// Rewrites a pending window atomically with new `attempts` and
    /// `in_doubt`. Every other field must equal the stored window's
    /// ([`SpoolError::InvalidWindow`] otherwise), and `in_doubt` is sticky:
    /// once set it stays set. [`SpoolError::NotFound`] if the window is no
    /// longer pending.
    pub fn update(&self, w: &SpooledWindow) -> Result<(), SpoolError> {
        let mut st = self.held()?;
        let dest = w.destination;
        let dir = self.area_dir(dest, Area::Pending);
        let name = self.pending_name(&mut st, dest, w.id)?;
        let Read::Found(mut file) = read_window(&dir.join(&name), dest)? else {
            return Err(SpoolError::NotFound {
                destination: dest,
                id: w.id,
                dir,
            });
        };
        let stored = &mut file.window;
        let expected = SpooledWindow {
            attempts: w.attempts,
            in_doubt: w.in_doubt,
            ..stored.clone()
        };
        if expected != *w {
            return Err(SpoolError::InvalidWindow {
                id: w.id,
                reason: "update may change only `attempts` and `in_doubt`, but other fields \
                         differ from the stored window (see `spool show`)"
                    .to_owned(),
            });
        }
        if stored.in_doubt && !w.in_doubt {
            tracing::debug!(id = %w.id, "in_doubt stays set on a spooled window");
        }
        stored.attempts = w.attempts;
        stored.in_doubt |= w.in_doubt;
        let new_name = stored.file_name();
        let bytes = file.to_bytes();
        write_atomic(&dir, &new_name, &bytes)?;
        remove_replaced(&dir, Some(&name), &new_name)?;
        let ix = self.index(&mut st, dest)?;
        ix.insert(&file.window, new_name, bytes.len() as u64);
        Ok(())
    }

    /// Deletes a pending window (after a 2xx). [`SpoolError::NotFound`] if
    /// it is not pending.
    pub fn remove(&self, dest: Destination, id: Uuid) -> Result<(), SpoolError> {
        let mut st = self.held()?;
        let name = self.pending_name(&mut st, dest, id)?;
        remove_replaced(&self.area_dir(dest, Area::Pending), Some(&name), "")?;
        self.index(&mut st, dest)?.remove(id);
        Ok(())
    }

    /// Moves a pending window the server refused to `<dest>/rejected/`,
    /// with the server's answer (capped at [`MAX_ANSWER_BYTES`]) and HTTP
    /// status in a sibling `.answer.txt`, and logs an error. The caller must
    /// have scrubbed the credential from `answer` (`Secret::scrub`).
    /// [`requeue_rejected`](Self::requeue_rejected) puts it back.
    pub fn reject(
        &self,
        dest: Destination,
        id: Uuid,
        status: u16,
        answer: &str,
    ) -> Result<(), SpoolError> {
        let mut st = self.held()?;
        let name = self.pending_name(&mut st, dest, id)?;
        let pending = self.area_dir(dest, Area::Pending);
        let rejected = self.area_dir(dest, Area::Rejected);
        let capped = prefix_within(answer, MAX_ANSWER_BYTES);
        let mut text = format!(
            "status: {status}\nrejected_at: {}\ndestination: {dest}\nid: {id}\n\n{capped}\n",
            crate::wire::format_timestamp(&Utc::now())
        );
        if capped.len() < answer.len() {
            let more = answer.len() - capped.len();
            text.push_str(&format!("[... {more} more bytes of the answer not kept]\n"));
        }
        write_atomic(&rejected, &answer_file_name(&name), text.as_bytes())?;
        let target = rejected.join(&name);
        fs::rename(pending.join(&name), &target)
            .map_err(SpoolError::on("moving to rejected/", &target))?;
        sync_dir(&rejected)?;
        sync_dir(&pending)?;
        self.index(&mut st, dest)?.remove(id);
        tracing::error!(
            destination = %dest,
            %id,
            status,
            answer = %prefix_within(answer, 512),
            file = %target.display(),
            "the server rejected a usage window; it was moved to rejected/ with the answer: \
             fix the cause, then requeue it (`spool requeue`) or export it"
        );
        Ok(())
    }
}

/// Deletes `old` (a window's previous file in `dir`) unless it is `kept`.
fn remove_replaced(dir: &Path, old: Option<&str>, kept: &str) -> Result<(), SpoolError> {
    match old.filter(|o| *o != kept) {
        Some(o) => {
            remove_if_exists(&dir.join(o))?;
            sync_dir(dir)
        }
        None => Ok(()),
    }
}
