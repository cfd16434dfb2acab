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
//! sends the head of a destination's queue
//! ([`next_to_send`](Spool::next_to_send)), one report at a time, and after
//! the answer calls [`remove`](Spool::remove) (2xx), [`reject`](Spool::reject)
//! (a refusal that retrying cannot fix) or [`update`](Spool::update) (more
//! attempts; `in_doubt` if the request may have been accepted).
//!
//! # Bounded without loss
//!
//! Past [`SpoolLimits`], the oldest *adjacent* pair of mergeable windows is
//! merged into one wider window under a new id ([`merge`]). A count is
//! never dropped: if nothing can be merged the spool grows past its bound
//! and says so in a warning.
//!
//! * **In-doubt windows are never merged.** If an attempt may have been
//!   accepted, the server may already have counted the window under its id.
//!   Sent again under the *same* id it is deduplicated; folded into a merged
//!   window under a *new* id it would be counted twice.
//! * **The oldest pending window is never merged** by the bound: a reporter
//!   may be sending it right now, and that send would then count twice.
//! * **Merging is crash-safe**: the merged file records the ids it
//!   `replaces` and is durable before the originals are deleted; every read
//!   skips a replaced window, so a crash in between never counts twice.
//!
//! # Checkpoint, unreadable files, reading and repairing
//!
//! The *open* window of each destination is saved in the checkpoint, with
//! the id it will carry when it closes, and recovered after a crash (see
//! [`recover_checkpoint`](Spool::recover_checkpoint)).
//!
//! A file that is empty, truncated, not a window, breaks a rule, is a
//! symbolic link (never followed) or a directory is skipped by every read
//! and moved to `corrupt/` with its reason by the next repair; it never
//! stops the spool. A file of a **newer** format version (above
//! [`FORMAT_VERSION`]) is never read as this one: it is moved to `corrupt/`
//! byte for byte, to be moved back after upgrading.
//!
//! Reads ([`pending`](Spool::pending), [`list`](Spool::list),
//! [`show`](Spool::show), ...) never change a file. Repairs happen only in
//! [`open`](Spool::open) and [`rescan`](Spool::rescan).
//!
//! The spool holds no secret: the credential is added at send time.
//!
//! May import `crate::wire` (report bodies, timestamps), serde, chrono,
//! uuid, parking_lot, tracing and `std`; never tokio, HTTP or the CLI.

mod bound;
mod checkpoint;
mod error;
mod fsutil;
mod index;
mod inspect;
mod listing;
mod maintain;
mod merge;
mod queue;
mod repair;
mod scan;
pub mod slots;
mod window;

pub use checkpoint::CheckpointPeek;
pub use error::SpoolError;
pub use listing::{
    CorruptSummary, EXPORT_FORMAT, RejectedSummary, SpoolExport, SpoolListing, WindowSummary,
};
pub use merge::{MAX_MERGED_LOG_BYTES, MAX_MERGED_LOGS, merge};
pub use window::{
    Checkpoint, Destination, FORMAT_VERSION, MAX_FILE_BYTES, SpoolLimits, SpooledWindow,
};

use index::Index;
use parking_lot::{Mutex, MutexGuard};
use scan::Loaded;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

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
    const ALL: [Area; 2] = [Area::Pending, Area::Rejected];

    fn as_str(self) -> &'static str {
        match self {
            Area::Pending => "pending",
            Area::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// A bound-exceeded warning was logged (per destination), so it is not
    /// repeated on every push.
    over_bound_warned: [bool; 2],
    /// The index may not match the directory (a bound enforcement was cut
    /// short): rebuild it from a scan before trusting it.
    stale: [bool; 2],
    /// The pending windows of each destination (writable spools only;
    /// `None` until the first scan).
    index: [Option<Index>; 2],
}

impl State {
    /// Makes `entries` (a scan of `dest`'s pending windows) its index,
    /// keeping the in-doubt marks of the old one (some only in memory).
    fn install_index(&mut self, dest: Destination, entries: &[Loaded]) {
        let d = dest.index();
        let mut ix = Index::default();
        for l in entries {
            ix.insert(&l.window, l.name.clone(), l.bytes);
        }
        ix.carry_doubt(self.index[d].as_ref());
        self.index[d] = Some(ix);
        self.stale[d] = false;
    }
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
    /// writes, then repairs (see [`rescan`](Self::rescan)) and enforces
    /// `limits`.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        fsutil::create_dir_private(dir)?;
        fsutil::check_private_dir(dir)?;
        let lock = fsutil::acquire_lock(dir)?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            limits,
            lock: Some(lock),
            state: Mutex::new(State::default()),
            slots: Vec::new(),
        };
        for d in &spool.dirs() {
            fsutil::create_dir_private(d)?;
            fsutil::remove_stale_temps(d)?;
        }
        {
            let mut st = spool.state.lock();
            for dest in Destination::ALL {
                spool.repair_dest(&mut st, dest)?;
                st.index[dest.index()]
                    .iter_mut()
                    .for_each(Index::suspect_head);
            }
        }
        tracing::debug!(dir = %spool.dir.display(), "spool opened");
        Ok(spool)
    }

    /// Opens an existing spool for inspection only ([`list`](Self::list),
    /// [`show`](Self::show), [`pending`](Self::pending),
    /// [`stats`](Self::stats), [`export`](Self::export)), without the lock,
    /// so it works while a reporter holds the spool. Like every read it
    /// never changes the spool, and every modifying call returns
    /// [`SpoolError::ReadOnly`].
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

    /// The path of the checkpoint file in the spool directory `dir`.
    pub fn checkpoint_file(dir: &Path) -> PathBuf {
        dir.join(CHECKPOINT_FILE)
    }

    /// True if opened with [`open_read_only`](Self::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    /// The state, locked, of a spool opened with its lock;
    /// [`SpoolError::ReadOnly`] if opened read-only.
    fn held(&self) -> Result<MutexGuard<'_, State>, SpoolError> {
        match self.lock {
            Some(_) => Ok(self.state.lock()),
            None => Err(SpoolError::ReadOnly {
                dir: self.dir.clone(),
            }),
        }
    }

    fn area_dir(&self, dest: Destination, area: Area) -> PathBuf {
        self.dir.join(dest.as_str()).join(area.as_str())
    }

    fn corrupt_dir(&self) -> PathBuf {
        self.dir.join(CORRUPT_DIR)
    }

    /// Every directory of the spool: itself, each area, then `corrupt/`.
    fn dirs(&self) -> Vec<PathBuf> {
        let areas = Destination::ALL
            .into_iter()
            .flat_map(|d| Area::ALL.map(|a| self.area_dir(d, a)));
        let mut dirs: Vec<PathBuf> = std::iter::once(self.dir.clone()).chain(areas).collect();
        dirs.push(self.corrupt_dir());
        dirs
    }
}

fn answer_file_name(window_file: &str) -> String {
    format!(
        "{}{ANSWER_SUFFIX}",
        window_file.strip_suffix(".json").unwrap_or(window_file)
    )
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
    fn answer_file_sits_beside_the_window() {
        assert_eq!(answer_file_name("a_b.json"), "a_b.answer.txt");
    }
}
