//! The spool's error type: every variant names the path involved and what to
//! do about it.

use super::Destination;
use std::io;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// Another process (or another `Spool` in this process) holds the lock.
    #[error(
        "spool directory {} is in use by {holder}: stop that process first, or give this one its own spool directory (BEACON_SPOOL_DIR)",
        dir.display()
    )]
    Locked {
        /// The spool directory.
        dir: PathBuf,
        /// Who holds the lock, as written in its `LOCK` file (pid, host, start time).
        holder: String,
    },

    /// A spool directory or lock file another user could tamper with: a
    /// directory not owned by this process's user or writable by others
    /// (even with the sticky bit), or a lock file that is a symbolic link
    /// (opening it would write wherever it points). `problem` says which,
    /// and the fix.
    #[error("{} {problem}", path.display())]
    Unsafe {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it and what to do about it.
        problem: String,
    },

    /// An I/O failure. The message's advice follows the error's kind: a
    /// permission or read-only filesystem error, a full disk (then nothing
    /// was stored: the caller still holds the window it tried to write),
    /// or anything else.
    #[error("{}", io_message(.action, .path, .source))]
    Io {
        /// What the spool was doing ("reading", "renaming", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// No pending window with this id (already sent, rejected or merged).
    #[error(
        "no pending {destination} window with id {id} in {}: it was already sent, rejected or merged into a wider window (see `spool list`)",
        dir.display()
    )]
    NotFound {
        /// The destination searched.
        destination: Destination,
        /// The id searched for.
        id: Uuid,
        /// The pending directory searched.
        dir: PathBuf,
    },

    /// `show` found nothing by that id or file name.
    #[error(
        "nothing named {query:?} in spool {}: give a window id or a file name from `spool list`",
        dir.display()
    )]
    NoSuchEntry {
        /// What was asked for.
        query: String,
        /// The spool directory.
        dir: PathBuf,
    },

    /// A window handed to the spool breaks a rule of the format.
    #[error("refusing to spool window {id}: {reason}")]
    InvalidWindow {
        /// The window's id.
        id: Uuid,
        /// What is wrong with it.
        reason: String,
    },

    /// The spool was opened read-only (for inspection) and cannot change.
    #[error(
        "spool {} is open read-only (another process holds it): stop that process to modify the spool",
        dir.display()
    )]
    ReadOnly {
        /// The spool directory.
        dir: PathBuf,
    },

    /// A read-only open found no spool at this path.
    #[error(
        "no spool at {}: check the path, BEACON_SPOOL_DIR, or that the reporter has run at least once",
        dir.display()
    )]
    NoSpool {
        /// The path given.
        dir: PathBuf,
    },
}

impl SpoolError {
    /// A closure for `map_err`: an I/O error on `path` while doing `action`.
    pub(crate) fn on(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
        move |source| SpoolError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The message of [`SpoolError::Io`]: what failed and what to do about it,
/// by the kind of error.
fn io_message(action: &str, path: &Path, source: &io::Error) -> String {
    let path = path.display();
    match source.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => format!(
            "cannot write {path}: the spool directory is not writable: check its owner and \
             permissions, or set BEACON_SPOOL_DIR to a writable directory ({source})"
        ),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => format!(
            "no space left to write {path}: free space on that filesystem or move the spool \
             (BEACON_SPOOL_DIR); the window was not stored, keep it in memory and retry ({source})"
        ),
        _ => format!(
            "spool I/O failed while {action} {path}: {source} (check that the spool path is a \
             directory on a healthy local filesystem, or set BEACON_SPOOL_DIR)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_path_and_the_fix() {
        let e = SpoolError::on("writing", Path::new("/x/spool"))(io::Error::from(
            io::ErrorKind::PermissionDenied,
        ));
        let msg = e.to_string();
        assert!(msg.contains("cannot write /x/spool"), "{msg}");
        assert!(msg.contains("not writable"), "{msg}");
        assert!(msg.contains("BEACON_SPOOL_DIR"), "{msg}");

        let e = SpoolError::on("writing", Path::new("/x/f.json"))(io::Error::from(
            io::ErrorKind::StorageFull,
        ));
        assert!(
            e.to_string().contains("no space left to write /x/f.json"),
            "{e}"
        );
        assert!(e.to_string().contains("free space"), "{e}");

        let e = SpoolError::on("renaming", Path::new("/x/f.json"))(io::Error::from(
            io::ErrorKind::Interrupted,
        ));
        assert!(e.to_string().contains("renaming /x/f.json"), "{e}");
    }
}
