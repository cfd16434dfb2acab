//! The durable spool: closed usage windows are written here *before* any
//! send, per destination, so nothing is lost through outages, restarts,
//! crashes and shutdowns.
//!
//! Synchronous (`std::fs`); an async caller runs it on a blocking thread
//! (`tokio::task::spawn_blocking`). A [`Spool`] is `Send + Sync` and
//! serializes its operations internally.
//!
//! # Layout
//!
//! A reporter's spool is one slot of a spool root (see [`slots`]: one slot
//! per live process); this is the layout of one slot.
//!
//! ```text
//! <dir>/                         0700
//!   LOCK                         exclusive lock; pid, host and start time of the holder
//!   checkpoint.json              the open windows of the running process (see below)
//!   beacon/pending/<from>_<id>.json   windows waiting to be sent, 0600, pretty JSON
//!   beacon/rejected/<from>_<id>.json  windows the server refused ...
//!   beacon/rejected/<from>_<id>.answer.txt   ... with its (capped) answer
//!   auth/pending/, auth/rejected/     the same for the auth endpoint
//!   corrupt/<origin>-<name>      unreadable files, moved aside untouched ...
//!   corrupt/<origin>-<name>.reason.txt   ... with the reason
//! ```
//!
//! `<from>` is the window's start in UTC as `YYYYMMDDTHHMMSS.nnnnnnnnnZ`, so
//! file names sort oldest first. Every file is written atomically (temporary
//! file in the same directory, fsync, rename, fsync of the directory): a
//! crash leaves the old content or the new one, and temporary files left by
//! a crash are removed when the spool is next opened.
//!
//! # Sending protocol
//!
//! A window gets its id (the `Idempotency-Key`) when it closes and keeps it
//! on every retry. The reporter [`push`](Spool::push)es a closed window,
//! then sends the [`oldest`](Spool::oldest) pending window of a destination,
//! one at a time, and after the answer calls [`remove`](Spool::remove) (2xx),
//! [`reject`](Spool::reject) (a refusal that retrying cannot fix) or
//! [`update`](Spool::update) (more attempts; `in_doubt` if the request may
//! have been accepted, e.g. a timeout after it was sent).
//!
//! # Bounded without loss
//!
//! When a destination holds more than [`SpoolLimits::max_windows`] windows or
//! [`SpoolLimits::max_bytes`] bytes, the oldest *adjacent* pair of mergeable
//! windows is merged into one wider window (see [`merge`]): counters summed,
//! gauges from the later window, the span of both, a new id. A count is
//! never dropped: if nothing can be merged the spool grows past its bound
//! and says so in a warning.
//!
//! * **In-doubt windows are never merged.** If an attempt may have been
//!   accepted, the server may already have counted the window under its id.
//!   Sent again under the *same* id it is deduplicated; folded into a merged
//!   window under a *new* id it would be counted twice. So an in-doubt
//!   window is only ever retried as itself.
//! * **The oldest pending window is never merged**: it is the one a reporter
//!   may be sending right now, and merging it away would make that send
//!   count twice (once under its id, once inside the merged window).
//! * **Merging is crash-safe**: the merged file, which records the ids it
//!   `replaces`, is written and synced before the two originals are deleted;
//!   whenever the spool loads a destination it deletes any window that a
//!   merged window replaces, so a crash in between never counts twice.
//!
//! # Checkpoint
//!
//! The reporter periodically [`save_checkpoint`](Spool::save_checkpoint)s
//! the *open* window of each destination, with the id it will carry when it
//! closes. After a crash, [`recover_checkpoint`](Spool::recover_checkpoint)
//! turns those windows into pending ones, skipping any already spooled. When
//! a window is pushed, the spool also drops the matching open window from
//! the checkpoint (same destination and id, or same start), so the
//! checkpoint never holds usage that is already pending.
//!
//! # Unreadable files
//!
//! A file that is empty, truncated, not JSON, not a window, breaks a rule
//! (negative or overflowing measure, window ending before it starts), is a
//! symbolic link (never followed) or a directory is moved to `corrupt/`
//! with a warning and skipped; it never stops the spool. A file written by a
//! **newer** beacon-meter (a format version above [`FORMAT_VERSION`]) is
//! never read as this version: it is also moved to `corrupt/`, byte for byte
//! untouched, and the warning says to move it back into `pending/` after
//! upgrading.
//!
//! The spool holds no secret: the credential is added at send time.

mod error;
mod fsutil;
mod index;
mod listing;
mod merge;
pub mod slots;
mod window;

pub use error::SpoolError;
pub use listing::{
    CheckpointPeek, CorruptSummary, EXPORT_FORMAT, RejectedSummary, SpoolExport, SpoolListing,
    WindowSummary,
};
pub use merge::{MAX_MERGED_LOG_BYTES, MAX_MERGED_LOGS, merge};
pub use window::{
    Checkpoint, Destination, FORMAT_VERSION, MAX_FILE_BYTES, SpoolLimits, SpooledWindow,
};

use chrono::{TimeDelta, Utc};
use fsutil::{Entry, read_regular, remove_if_exists, sync_dir, write_atomic};
use index::{Index, Indexed, order_key};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Component, Path, PathBuf};
use uuid::Uuid;
use window::{WindowFile, id_from_file_name, parse_checkpoint, parse_window_file};

const CHECKPOINT_FILE: &str = "checkpoint.json";
const CORRUPT_DIR: &str = "corrupt";
const ANSWER_SUFFIX: &str = ".answer.txt";
const REASON_SUFFIX: &str = ".reason.txt";
/// Server answers kept with a rejected window are capped at this many bytes.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Pending,
    Rejected,
}

impl Area {
    fn as_str(self) -> &'static str {
        match self {
            Area::Pending => "pending",
            Area::Rejected => "rejected",
        }
    }
}

/// A window as loaded from disk.
#[derive(Debug)]
struct Loaded {
    window: SpooledWindow,
    replaces: Vec<Uuid>,
    name: String,
    bytes: u64,
}

#[derive(Debug, Default)]
struct State {
    /// A bound-exceeded warning was logged (per destination), so it is not
    /// repeated on every push.
    over_bound_warned: [bool; 2],
    /// A merge wrote its merged file but may not have deleted both
    /// originals: load everything (which reconciles) before trusting the
    /// index.
    needs_reconcile: [bool; 2],
    /// The pending windows of each destination (writable spools only;
    /// `None` until the first full load, and after a merge cut short).
    index: [Option<Index>; 2],
}

/// The durable spool of closed usage windows. See the [module docs](self).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    /// `None` when opened read-only.
    lock: Option<File>,
    state: Mutex<State>,
    /// Read-only views of a spool root: the slots under it
    /// ([`slots`]), each read as a spool of its own and shown as one.
    slots: Vec<(usize, Spool)>,
}

