//! The sink's own files, the database and the JSONL export, hold every
//! tenant's usage, so only their owner may read them: each is created with
//! mode 0600 whatever the umask (SQLite gives the database's `-wal` and
//! `-shm` files the database's own mode). A file that already exists keeps
//! its mode, since an operator may have chosen it, but a warning names it
//! when other users may read or write it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode a file the sink creates gets: read and write for its owner.
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// Opens `path` for appending, creating it with [`PRIVATE_MODE`].
pub(crate) fn append_private(path: &Path, what: &str) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(PRIVATE_MODE)
        .open(path)?;
    if let Ok(meta) = file.metadata() {
        warn_if_shared(path, &meta, what);
    }
    Ok(file)
}

/// Creates `path` empty with [`PRIVATE_MODE`] if it does not exist, for a
/// library (SQLite) that would create it with the umask's mode; warns if
/// an existing file is shared.
pub(crate) fn create_private(path: &Path, what: &str) -> std::io::Result<()> {
    append_private(path, what).map(drop)
}

/// Logs a warning if users other than the owner may read or write the
/// file at `path` (`meta` is its metadata): the sink's `what`, such as its
/// database or its admin token file.
pub fn warn_if_shared(path: &Path, meta: &std::fs::Metadata, what: &str) {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o066 != 0 {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{mode:04o}"),
            "the sink's {what} may be read or written by other users; \
             `chmod 600` it unless that is intended"
        );
    }
}
