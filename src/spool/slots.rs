//! Several processes on one spool root: each live process claims its own
//! slot directory, the way a thread claims a slot of the meter.
//!
//! May import `super` (the spool) and `std`; nothing of tokio or HTTP.
//!
//! # Layout
//!
//! ```text
//! <root>/                 0700
//!   slots.lock            held (briefly) while a process claims or adopts
//!   slot-0/, slot-1/, …   each a whole spool (LOCK, checkpoint, pending, …)
//!   beacon/, auth/, …     only in a spool written before slots existed
//! ```
//!
//! # Claiming
//!
//! Under `slots.lock`, a process walks `slot-0`, `slot-1`, … and takes the
//! first whose own `LOCK` it can take ([`Spool::open`]). A slot's `LOCK` is
//! an OS file lock, released by the kernel when its holder dies, so a free
//! slot is exactly one whose process is gone (or never was).
//!
//! **Bound.** Claims and adoptions are serialized by `slots.lock`, and an
//! adopter holds a dead slot's lock only while it holds `slots.lock`. So
//! when a claimant skips `slot-k`, `slot-k` is held by a live process that
//! claimed it; it creates `slot-n` only when `slot-0 … slot-(n-1)` are all
//! held by live processes, i.e. when `n + 1` processes are alive at once.
//! The number of slot directories is therefore at most the largest number
//! of processes that were alive at the same time.
//!
//! # Adopting what dead processes left
//!
//! Right after claiming, still under `slots.lock`, the process opens every
//! other free slot (and an old flat spool at the root, once no process of
//! an older version holds its `LOCK`), turns its checkpoint into pending
//! windows ([`Spool::recover_checkpoint`]) and moves its pending and
//! rejected windows into its own slot (`Spool::take_over`). Each move is
//! one `rename` within the root's filesystem: at every instant a window file
//! is in exactly one slot, so a crash mid-adoption neither loses nor doubles
//! a window; what is left is adopted by the next claimant. The dead slot's
//! oldest pending window of each destination may have been in flight when
//! its process died, so it is marked in doubt (sent only as itself, under
//! its own id) before it moves.
//!
//! The claimed slot is the lowest free one, so every free slot left after a
//! claim is above it: adopting them first keeps the lowest slots in use and
//! the higher ones empty.

use super::fsutil;
use super::{Area, Destination, Spool, SpoolError, SpoolLimits};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Directory name prefix of a slot: `slot-0`, `slot-1`, …
pub const SLOT_PREFIX: &str = "slot-";
/// The lock file serializing claims and adoptions under a root.
pub const SLOTS_LOCK: &str = "slots.lock";

/// A slot claimed by this process.
#[derive(Debug)]
pub struct Claim {
    /// The claimed slot's spool (holding the slot's lock until dropped).
    pub spool: Spool,
    /// The slot's number (`slot-N`).
    pub slot: usize,
    /// Windows adopted from dead slots (and from an old flat spool).
    pub adopted: usize,
}

/// Claims the lowest free slot under `root` (creating `root` and the slot
/// if needed), then adopts what dead processes left in the other free slots
/// and in an old flat spool at the root. See the [module docs](self).
pub fn claim(root: &Path, limits: SpoolLimits) -> Result<Claim, SpoolError> {
    fsutil::create_dir_private(root)?;
    fsutil::check_private_dir(root)?;
    let _guard = lock_root(root)?;
    let (spool, slot) = claim_lowest(root, limits)?;
    let adopted = adopt_locked(root, &spool, limits)?;
    tracing::info!(root = %root.display(), slot, adopted, "claimed a spool slot");
    Ok(Claim {
        spool,
        slot,
        adopted,
    })
}

