//! File-system primitives: atomic writes, directory fsync, reads that never
//! follow a symbolic link, lock files that are never links, and the check
//! that no other user can write in a spool directory.

use super::SpoolError;
use chrono::Utc;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write};
use std::path::{Path, PathBuf};

/// Temporary files start with this; any left at open time are from a write
/// cut short and are removed.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// Creates `path` (and missing parents) as a directory, mode 0700 on Unix.
pub(crate) fn create_dir_private(path: &Path) -> Result<(), SpoolError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path).map_err(SpoolError::on("creating", path))
}

/// Opens `path` with `o`; a file it creates gets mode 0600 on Unix.
fn open_private(o: &mut OpenOptions, path: &Path) -> io::Result<File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(o, 0o600);
    o.open(path)
}

/// Opens the lock file at `path` for reading and writing, creating it
/// (mode 0600) if needed, never truncating it, and never through a
/// symbolic link: with `O_NOFOLLOW` a link planted in its place (to a file
/// this process may write, or dangling, to make it create one) fails the
/// open with `ELOOP` instead of being written through. (`O_CLOEXEC` is
/// std's default.)
pub(crate) fn open_lock_file(path: &Path) -> Result<File, SpoolError> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, libc::O_NOFOLLOW);
    open_private(&mut o, path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return SpoolError::Unsafe {
                path: path.to_path_buf(),
                problem: "is a symbolic link, and the spool never writes a lock file through \
                          one (it could point at any file this process may write): remove it"
                    .into(),
            };
        }
        SpoolError::on("opening", path)(e)
    })
}

/// Refuses a spool directory that another user could change: one not
/// owned by this process's (effective) user, or writable by its group or
/// by others. The sticky bit of a shared directory such as `/tmp` does not
/// help: another user could still create `LOCK`, `slots.lock` or a
/// `slot-N` there before this process does, as a link or with windows of
/// their own.
pub(crate) fn check_private_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let meta = fs::metadata(dir).map_err(SpoolError::on("checking", dir))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let problem = if meta.uid() != me {
            format!(
                "is owned by uid {}, not by this process's user (uid {me}), who alone may \
                 write in a spool directory: `chown` it, or give this process a directory of \
                 its own (BEACON_SPOOL_DIR)",
                meta.uid()
            )
        } else if meta.mode() & 0o022 != 0 {
            format!(
                "has mode {:04o}, so other users may create files and links in it: \
                 `chmod 700` it, or give this process a directory of its own (BEACON_SPOOL_DIR)",
                meta.mode() & 0o7777
            )
        } else {
            return Ok(());
        };
        Err(SpoolError::Unsafe {
            path: dir.to_path_buf(),
            problem,
        })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Makes renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(SpoolError::on("syncing directory", dir))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in the same
/// directory (mode 0600), fsync, rename over the target, fsync the
/// directory. A crash leaves either the old file or the new one, never a
/// mix; the temporary file is removed on any error.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        uuid::Uuid::new_v4().simple(),
        name
    ));
    let written = (|| {
        let mut f = open_private(OpenOptions::new().write(true).create_new(true), &tmp)
            .map_err(SpoolError::on("creating", &tmp))?;
        f.write_all(bytes)
            .map_err(SpoolError::on("writing", &tmp))?;
        f.sync_all().map_err(SpoolError::on("syncing", &tmp))?;
        drop(f);
        fs::rename(&tmp, &target).map_err(SpoolError::on("renaming into place", &target))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)?;
    Ok(target)
}

/// What reading one spool file found.
pub(crate) enum Read<T> {
    /// Its content.
    Found(T),
    /// Gone (removed between listing and reading).
    Gone,
    /// Not usable, and why: not a regular file (never read), larger than
    /// the limit, not readable by this process, or (from a caller) not
    /// what it should hold. The reason goes to the warning and `corrupt/`.
    Bad(String),
}

/// Reads `path` if, and only if, it is a regular file no larger than `max`.
/// A symbolic link is reported, never followed; on Unix the opened file is
/// checked to be the very inode that was inspected.
pub(crate) fn read_regular(path: &Path, max: u64) -> Result<Read<Vec<u8>>, SpoolError> {
    let bad = |why: &str| Ok(Read::Bad(why.to_owned()));
    let too_large = |n| {
        Ok(Read::Bad(format!(
            "{n} bytes, larger than the {max} bytes any spool file may hold"
        )))
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::Gone),
        Err(e) => return Err(SpoolError::on("inspecting", path)(e)),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return bad("a symbolic link (never followed)");
    }
    if ft.is_dir() {
        return bad("a directory");
    }
    if !ft.is_file() {
        return bad("not a regular file");
    }
    if meta.len() > max {
        return too_large(meta.len());
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::Gone),
        // One file's mode (say, written by another user) must not make the
        // whole spool unusable: the caller moves it aside.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return bad(&format!(
                "it cannot be read ({e}): give this process read access to it, then move it back"
            ));
        }
        Err(e) => return Err(SpoolError::on("opening", path)(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let opened = file
            .metadata()
            .map_err(SpoolError::on("inspecting", path))?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            // Swapped between the check and the open.
            return bad("replaced while being read");
        }
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(SpoolError::on("reading", path))?;
    if bytes.len() as u64 > max {
        return too_large(bytes.len() as u64);
    }
    Ok(Read::Found(bytes))
}