impl Spool {
    /// Opens (creating it, mode 0700, if needed) the spool at `dir` and takes
    /// its exclusive lock. A second opener — another process or another
    /// `Spool` in this one — gets [`SpoolError::Locked`] naming the holder
    /// (pid, host, start time). Removes temporary files left by interrupted
    /// writes, finishes any merge a crash interrupted, moves unreadable
    /// files to `corrupt/`, and enforces `limits`.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        fsutil::create_dir_private(dir)?;
        let lock = fsutil::acquire_lock(dir)?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            limits,
            lock: Some(lock),
            state: Mutex::new(State::default()),
            slots: Vec::new(),
        };
        let mut dirs = vec![spool.dir.clone(), spool.corrupt_dir()];
        for dest in Destination::ALL {
            dirs.push(spool.area_dir(dest, Area::Pending));
            dirs.push(spool.area_dir(dest, Area::Rejected));
        }
        for d in &dirs {
            fsutil::create_dir_private(d)?;
            fsutil::remove_stale_temps(d)?;
        }
        {
            let mut st = spool.state.lock();
            for dest in Destination::ALL {
                let entries = spool.load(&mut st, dest, Area::Pending)?;
                spool.enforce_bound(&mut st, dest, entries)?;
                if let Some(ix) = st.index[dest.index()].as_mut() {
                    ix.suspect_head();
                }
            }
        }
        tracing::debug!(dir = %spool.dir.display(), "spool opened");
        Ok(spool)
    }

    /// Opens an existing spool for inspection only ([`list`](Self::list),
    /// [`show`](Self::show), [`pending`](Self::pending),
    /// [`stats`](Self::stats), [`export`](Self::export)), without the lock,
    /// so it works while a reporter holds the spool. It never changes the
    /// spool: unreadable files are skipped rather than moved, and every
    /// modifying call returns [`SpoolError::ReadOnly`].
    ///
    /// On a spool root with [`slots`] (one per process), the view covers
    /// the root and every slot: listed paths start with `slot-N/`.
    pub fn open_read_only(dir: &Path) -> Result<Spool, SpoolError> {
        if !dir.is_dir() {
            return Err(SpoolError::NoSpool {
                dir: dir.to_path_buf(),
            });
        }
        let read_only = |dir: PathBuf, slots| Spool {
            dir,
            limits: SpoolLimits::default(),
            lock: None,
            state: Mutex::new(State::default()),
            slots,
        };
        let slots = slots::slot_dirs(dir)?
            .into_iter()
            .map(|(n, d)| (n, read_only(d, Vec::new())))
            .collect();
        Ok(read_only(dir.to_path_buf(), slots))
    }

    /// The default spool directory for this user, in order:
    ///
    /// 1. `$BEACON_SPOOL_DIR`, if set and not empty;
    /// 2. `$XDG_STATE_HOME/beacon-meter/spool`, if `XDG_STATE_HOME` is an
    ///    absolute path (the XDG base directory rule);
    /// 3. `$HOME/.local/state/beacon-meter/spool`;
    /// 4. `beacon-meter-spool` in the current directory, if there is no
    ///    `HOME` either.
    ///
    /// The spool holds usage not yet reported: it belongs on persistent
    /// storage (not a `tmpfs` that is cleared at boot), and in a container
    /// on a persistent volume.
    pub fn default_dir() -> PathBuf {
        default_dir_from(|k| std::env::var_os(k))
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limits in force.
    pub fn limits(&self) -> SpoolLimits {
        self.limits
    }

    /// True if opened with [`open_read_only`](Self::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    /// Stores a closed window durably: atomic write (temporary file in the
    /// same directory, fsync, rename, fsync of the directory), mode 0600.
    /// Then drops the matching open window from the checkpoint, and enforces
    /// the bound by merging (never dropping).
    ///
    /// Pushing an id that is already pending replaces that window (a retried
    /// push); its `in_doubt` flag stays set if it was.
    ///
    /// On [`SpoolError::DiskFull`] nothing was stored: keep the window and
    /// retry.
    pub fn push(&self, w: &SpooledWindow) -> Result<(), SpoolError> {
        self.writable()?;
        let mut st = self.state.lock();
        self.push_locked(&mut st, w)
    }

    /// The pending windows of `dest`, oldest first (by
    /// `report.from_timestamp`, then `closed_at`, then `id`). Unreadable
    /// files are moved to `corrupt/` with a warning and skipped.
    pub fn pending(&self, dest: Destination) -> Result<Vec<SpooledWindow>, SpoolError> {
        let mut st = self.state.lock();
        let mut out: Vec<SpooledWindow> = self
            .load(&mut st, dest, Area::Pending)?
            .into_iter()
            .map(|l| l.window)
            .collect();
        for (_, slot) in &self.slots {
            out.extend(slot.pending(dest)?);
        }
        out.sort_by_key(order_key);
        Ok(out)
    }

    /// The oldest pending window of `dest` (the next to send): on a held
    /// spool, from the index and one file read.
    pub fn oldest(&self, dest: Destination) -> Result<Option<SpooledWindow>, SpoolError> {
        let mut st = self.state.lock();
        if self.is_read_only() {
            return Ok(self
                .load(&mut st, dest, Area::Pending)?
                .into_iter()
                .next()
                .map(|l| l.window));
        }
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
    /// sent) or the merged window (sent only under its own id; a load
    /// deletes any original it replaces). None of the originals was ever
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
        self.writable()?;
        let mut st = self.state.lock();
        let ix = self.index(&mut st, dest)?;
        let Some(head) = ix.iter().next() else {
            return Ok(None);
        };
        let (from, alone) = (head.from, head.in_doubt);
        let n = if alone {
            1
        } else {
            ix.iter()
                .take(max_windows)
                .take_while(|e| !e.in_doubt && e.to - from <= max_span)
                .count()
                .max(1)
        };
        let batch = self.head_batch(&mut st, dest, n)?;
        let id = Uuid::new_v4();
        let (mut merged, mut used) = (batch.first().cloned(), 1);
        for w in batch.iter().skip(1) {
            match merged.as_ref().and_then(|m| merge(m, w, id)) {
                Some(m) => (merged, used) = (Some(m), used + 1),
                None => break,
            }
        }
        match merged {
            Some(m) if used > 1 => Ok(Some(self.commit_merge(&mut st, &batch[..used], m))),
            _ => Ok(batch.into_iter().next()),
        }
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
        let d = dest.index();
        let dir = self.area_dir(dest, Area::Pending);
        let name = merged.file_name();
        let replaces = originals.iter().map(|w| w.id).collect();
        let bytes = WindowFile::new(merged.clone(), replaces).to_bytes();
        if let Err(e) = write_atomic(&dir, &name, &bytes) {
            tracing::debug!(destination = %dest, error = %e, "could not write a merged window; sending the oldest alone");
            return originals[0].clone();
        }
        // Durable now, and superseding the originals (a load deletes any
        // window it replaces): from here on it is what gets sent.
        st.needs_reconcile[d] = true;
        let removed = originals
            .iter()
            .try_for_each(|w| remove_if_exists(&dir.join(w.file_name())))
            .and_then(|()| sync_dir(&dir));
        if let Some(ix) = st.index[d].as_mut() {
            originals.iter().for_each(|w| drop(ix.remove(w.id)));
            ix.insert(&merged, Indexed::new(&merged, name, bytes.len() as u64));
        }
        match removed {
            Ok(()) => st.needs_reconcile[d] = false,
            Err(e) => {
                tracing::warn!(destination = %dest, error = %e, "merged windows for sending but could not delete the originals; the next load does")
            }
        }
        tracing::debug!(destination = %dest, windows = originals.len(), into = %merged.id, "merged a backlog for sending");
        merged
    }

    /// Up to `max` windows from the head of `dest`'s queue, read from the
    /// files the index names. A file that is gone or unreadable (changed
    /// behind the spool's back) makes one full reload (which repairs) and
    /// a second try.
    fn head_batch(
        &self,
        st: &mut State,
        dest: Destination,
        max: usize,
    ) -> Result<Vec<SpooledWindow>, SpoolError> {
        let dir = self.area_dir(dest, Area::Pending);
        for attempt in 0..2 {
            let names: Vec<String> = self
                .index(st, dest)?
                .iter()
                .take(max)
                .map(|e| e.name.clone())
                .collect();
            let mut out = Vec::with_capacity(names.len());
            for name in &names {
                match self.read_window(&dir, name, dest, Area::Pending)? {
                    Some(f) if f.file_name_matches(name) => out.push(f.into_parts().0),
                    _ => break,
                }
            }
            if out.len() == names.len() || attempt == 1 {
                return Ok(out);
            }
            self.load(st, dest, Area::Pending)?;
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The index of `dest`, built by a full load if it is missing or a
    /// merge was cut short.
    fn index<'s>(&self, st: &'s mut State, dest: Destination) -> Result<&'s mut Index, SpoolError> {
        let d = dest.index();
        if st.index[d].is_none() || st.needs_reconcile[d] {
            self.load(st, dest, Area::Pending)?;
        }
        Ok(st.index[d].get_or_insert_with(Index::default))
    }

    /// Rewrites a pending window atomically with new `attempts` and
    /// `in_doubt`. Every other field must equal the stored window's
    /// ([`SpoolError::InvalidWindow`] otherwise), and `in_doubt` is sticky:
    /// once set it stays set. [`SpoolError::NotFound`] if the window is no
    /// longer pending.
    pub fn update(&self, w: &SpooledWindow) -> Result<(), SpoolError> {
        self.writable()?;
        let mut st = self.state.lock();
        let dest = w.destination;
        let dir = self.area_dir(dest, Area::Pending);
        let names = self.find_by_id(&mut st, dest, Area::Pending, w.id)?;
        let Some(name) = names.first() else {
            return Err(self.not_found(dest, w.id));
        };
        let Some(stored) = self.read_window(&dir, name, dest, Area::Pending)? else {
            return Err(self.not_found(dest, w.id));
        };
        let (mut stored, replaces) = stored.into_parts();
        let mut expected = stored.clone();
        expected.attempts = w.attempts;
        expected.in_doubt = w.in_doubt;
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
        let bytes = WindowFile::new(stored.clone(), replaces).to_bytes();
        write_atomic(&dir, &new_name, &bytes)?;
        self.remove_others(&dir, &names, &new_name)?;
        let entry = Indexed::new(&stored, new_name, bytes.len() as u64);
        self.index(&mut st, dest)?.insert(&stored, entry);
        Ok(())
    }

    /// Deletes a pending window (after a 2xx). [`SpoolError::NotFound`] if
    /// it is not pending.
    pub fn remove(&self, dest: Destination, id: Uuid) -> Result<(), SpoolError> {
        self.writable()?;
        let mut st = self.state.lock();
        let names = self.find_by_id(&mut st, dest, Area::Pending, id)?;
        if names.is_empty() {
            return Err(self.not_found(dest, id));
        }
        let dir = self.area_dir(dest, Area::Pending);
        for n in &names {
            remove_if_exists(&dir.join(n))?;
        }
        sync_dir(&dir)?;
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
        self.writable()?;
        let mut st = self.state.lock();
        let names = self.find_by_id(&mut st, dest, Area::Pending, id)?;
        let Some(name) = names.first() else {
            return Err(self.not_found(dest, id));
        };
        let pending = self.area_dir(dest, Area::Pending);
        let rejected = self.area_dir(dest, Area::Rejected);
        let capped = cap_utf8(answer, MAX_ANSWER_BYTES);
        let mut text = format!(
            "status: {status}\nrejected_at: {}\ndestination: {dest}\nid: {id}\n\n{capped}\n",
            crate::wire::format_timestamp(&Utc::now())
        );
        if capped.len() < answer.len() {
            text.push_str(&format!(
                "[... {} more bytes of the answer not kept]\n",
                answer.len() - capped.len()
            ));
        }
        let answer_name = answer_file_name(name);
        write_atomic(&rejected, &answer_name, text.as_bytes())?;
        let target = rejected.join(name);
        fs::rename(pending.join(name), &target)
            .map_err(SpoolError::on("moving to rejected/", &target))?;
        sync_dir(&rejected)?;
        self.remove_others(&pending, &names, "")?;
        self.index(&mut st, dest)?.remove(id);
        tracing::error!(
            destination = %dest,
            %id,
            status,
            answer = %cap_utf8(answer, 512),
            file = %target.display(),
            "the server rejected a usage window; it was moved to rejected/ with the answer: \
             fix the cause, then requeue it (`spool requeue`) or export it"
        );
        Ok(())
    }

    /// Atomically replaces `checkpoint.json`. Windows must be version 1 with
    /// `from <= to`.
    pub fn save_checkpoint(&self, cp: &Checkpoint) -> Result<(), SpoolError> {
        self.writable()?;
        let invalid = |id, reason| SpoolError::InvalidWindow { id, reason };
        if cp.version != FORMAT_VERSION {
            return Err(invalid(
                Uuid::nil(),
                format!("checkpoint version {} is not {FORMAT_VERSION}", cp.version),
            ));
        }
        for w in &cp.windows {
            w.check(true).map_err(|r| invalid(w.id, r))?;
        }
        let _st = self.state.lock();
        write_atomic(&self.dir, CHECKPOINT_FILE, &window::to_pretty(cp))?;
        Ok(())
    }

    /// Reads and deletes the checkpoint. A corrupt one (or one from a newer
    /// version) is moved to `corrupt/` and `None` returned.
    pub fn take_checkpoint(&self) -> Result<Option<Checkpoint>, SpoolError> {
        self.writable()?;
        let _st = self.state.lock();
        let cp = self.read_checkpoint()?;
        if cp.is_some() {
            remove_if_exists(&self.checkpoint_path())?;
            sync_dir(&self.dir)?;
        }
        Ok(cp)
    }

    /// The restart path: turns the checkpoint's open windows into pending
    /// windows, then deletes the checkpoint. Returns how many windows were
    /// recovered.
    ///
    /// A checkpoint window is skipped if it is already spooled — pending or
    /// rejected with its id, replaced by a merged window, pending or
    /// rejected with the same destination and start, or inside the span of
    /// a merged window — since the crash may have come between spooling a
    /// closed window and replacing the checkpoint. A zero-length window
    /// (saved right after a rotation) is skipped if it counted nothing, else
    /// stretched to 1 ms.
    ///
    /// Safe to interrupt: recovered windows are pushed before the checkpoint
    /// is deleted, and a second run skips them.
    pub fn recover_checkpoint(&self) -> Result<usize, SpoolError> {
        self.writable()?;
        let mut st = self.state.lock();
        let Some(cp) = self.read_checkpoint()? else {
            return Ok(0);
        };
        let mut recovered = 0;
        for dest in Destination::ALL {
            let mut known: Vec<Loaded> = self.load(&mut st, dest, Area::Pending)?;
            known.extend(self.load(&mut st, dest, Area::Rejected)?);
            let mut pushed: Vec<SpooledWindow> = Vec::new();
            for w in cp.windows.iter().filter(|w| w.destination == dest) {
                let from = w.report.from_timestamp;
                let spooled = known
                    .iter()
                    .map(|l| (&l.window, l.replaces.as_slice()))
                    .chain(pushed.iter().map(|p| (p, &[][..])))
                    .find(|(p, replaces)| {
                        p.id == w.id
                            || replaces.contains(&w.id)
                            || p.report.from_timestamp == from
                            || (p.merged > 1
                                && p.report.from_timestamp <= from
                                && from < p.report.to_timestamp)
                    });
                if let Some((p, _)) = spooled {
                    tracing::info!(destination = %dest, id = %w.id, spooled_as = %p.id,
                        "checkpoint window already spooled; not recovered twice");
                    continue;
                }
                let mut w = w.clone();
                if w.report.from_timestamp >= w.report.to_timestamp {
                    let counted = w
                        .report
                        .measures
                        .iter()
                        .any(|(k, &v)| v > 0 && !w.is_gauge(k));
                    if !counted {
                        tracing::debug!(id = %w.id, "skipping an empty zero-length checkpoint window");
                        continue;
                    }
                    tracing::warn!(id = %w.id, "checkpoint window has zero length but counts; stretching it to 1 ms");
                    w.report.to_timestamp = w.report.from_timestamp + TimeDelta::milliseconds(1);
                }
                self.push_locked(&mut st, &w)?;
                pushed.push(w);
                recovered += 1;
            }
        }
        remove_if_exists(&self.checkpoint_path())?;
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

    /// Everything in the spool: pending windows per destination, rejected
    /// windows, corrupt files (with the reason each was moved), and whether
    /// a checkpoint is present. Like [`pending`](Self::pending), it moves
    /// unreadable files it meets to `corrupt/` (unless read-only).
    pub fn list(&self) -> Result<SpoolListing, SpoolError> {
        let mut st = self.state.lock();
        let mut listing = SpoolListing {
            dir: self.dir.clone(),
            pending: Default::default(),
            rejected: Vec::new(),
            corrupt: Vec::new(),
            checkpoint: fs::symlink_metadata(self.checkpoint_path()).is_ok(),
        };
        for dest in Destination::ALL {
            let rel = format!("{dest}/pending");
            let windows = self
                .load(&mut st, dest, Area::Pending)?
                .into_iter()
                .map(|l| WindowSummary::new(format!("{rel}/{}", l.name), &l.window, l.bytes))
                .collect();
            listing.pending.insert(dest, windows);
        }
        for dest in Destination::ALL {
            let dir = self.area_dir(dest, Area::Rejected);
            for l in self.load(&mut st, dest, Area::Rejected)? {
                let answer = answer_file_name(&l.name);
                let status = match read_regular(&dir.join(&answer), 2 * MAX_ANSWER_BYTES as u64)? {
                    Entry::File(b) => Some(
                        String::from_utf8_lossy(&b)
                            .lines()
                            .next()
                            .and_then(|s| s.strip_prefix("status: "))
                            .and_then(|s| s.trim().parse().ok()),
                    ),
                    _ => None,
                };
                listing.rejected.push(RejectedSummary {
                    window: WindowSummary::new(
                        format!("{dest}/rejected/{}", l.name),
                        &l.window,
                        l.bytes,
                    ),
                    status: status.flatten(),
                    answer_file: status.map(|_| format!("{dest}/rejected/{answer}")),
                });
            }
        }
        let corrupt = self.corrupt_dir();
        let (names, _) = fsutil::list_names(&corrupt)?;
        for name in names.iter().filter(|n| !n.ends_with(REASON_SUFFIX)) {
            let bytes = fs::symlink_metadata(corrupt.join(name)).map_or(0, |m| m.len());
            let reason = match read_regular(&corrupt.join(format!("{name}{REASON_SUFFIX}")), 65536)?
            {
                Entry::File(b) => Some(String::from_utf8_lossy(&b).trim().to_owned()),
                _ => None,
            };
            listing.corrupt.push(CorruptSummary {
                file: format!("{CORRUPT_DIR}/{name}"),
                bytes,
                reason,
            });
        }
        drop(st);
        for (n, slot) in &self.slots {
            listing.absorb(slot.list()?, &format!("{}{n}/", slots::SLOT_PREFIX));
        }
        Ok(listing)
    }

    /// The content of one spool file, found by window id (pending, then
    /// rejected, then corrupt) or by file name or relative path (as in
    /// [`list`](Self::list)). A symbolic link is described, never followed.
    pub fn show(&self, id_or_file: &str) -> Result<String, SpoolError> {
        let mut found = self.show_here(id_or_file);
        for (_, slot) in &self.slots {
            match found {
                Err(SpoolError::NoSuchEntry { .. }) => found = slot.show(id_or_file),
                _ => break,
            }
        }
        match found {
            Err(SpoolError::NoSuchEntry { query, .. }) => Err(SpoolError::NoSuchEntry {
                query,
                dir: self.dir.clone(),
            }),
            other => other,
        }
    }

    /// [`show`](Self::show) in this directory alone (not its slots).
    fn show_here(&self, id_or_file: &str) -> Result<String, SpoolError> {
        let mut st = self.state.lock();
        let query = id_or_file.trim();
        let not_found = || SpoolError::NoSuchEntry {
            query: query.to_owned(),
            dir: self.dir.clone(),
        };
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(id) = Uuid::parse_str(query) {
            for area in [Area::Pending, Area::Rejected] {
                for dest in Destination::ALL {
                    for n in self.find_by_id(&mut st, dest, area, id)? {
                        candidates.push(self.area_dir(dest, area).join(n));
                    }
                }
            }
            let needle = id.hyphenated().to_string();
            let (names, _) = fsutil::list_names(&self.corrupt_dir())?;
            for n in names.iter().filter(|n| n.contains(&needle)) {
                candidates.push(self.corrupt_dir().join(n));
            }
        } else {
            let rel = Path::new(query);
            let parts: Vec<Component> = rel.components().collect();
            if parts.is_empty() || !parts.iter().all(|c| matches!(c, Component::Normal(_))) {
                return Err(not_found());
            }
            if parts.len() == 1 {
                let mut dirs = vec![self.dir.clone()];
                for dest in Destination::ALL {
                    dirs.push(self.area_dir(dest, Area::Pending));
                    dirs.push(self.area_dir(dest, Area::Rejected));
                }
                dirs.push(self.corrupt_dir());
                candidates.extend(dirs.into_iter().map(|d| d.join(rel)));
            } else {
                // Every directory on the way must be a real directory.
                let mut p = self.dir.clone();
                for c in &parts[..parts.len() - 1] {
                    p.push(c);
                    if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                        return Err(not_found());
                    }
                }
                candidates.push(self.dir.join(rel));
            }
        }
        for path in candidates {
            match read_regular(&path, MAX_FILE_BYTES)? {
                Entry::Gone => continue,
                Entry::File(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
                Entry::TooLarge(n) => {
                    return Ok(format!(
                        "({} is {n} bytes, larger than {MAX_FILE_BYTES}: not shown)\n",
                        path.display()
                    ));
                }
                Entry::NotRegular(what) => {
                    let target = fs::read_link(&path)
                        .map(|t| format!(" pointing to {}", t.display()))
                        .unwrap_or_default();
                    return Ok(format!("({} is {what}{target})\n", path.display()));
                }
                Entry::Unreadable(why) => {
                    return Ok(format!("({}: {why})\n", path.display()));
                }
            }
        }
        Err(not_found())
    }

    /// Writes every pending window (Beacon's first, each destination oldest
    /// first) into one JSON file at `out` ([`SpoolExport`]: each entry has
    /// the exact report body and the id to send it with), for reporting by
    /// hand from a site without egress. Written atomically, mode 0600. The
    /// windows stay pending. Returns how many were exported.
    pub fn export(&self, out: &Path) -> Result<usize, SpoolError> {
        let mut windows = Vec::new();
        for dest in Destination::ALL {
            windows.extend(self.pending(dest)?);
        }
        let count = windows.len();
        let bundle = SpoolExport {
            format: EXPORT_FORMAT.to_owned(),
            version: 1,
            exported_at: Utc::now(),
            windows,
        };
        let (Some(name), false) = (out.file_name(), out.is_dir()) else {
            return Err(SpoolError::io(
                "exporting to",
                out,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "give the path of a file to write, not a directory",
                ),
            ));
        };
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        write_atomic(parent, &name.to_string_lossy(), &window::to_pretty(&bundle))?;
        tracing::info!(count, out = %out.display(), "exported pending windows");
        Ok(count)
    }

    /// Moves every rejected window back to pending (same id, `attempts`
    /// reset to 0) and deletes its answer file. Returns how many moved.
    ///
    /// The id is kept: a rejected window was refused, not counted, so
    /// sending it again under its key is safe. A server that caches the
    /// refusal under that key rejects it again; [`export`](Self::export) is
    /// then the way out.
    pub fn requeue_rejected(&self) -> Result<usize, SpoolError> {
        self.writable()?;
        let mut st = self.state.lock();
        let mut moved = 0;
        for dest in Destination::ALL {
            let rejected = self.area_dir(dest, Area::Rejected);
            let pending = self.area_dir(dest, Area::Pending);
            for l in self.load(&mut st, dest, Area::Rejected)? {
                let already = !self
                    .find_by_id(&mut st, dest, Area::Pending, l.window.id)?
                    .is_empty();
                if !already {
                    let mut w = l.window;
                    w.attempts = 0;
                    let name = w.file_name();
                    write_atomic(&pending, &name, &WindowFile::new(w, l.replaces).to_bytes())?;
                    moved += 1;
                }
                remove_if_exists(&rejected.join(&l.name))?;
                remove_if_exists(&rejected.join(answer_file_name(&l.name)))?;
                sync_dir(&rejected)?;
            }
            let entries = self.load(&mut st, dest, Area::Pending)?;
            self.enforce_bound(&mut st, dest, entries)?;
        }
        if moved > 0 {
            tracing::info!(moved, "requeued rejected windows");
        }
        Ok(moved)
    }

    /// Marks the oldest of `entries` (a destination's pending windows)
    /// in doubt on disk: the process that held the spool before may have
    /// been sending it when it stopped, so it must be sent only as itself.
    fn mark_in_doubt(&self, entries: &mut [Loaded]) -> Result<(), SpoolError> {
        let Some(head) = entries.first_mut().filter(|h| !h.window.in_doubt) else {
            return Ok(());
        };
        head.window.in_doubt = true;
        let dir = self.area_dir(head.window.destination, Area::Pending);
        let bytes = WindowFile::new(head.window.clone(), head.replaces.clone()).to_bytes();
        write_atomic(&dir, &head.name, &bytes)?;
        head.bytes = bytes.len() as u64;
        Ok(())
    }

    /// Re-reads every pending window from disk and repairs what it finds
    /// (as [`open`](Self::open) does: unreadable files to `corrupt/`,
    /// hand-renamed files to their canonical names, interrupted merges
    /// finished, the bound enforced), then rebuilds the index. Reads never
    /// repair; call this after changing a held spool's files by hand.
    pub fn rescan(&self) -> Result<(), SpoolError> {
        self.writable()?;
        let mut st = self.state.lock();
        for dest in Destination::ALL {
            let entries = self.load(&mut st, dest, Area::Pending)?;
            self.enforce_bound(&mut st, dest, entries)?;
        }
        Ok(())
    }

    /// Moves every pending and rejected window of `other` (a spool whose
    /// lock this process holds: a dead process's slot) into this spool, one
    /// `rename` per file, so at every instant each window is in exactly one
    /// of the two. `other` was opened (so reconciled: no window of it is
    /// replaced by a merged one) and its checkpoint recovered by the caller.
    ///
    /// `other`'s oldest pending window of each destination may have been in
    /// flight when its process died: it is marked in doubt first, so it is
    /// only ever sent as itself, under its own id (never merged). Returns
    /// how many windows moved.
    pub(crate) fn take_over(&self, other: &Spool) -> Result<usize, SpoolError> {
        self.writable()?;
        other.writable()?;
        let mut st = self.state.lock();
        let mut ost = other.state.lock();
        let mut moved = 0;
        for dest in Destination::ALL {
            // Adopted windows may go ahead of this spool's oldest, which
            // is in doubt only in memory so far: make that durable.
            let mut mine = self.load(&mut st, dest, Area::Pending)?;
            if st.index[dest.index()]
                .as_ref()
                .and_then(|ix| ix.iter().next())
                .is_some_and(|h| h.in_doubt)
            {
                self.mark_in_doubt(&mut mine)?;
            }
            for area in [Area::Pending, Area::Rejected] {
                let from = other.area_dir(dest, area);
                let mut entries = other.load(&mut ost, dest, area)?;
                if area == Area::Pending {
                    other.mark_in_doubt(&mut entries)?;
                }
                let to = self.area_dir(dest, area);
                for l in &entries {
                    if fs::symlink_metadata(to.join(&l.name)).is_ok() {
                        tracing::warn!(file = %from.join(&l.name).display(), into = %to.display(),
                            "not adopted: a window with the same id is already there; inspect both");
                        continue;
                    }
                    fs::rename(from.join(&l.name), to.join(&l.name))
                        .map_err(SpoolError::on("adopting", &from.join(&l.name)))?;
                    if area == Area::Rejected {
                        let answer = answer_file_name(&l.name);
                        let _ = fs::rename(from.join(&answer), to.join(&answer));
                    }
                    moved += 1;
                }
                sync_dir(&to)?;
                sync_dir(&from)?;
            }
            let entries = self.load(&mut st, dest, Area::Pending)?;
            self.enforce_bound(&mut st, dest, entries)?;
        }
        Ok(moved)
    }

    /// Pending windows of `dest` and their total size on disk, from
    /// directory metadata only (no file is parsed).
    pub fn stats(&self, dest: Destination) -> Result<(usize, u64), SpoolError> {
        let (mut count, mut bytes) = {
            let mut st = self.state.lock();
            if self.is_read_only() {
                self.stats_locked(dest)?
            } else {
                let ix = self.index(&mut st, dest)?;
                (ix.len(), ix.bytes())
            }
        };
        for (_, slot) in &self.slots {
            let (c, b) = slot.stats(dest)?;
            count += c;
            bytes += b;
        }
        Ok((count, bytes))
    }

    // ---- internals -------------------------------------------------------

    fn writable(&self) -> Result<(), SpoolError> {
        if self.lock.is_none() {
            return Err(SpoolError::ReadOnly {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn area_dir(&self, dest: Destination, area: Area) -> PathBuf {
        self.dir.join(dest.as_str()).join(area.as_str())
    }

    fn corrupt_dir(&self) -> PathBuf {
        self.dir.join(CORRUPT_DIR)
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.dir.join(CHECKPOINT_FILE)
    }

    fn not_found(&self, destination: Destination, id: Uuid) -> SpoolError {
        SpoolError::NotFound {
            destination,
            id,
            dir: self.area_dir(destination, Area::Pending),
        }
    }

    fn stats_locked(&self, dest: Destination) -> Result<(usize, u64), SpoolError> {
        let dir = self.area_dir(dest, Area::Pending);
        let (names, _) = fsutil::list_names(&dir)?;
        let mut count = 0;
        let mut bytes = 0;
        for n in names.iter().filter(|n| n.ends_with(".json")) {
            if let Ok(m) = fs::symlink_metadata(dir.join(n))
                && m.is_file()
            {
                count += 1;
                bytes += m.len();
            }
        }
        Ok((count, bytes))
    }

    fn push_locked(&self, st: &mut State, w: &SpooledWindow) -> Result<(), SpoolError> {
        let invalid = |reason: String| SpoolError::InvalidWindow { id: w.id, reason };
        w.check(false).map_err(invalid)?;
        let dest = w.destination;
        let dir = self.area_dir(dest, Area::Pending);
        let existing = self.find_by_id(st, dest, Area::Pending, w.id)?;
        let mut w = w.clone();
        let mut replaces = Vec::new();
        for name in &existing {
            if let Some(f) = self.read_window(&dir, name, dest, Area::Pending)? {
                let (old, r) = f.into_parts();
                w.in_doubt |= old.in_doubt;
                replaces = r;
            }
        }
        let bytes = WindowFile::new(w.clone(), replaces).to_bytes();
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(invalid(format!(
                "it is {} bytes, more than the {MAX_FILE_BYTES} bytes a spool file may hold \
                 (too many or too large log records)",
                bytes.len()
            )));
        }
        let name = w.file_name();
        write_atomic(&dir, &name, &bytes)?;
        self.remove_others(&dir, &existing, &name)?;
        let ix = self.index(st, dest)?;
        ix.insert(&w, Indexed::new(&w, name, bytes.len() as u64));
        let (count, total) = (ix.len(), ix.bytes());
        self.prune_checkpoint(&w)?;
        if count > self.limits.max_windows || total > self.limits.max_bytes {
            let entries = self.load(st, dest, Area::Pending)?;
            self.enforce_bound(st, dest, entries)?;
        } else {
            st.over_bound_warned[dest.index()] = false;
        }
        Ok(())
    }

    /// Removes the files in `names` other than `keep`.
    fn remove_others(&self, dir: &Path, names: &[String], keep: &str) -> Result<(), SpoolError> {
        let mut removed = false;
        for n in names.iter().filter(|n| *n != keep) {
            remove_if_exists(&dir.join(n))?;
            removed = true;
        }
        if removed {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Drops from the checkpoint the open window that `w` closed.
    fn prune_checkpoint(&self, w: &SpooledWindow) -> Result<(), SpoolError> {
        let path = self.checkpoint_path();
        let Entry::File(bytes) = read_regular(&path, MAX_FILE_BYTES)? else {
            return Ok(());
        };
        // An unreadable checkpoint is left for take/recover to report.
        let Ok(mut cp) = parse_checkpoint(&bytes) else {
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

    fn read_checkpoint(&self) -> Result<Option<Checkpoint>, SpoolError> {
        let path = self.checkpoint_path();
        let bytes = match read_regular(&path, MAX_FILE_BYTES)? {
            Entry::Gone => return Ok(None),
            Entry::File(b) => b,
            Entry::NotRegular(what) => {
                self.quarantine(&path, "root", what)?;
                return Ok(None);
            }
            Entry::Unreadable(why) => {
                self.quarantine(&path, "root", &why)?;
                return Ok(None);
            }
            Entry::TooLarge(n) => {
                self.quarantine(
                    &path,
                    "root",
                    &format!("{n} bytes, larger than any checkpoint"),
                )?;
                return Ok(None);
            }
        };
        match parse_checkpoint(&bytes) {
            Ok(cp) => Ok(Some(cp)),
            Err(why) => {
                self.quarantine(&path, "root", &why.to_string())?;
                Ok(None)
            }
        }
    }

    /// Reads one window file, moving it to `corrupt/` (and returning
    /// `None`) if it is not a valid window of `dest`.
    fn read_window(
        &self,
        dir: &Path,
        name: &str,
        dest: Destination,
        area: Area,
    ) -> Result<Option<WindowFile>, SpoolError> {
        let path = dir.join(name);
        let origin = format!("{dest}-{}", area.as_str());
        let bytes = match read_regular(&path, MAX_FILE_BYTES)? {
            Entry::Gone => return Ok(None),
            Entry::File(b) => b,
            Entry::NotRegular(what) => {
                self.quarantine(&path, &origin, what)?;
                return Ok(None);
            }
            Entry::Unreadable(why) => {
                self.quarantine(&path, &origin, &why)?;
                return Ok(None);
            }
            Entry::TooLarge(n) => {
                self.quarantine(
                    &path,
                    &origin,
                    &format!("{n} bytes, larger than the {MAX_FILE_BYTES} bytes of any window"),
                )?;
                return Ok(None);
            }
        };
        let file = match parse_window_file(&bytes) {
            Ok(f) => f,
            Err(why) => {
                self.quarantine(&path, &origin, &why.to_string())?;
                return Ok(None);
            }
        };
        if file.destination != dest {
            self.quarantine(
                &path,
                &origin,
                &format!(
                    "a {} window in the {dest} directory",
                    file.destination.as_str()
                ),
            )?;
            return Ok(None);
        }
        Ok(Some(file))
    }

    /// Loads every window of an area, oldest first: unreadable files are
    /// moved to `corrupt/`, hand-renamed files get their canonical name,
    /// duplicate ids are moved aside, and (pending) windows that a merged
    /// window replaces are deleted.
    fn load(
        &self,
        st: &mut State,
        dest: Destination,
        area: Area,
    ) -> Result<Vec<Loaded>, SpoolError> {
        let dir = self.area_dir(dest, area);
        let origin = format!("{dest}-{}", area.as_str());
        let (names, odd) = fsutil::list_names(&dir)?;
        for p in odd {
            self.quarantine(&p, &origin, "the file name is not UTF-8")?;
        }
        let mut out = Vec::new();
        for name in names {
            if area == Area::Rejected && name.ends_with(ANSWER_SUFFIX) {
                continue;
            }
            let Some(file) = self.read_window(&dir, &name, dest, area)? else {
                continue;
            };
            let (window, replaces) = file.into_parts();
            let canonical = window.file_name();
            let name = if name == canonical || self.is_read_only() {
                name
            } else {
                let target = dir.join(&canonical);
                if fs::symlink_metadata(&target).is_ok() {
                    self.quarantine(
                        &dir.join(&name),
                        &origin,
                        &format!("a duplicate of {canonical}"),
                    )?;
                    continue;
                }
                fs::rename(dir.join(&name), &target)
                    .map_err(SpoolError::on("renaming", &target))?;
                sync_dir(&dir)?;
                tracing::info!(from = %name, to = %canonical, "renamed a spool file to its canonical name");
                if area == Area::Rejected {
                    let _ = fs::rename(
                        dir.join(answer_file_name(&name)),
                        dir.join(answer_file_name(&canonical)),
                    );
                }
                canonical
            };
            let bytes = fs::symlink_metadata(dir.join(&name)).map_or(0, |m| m.len());
            out.push(Loaded {
                window,
                replaces,
                name,
                bytes,
            });
        }
        out.sort_by_key(|l| order_key(&l.window));

        let mut seen = HashSet::new();
        let replaced: HashSet<Uuid> = out.iter().flat_map(|l| l.replaces.clone()).collect();
        let mut kept = Vec::with_capacity(out.len());
        let mut deleted = false;
        for l in out {
            if area == Area::Pending && replaced.contains(&l.window.id) {
                if !self.is_read_only() {
                    remove_if_exists(&dir.join(&l.name))?;
                    deleted = true;
                    tracing::info!(id = %l.window.id, "removed a window already included in a merged window (a merge was interrupted)");
                }
                continue;
            }
            if !seen.insert(l.window.id) {
                self.quarantine(
                    &dir.join(&l.name),
                    &origin,
                    &format!("another file holds the same window id {}", l.window.id),
                )?;
                continue;
            }
            kept.push(l);
        }
        if deleted {
            sync_dir(&dir)?;
        }
        if area == Area::Pending && !self.is_read_only() {
            st.needs_reconcile[dest.index()] = false;
            let mut ix = index_of(&kept);
            ix.carry_doubt(st.index[dest.index()].as_ref());
            st.index[dest.index()] = Some(ix);
        }
        Ok(kept)
    }

    /// Merges the oldest adjacent mergeable pairs (never the oldest window)
    /// until the destination is within its limits or nothing more can be
    /// merged.
    fn enforce_bound(
        &self,
        st: &mut State,
        dest: Destination,
        mut entries: Vec<Loaded>,
    ) -> Result<(), SpoolError> {
        let d = dest.index();
        let dir = self.area_dir(dest, Area::Pending);
        let limits = self.limits;
        let mut total: u64 = entries.iter().map(|l| l.bytes).sum();
        let mut merges = 0usize;
        while entries.len() > limits.max_windows || total > limits.max_bytes {
            let found = (1..entries.len().saturating_sub(1)).find_map(|i| {
                merge(&entries[i].window, &entries[i + 1].window, Uuid::new_v4()).map(|m| (i, m))
            });
            let Some((i, merged)) = found else {
                if !st.over_bound_warned[d] {
                    tracing::warn!(
                        destination = %dest,
                        windows = entries.len(),
                        bytes = total,
                        max_windows = limits.max_windows,
                        max_bytes = limits.max_bytes,
                        dir = %dir.display(),
                        "the spool is over its bound and no more windows can be merged \
                         (in-doubt windows, differing tags, or only the oldest left): \
                         keeping everything rather than dropping counts"
                    );
                    st.over_bound_warned[d] = true;
                }
                break;
            };
            let replaces = vec![entries[i].window.id, entries[i + 1].window.id];
            let name = merged.file_name();
            let bytes = WindowFile::new(merged.clone(), replaces).to_bytes();
            // Merged file first (it records what it replaces), then the
            // originals: a crash in between is reconciled on the next load.
            write_atomic(&dir, &name, &bytes)?;
            st.needs_reconcile[d] = true;
            remove_if_exists(&dir.join(&entries[i].name))?;
            remove_if_exists(&dir.join(&entries[i + 1].name))?;
            sync_dir(&dir)?;
            st.needs_reconcile[d] = false;
            tracing::debug!(
                destination = %dest,
                a = %entries[i].window.id,
                b = %entries[i + 1].window.id,
                into = %merged.id,
                "merged two spooled windows"
            );
            total = total - entries[i].bytes - entries[i + 1].bytes + bytes.len() as u64;
            entries.splice(
                i..=i + 1,
                [Loaded {
                    window: merged,
                    replaces: Vec::new(),
                    name,
                    bytes: bytes.len() as u64,
                }],
            );
            merges += 1;
        }
        if merges > 0 {
            tracing::info!(
                destination = %dest,
                merges,
                windows = entries.len(),
                "the spool reached its bound: merged the oldest windows (no count dropped)"
            );
        }
        if entries.len() <= limits.max_windows && total <= limits.max_bytes {
            st.over_bound_warned[d] = false;
        }
        let mut ix = index_of(&entries);
        ix.carry_doubt(st.index[d].as_ref());
        st.index[d] = Some(ix);
        Ok(())
    }

    /// File names in an area holding window `id` (normally one). Files whose
    /// names are not canonical are first given their canonical name.
    fn find_by_id(
        &self,
        st: &mut State,
        dest: Destination,
        area: Area,
        id: Uuid,
    ) -> Result<Vec<String>, SpoolError> {
        if area == Area::Pending && !self.is_read_only() {
            let found = self.index(st, dest)?.get(id);
            return Ok(found.map(|e| vec![e.name.clone()]).unwrap_or_default());
        }
        let dir = self.area_dir(dest, area);
        let scan = |dir: &Path| -> Result<(Vec<String>, bool), SpoolError> {
            let (names, odd) = fsutil::list_names(dir)?;
            let mut irregular = !odd.is_empty();
            let mut hits = Vec::new();
            for n in names {
                if area == Area::Rejected && n.ends_with(ANSWER_SUFFIX) {
                    continue;
                }
                match id_from_file_name(&n) {
                    Some(i) if i == id => hits.push(n),
                    Some(_) => {}
                    None => irregular = true,
                }
            }
            Ok((hits, irregular))
        };
        let (hits, irregular) = scan(&dir)?;
        if hits.is_empty() && irregular && !self.is_read_only() {
            self.load(st, dest, area)?;
            return Ok(scan(&dir)?.0);
        }
        Ok(hits)
    }

    /// Moves an unreadable file to `corrupt/` untouched, with its reason in
    /// a sibling `.reason.txt`, and warns. Read-only: only warns.
    fn quarantine(&self, path: &Path, origin: &str, reason: &str) -> Result<(), SpoolError> {
        if self.is_read_only() {
            tracing::warn!(file = %path.display(), reason,
                "unreadable spool file skipped (the process holding the spool moves it to corrupt/)");
            return Ok(());
        }
        let corrupt = self.corrupt_dir();
        fsutil::create_dir_private(&corrupt)?;
        let name = path
            .file_name()
            .map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned());
        let base = format!("{origin}-{name}");
        let mut target_name = base.clone();
        let mut n = 1;
        while fs::symlink_metadata(corrupt.join(&target_name)).is_ok()
            || fs::symlink_metadata(corrupt.join(format!("{target_name}{REASON_SUFFIX}"))).is_ok()
        {
            target_name = format!("{base}.{n}");
            n += 1;
        }
        let target = corrupt.join(&target_name);
        match fs::rename(path, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SpoolError::io("moving to corrupt/", path, e)),
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        let text = format!(
            "{reason}\n\nmoved from: {}\nmoved at: {}\n",
            path.display(),
            crate::wire::format_timestamp(&Utc::now())
        );
        write_atomic(
            &corrupt,
            &format!("{target_name}{REASON_SUFFIX}"),
            text.as_bytes(),
        )?;
        tracing::warn!(
            file = %path.display(),
            moved_to = %target.display(),
            reason,
            "unreadable spool file moved to corrupt/ (inspect it with `spool show`)"
        );
        Ok(())
    }
}

/// The index of loaded pending windows.
fn index_of(entries: &[Loaded]) -> Index {
    let mut ix = Index::default();
    for l in entries {
        ix.insert(&l.window, Indexed::new(&l.window, l.name.clone(), l.bytes));
    }
    ix
}

fn answer_file_name(window_file: &str) -> String {
    format!(
        "{}{ANSWER_SUFFIX}",
        window_file.strip_suffix(".json").unwrap_or(window_file)
    )
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn cap_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn default_dir_from(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let set = |k: &str| var(k).filter(|v| !v.is_empty());
    if let Some(d) = set("BEACON_SPOOL_DIR") {
        return PathBuf::from(d);
    }
    if let Some(x) = set("XDG_STATE_HOME").map(PathBuf::from)
        && x.is_absolute()
    {
        return x.join("beacon-meter").join("spool");
    }
    if let Some(h) = set("HOME") {
        return PathBuf::from(h)
            .join(".local")
            .join("state")
            .join("beacon-meter")
            .join("spool");
    }
    PathBuf::from("beacon-meter-spool")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            default_dir_from(env(&[("BEACON_SPOOL_DIR", "/s"), ("HOME", "/h")])),
            PathBuf::from("/s")
        );
        assert_eq!(
            default_dir_from(env(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")])),
            PathBuf::from("/x/beacon-meter/spool")
        );
        assert_eq!(
            default_dir_from(env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")])),
            PathBuf::from("/h/.local/state/beacon-meter/spool")
        );
        assert_eq!(
            default_dir_from(env(&[("BEACON_SPOOL_DIR", "")])),
            PathBuf::from("beacon-meter-spool")
        );
    }

    #[test]
    fn cap_utf8_respects_char_boundaries() {
        assert_eq!(cap_utf8("héllo", 2), "h");
        assert_eq!(cap_utf8("héllo", 3), "hé");
        assert_eq!(cap_utf8("abc", 10), "abc");
    }

    #[test]
    fn answer_file_sits_beside_the_window() {
        assert_eq!(answer_file_name("a_b.json"), "a_b.answer.txt");
    }
}
