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
//!   every read skips a window that a merged window replaces (and a repair
//!   deletes it), so a crash in between never counts twice.
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
//! symbolic link (never followed) or a directory is skipped by every read
//! and moved to `corrupt/` with a warning by the next repair; it never
//! stops the spool. A file written by a
//! **newer** beacon-meter (a format version above [`FORMAT_VERSION`]) is
//! never read as this version: it is also moved to `corrupt/`, byte for byte
//! untouched, and the warning says to move it back into `pending/` after
//! upgrading.
//!
//! # Reading and repairing
//!
//! Reads ([`pending`](Spool::pending), [`list`](Spool::list),
//! [`show`](Spool::show), ...) never change a file: they skip what they
//! cannot use. Repairs (unreadable files to `corrupt/`, hand-renamed files
//! to their canonical names, interrupted merges finished) happen only in
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

pub use error::SpoolError;
pub use listing::{
    CheckpointPeek, CorruptSummary, EXPORT_FORMAT, RejectedSummary, SpoolExport, SpoolListing,
    WindowSummary,
};
pub use merge::{MAX_MERGED_LOG_BYTES, MAX_MERGED_LOGS, merge};
pub use window::{
    Checkpoint, Destination, FORMAT_VERSION, MAX_FILE_BYTES, SpoolLimits, SpooledWindow,
};

use index::{Index, Indexed};
use parking_lot::Mutex;
use scan::Loaded;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use uuid::Uuid;

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
            ix.insert(&l.window, Indexed::new(&l.window, l.name.clone(), l.bytes));
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
                spool.repair_dest(&mut st, dest)?;
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

    /// The limits in force.
    pub fn limits(&self) -> SpoolLimits {
        self.limits
    }

    /// True if opened with [`open_read_only`](Self::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

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