/// Removes `path`; a file already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SpoolError::on("removing", path)(e)),
    }
}

/// The entries of directory `dir`; none if it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, SpoolError> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.collect::<io::Result<_>>(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
    .map_err(SpoolError::on("listing", dir))
}

/// A directory's entries by name (UTF-8 names only; others are returned
/// separately so the caller can move them aside). Temporary files are left
/// out.
pub(crate) fn list_names(dir: &Path) -> Result<(Vec<String>, Vec<PathBuf>), SpoolError> {
    let (mut names, mut odd) = (Vec::new(), Vec::new());
    for entry in read_dir(dir)? {
        match entry.file_name().into_string() {
            Ok(n) if n.starts_with(TMP_PREFIX) => {}
            Ok(n) => names.push(n),
            Err(_) => odd.push(entry.path()),
        }
    }
    names.sort();
    Ok((names, odd))
}

/// Removes temporary files left in `dir` by writes cut short.
pub(crate) fn remove_stale_temps(dir: &Path) -> Result<(), SpoolError> {
    for entry in read_dir(dir)? {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
            && fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir())
        {
            remove_if_exists(&path)?;
            tracing::debug!(path = %path.display(), "removed a temporary file left by an interrupted write");
        }
    }
    Ok(())
}

/// The file name of the lock.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Takes the spool's exclusive lock, or names the process holding it.
/// The lock is released when the returned file is dropped (or the process
/// dies: the operating system releases it, so a crash never leaves a stale
/// lock).
pub(crate) fn acquire_lock(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let mut file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = (&file).take(4096).read_to_string(&mut text);
            return Err(SpoolError::Locked {
                dir: dir.to_path_buf(),
                holder: describe_holder(&text),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(SpoolError::on("locking", &path)(e)),
    }
    let info = format!(
        "pid={}\nhost={}\nstarted={}\n",
        std::process::id(),
        hostname(),
        crate::wire::format_timestamp(&Utc::now())
    );
    file.set_len(0)
        .and_then(|()| file.write_all(info.as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(SpoolError::on("writing", &path))?;
    Ok(file)
}

/// "pid 42 on host h (since 2025-01-06T09:00:00Z)" from a lock file's text.
pub(crate) fn describe_holder(text: &str) -> String {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    match (field("pid"), field("host"), field("started")) {
        (Some(pid), host, started) => format!(
            "pid {pid} on host {} (since {})",
            host.unwrap_or("?"),
            started.unwrap_or("?")
        ),
        _ => "another process (it has not yet written its pid to the LOCK file)".to_owned(),
    }
}

/// This machine's host name, best effort.
pub(crate) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown-host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_description() {
        let d = describe_holder("pid=42\nhost=box\nstarted=2025-01-06T09:00:00Z\n");
        assert_eq!(d, "pid 42 on host box (since 2025-01-06T09:00:00Z)");
        assert!(describe_holder("").contains("another process"));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a.json", b"one").unwrap();
        write_atomic(dir.path(), "a.json", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["a.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn read_regular_never_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let bad = |r| match r {
            Read::Bad(why) => why,
            _ => String::new(),
        };
        assert!(bad(read_regular(&link, 100).unwrap()).contains("symbolic link"));
        assert!(bad(read_regular(&target, 3).unwrap()).starts_with("6 bytes, larger than"));
        assert!(matches!(
            read_regular(&dir.path().join("nope"), 3).unwrap(),
            Read::Gone
        ));
    }

    #[test]
    fn read_regular_takes_exactly_max_bytes_and_reports_other_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("six");
        fs::write(&file, b"123456").unwrap();
        assert!(matches!(read_regular(&file, 6).unwrap(), Read::Found(b) if b == b"123456"));
        // Only a missing file is `Gone`; a path through a file is an error
        // to report, not a window that vanished.
        let Err(err) = read_regular(&file.join("x"), 6) else {
            panic!("a path through a file read as a window or as gone");
        };
        assert!(err.to_string().contains("inspecting"), "{err}");
        // The same for removing and listing: only "not found" is fine.
        remove_if_exists(&dir.path().join("nope")).unwrap();
        assert!(remove_if_exists(&file.join("x")).is_err());
        assert!(list_names(&dir.path().join("nope")).unwrap().0.is_empty());
        assert!(list_names(&file).is_err());
    }
}
