//! Reading the spool's directories: pure, never changes a file. What a
//! read cannot use is skipped and listed for [`repair`](super::repair).
//!
//! May import `super` (the spool's types and file helpers), `std`, `uuid`.

use super::fsutil::{self, Read, read_regular};
use super::index::order_key;
use super::window::{WindowFile, parse_window_file};
use super::{ANSWER_SUFFIX, Area, Destination, MAX_FILE_BYTES, Spool, SpoolError, SpooledWindow};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// A window as read from disk.
#[derive(Debug)]
pub(super) struct Loaded {
    pub window: SpooledWindow,
    /// The ids of the windows it replaces (a merged window).
    pub replaces: Vec<Uuid>,
    /// Its file name (canonical once repaired).
    pub name: String,
    /// Its size on disk.
    pub bytes: u64,
}

/// The window file at `path`, if it is a valid window of `dest`.
pub(super) fn read_window(path: &Path, dest: Destination) -> Result<Read<WindowFile>, SpoolError> {
    Ok(match read_regular(path, MAX_FILE_BYTES)? {
        Read::Found(bytes) => match parse_window_file(&bytes) {
            Err(why) => Read::Bad(why.to_string()),
            Ok(f) if f.window.destination != dest => Read::Bad(format!(
                "a {} window in the {dest} directory",
                f.window.destination
            )),
            Ok(f) => Read::Found(f),
        },
        Read::Gone => Read::Gone,
        Read::Bad(why) => Read::Bad(why),
    })
}

/// What a scan of one area found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// The usable windows, oldest first, one per id, none that a merged
    /// window replaces.
    pub windows: Vec<Loaded>,
    /// Files to move to `corrupt/`, with the reason.
    pub bad: Vec<(PathBuf, String)>,
    /// Pending files whose window a merged window replaces (a merge was
    /// interrupted): to delete.
    pub replaced: Vec<String>,
}

impl Spool {
    /// Reads every window of `dest`'s `area`, changing nothing.
    pub(super) fn scan(&self, dest: Destination, area: Area) -> Result<Scan, SpoolError> {
        let dir = self.area_dir(dest, area);
        let (names, odd) = fsutil::list_names(&dir)?;
        let mut scan = Scan {
            bad: odd
                .into_iter()
                .map(|p| (p, "the file name is not UTF-8".to_owned()))
                .collect(),
            ..Scan::default()
        };
        let mut all = Vec::new();
        for name in names {
            if area == Area::Rejected && name.ends_with(ANSWER_SUFFIX) {
                continue;
            }
            let path = dir.join(&name);
            match read_window(&path, dest)? {
                Read::Gone => {}
                Read::Bad(why) => scan.bad.push((path, why)),
                Read::Found(WindowFile { window, replaces }) => {
                    let bytes = fs::symlink_metadata(&path).map_or(0, |m| m.len());
                    all.push(Loaded {
                        window,
                        replaces,
                        name,
                        bytes,
                    });
                }
            }
        }
        // Oldest first; of two files with one window, the canonical name.
        all.sort_by_cached_key(|l| (order_key(&l.window), l.name != l.window.file_name()));
        let replaced: HashSet<Uuid> = all
            .iter()
            .filter(|_| area == Area::Pending)
            .flat_map(|l| l.replaces.iter().copied())
            .collect();
        let mut seen = HashSet::new();
        for l in all {
            if replaced.contains(&l.window.id) {
                scan.replaced.push(l.name);
            } else if !seen.insert(l.window.id) {
                let why = format!("another file holds the same window id {}", l.window.id);
                scan.bad.push((dir.join(&l.name), why));
            } else {
                scan.windows.push(l);
            }
        }
        Ok(scan)
    }

    /// The usable windows of `dest`'s `area` ([`scan`](Self::scan)), with a
    /// warning for each file skipped.
    pub(super) fn windows(&self, dest: Destination, area: Area) -> Result<Vec<Loaded>, SpoolError> {
        let scan = self.scan(dest, area)?;
        for (path, reason) in &scan.bad {
            tracing::warn!(file = %path.display(), reason,
                "unreadable spool file skipped (the process holding the spool moves it to corrupt/ when it next opens it, e.g. at the reporter's restart, or on Spool::rescan)");
        }
        Ok(scan.windows)
    }
}