/// The slot directories under `root`, by number.
pub fn slot_dirs(root: &Path) -> Result<Vec<(usize, PathBuf)>, SpoolError> {
    let (names, _) = fsutil::list_names(root)?;
    let mut slots: Vec<(usize, PathBuf)> = names
        .iter()
        .filter_map(|n| Some((slot_number(n)?, root.join(n))))
        .filter(|(_, p)| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .collect();
    slots.sort();
    Ok(slots)
}

/// `Some(n)` for `slot-n` (canonical decimal, no sign or leading zero).
pub fn slot_number(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(SLOT_PREFIX)?;
    let n: usize = digits.parse().ok()?;
    (n.to_string() == digits).then_some(n)
}

/// True if `root` holds a spool written before slots existed (windows or a
/// checkpoint directly under it).
pub fn has_flat_spool(root: &Path) -> bool {
    ["beacon", "auth", super::CHECKPOINT_FILE]
        .iter()
        .any(|n| fs::symlink_metadata(root.join(n)).is_ok())
}

/// The spools under `root`: its slots, then an old flat spool at the root
/// itself, if there is one.
fn spool_dirs(root: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let mut dirs: Vec<PathBuf> = slot_dirs(root)?.into_iter().map(|(_, d)| d).collect();
    if has_flat_spool(root) {
        dirs.push(root.to_path_buf());
    }
    Ok(dirs)
}

/// Opens every spool under `root` that holds rejected windows and moves
/// them back to pending ([`Spool::requeue_rejected`]). All of them are
/// locked first, so either every one is requeued or (a reporter holds one:
/// [`SpoolError::Locked`]) none is.
pub fn requeue_all(root: &Path) -> Result<usize, SpoolError> {
    let _guard = lock_root(root)?;
    let mut dirs = spool_dirs(root)?;
    let has_rejected = |d: &PathBuf| {
        Destination::ALL.iter().any(|dest| {
            let dir = d.join(dest.as_str()).join(Area::Rejected.as_str());
            fsutil::list_names(&dir).is_ok_and(|(n, odd)| !n.is_empty() || !odd.is_empty())
        })
    };
    dirs.retain(has_rejected);
    let spools = dirs
        .iter()
        .map(|d| Spool::open(d, SpoolLimits::default()))
        .collect::<Result<Vec<_>, _>>()?;
    spools.iter().map(Spool::requeue_rejected).sum()
}

/// Takes `root/slots.lock`, waiting for a claim or adoption in progress.
/// Released when the returned file is dropped (or the process dies).
fn lock_root(root: &Path) -> Result<File, SpoolError> {
    let path = root.join(SLOTS_LOCK);
    let file = fsutil::open_lock_file(&path)?;
    file.lock().map_err(SpoolError::on("locking", &path))?;
    Ok(file)
}

/// The lowest slot whose lock is free, created if every existing one is
/// held. Caller holds `slots.lock`.
fn claim_lowest(root: &Path, limits: SpoolLimits) -> Result<(Spool, usize), SpoolError> {
    for n in 0.. {
        let dir = root.join(format!("{SLOT_PREFIX}{n}"));
        match fs::symlink_metadata(&dir) {
            Ok(m) if !m.is_dir() => continue, // not ours to touch; skip the name
            _ => {}
        }
        match Spool::open(&dir, limits) {
            Ok(s) => return Ok((s, n)),
            Err(SpoolError::Locked { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the slot numbers are unbounded")
}

/// Adopts every free slot but `mine`, and an unheld flat spool at the root.
/// Caller holds `slots.lock`.
fn adopt_locked(root: &Path, mine: &Spool, limits: SpoolLimits) -> Result<usize, SpoolError> {
    let mut adopted = 0;
    for dir in spool_dirs(root)?.into_iter().filter(|d| d != mine.dir()) {
        let other = match Spool::open(&dir, limits) {
            Ok(s) => s,
            Err(SpoolError::Locked { .. }) => continue, // alive
            Err(e) => return Err(e),
        };
        other.recover_checkpoint()?;
        let n = mine.take_over(&other)?;
        if dir == root {
            remove_empty_flat_dirs(root);
        }
        if n > 0 {
            tracing::warn!(from = %dir.display(), into = %mine.dir().display(), windows = n,
                "adopted the windows a stopped process left in its spool; they will be delivered");
        }
        adopted += n;
    }
    Ok(adopted)
}

/// After adopting an old flat spool, removes its directories if empty (a
/// non-empty one, say `corrupt/`, stays for the operator).
fn remove_empty_flat_dirs(root: &Path) {
    for dest in Destination::ALL {
        for area in Area::ALL {
            let _ = fs::remove_dir(root.join(dest.as_str()).join(area.as_str()));
        }
        let _ = fs::remove_dir(root.join(dest.as_str()));
    }
    let _ = fs::remove_dir(root.join(super::CORRUPT_DIR));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names() {
        assert_eq!(slot_number("slot-0"), Some(0));
        assert_eq!(slot_number("slot-12"), Some(12));
        assert_eq!(slot_number("slot-012"), None);
        assert_eq!(slot_number("slot-+1"), None);
        assert_eq!(slot_number("slot-"), None);
        assert_eq!(slot_number("beacon"), None);
    }
}
