//! Reads of the whole spool: pending windows, listing, `show`, export and
//! counts. None of them changes a file (see [`scan`](super::scan)).
//!
//! May import `super` (the spool's types and file helpers), `std`,
//! `chrono`, `uuid`.

use super::fsutil::{self, Read, read_regular, write_atomic};
use super::index::order_key;
use super::window::{self, id_from_file_name};
use super::{
    ANSWER_SUFFIX, Area, CORRUPT_DIR, CorruptSummary, Destination, EXPORT_FORMAT, MAX_ANSWER_BYTES,
    MAX_FILE_BYTES, REASON_SUFFIX, RejectedSummary, Spool, SpoolError, SpoolExport, SpoolListing,
    SpooledWindow, WindowSummary, answer_file_name, slots,
};
use chrono::Utc;
use std::fs;
use std::path::{Component, Path, PathBuf};
use uuid::Uuid;

impl Spool {
    /// The pending windows of `dest`, oldest first (by
    /// `report.from_timestamp`, then `closed_at`, then `id`). Unreadable
    /// files are skipped with a warning.
    pub fn pending(&self, dest: Destination) -> Result<Vec<SpooledWindow>, SpoolError> {
        let mut out: Vec<SpooledWindow> = {
            let _st = self.state.lock();
            let windows = self.windows(dest, Area::Pending)?;
            windows.into_iter().map(|l| l.window).collect()
        };
        for (_, slot) in &self.slots {
            out.extend(slot.pending(dest)?);
        }
        out.sort_by_key(order_key);
        Ok(out)
    }

    /// Everything in the spool: pending windows per destination, rejected
    /// windows, corrupt files (with the reason each was moved), and whether
    /// a checkpoint is present. Unreadable files are skipped with a warning.
    pub fn list(&self) -> Result<SpoolListing, SpoolError> {
        let st = self.state.lock();
        let mut listing = SpoolListing {
            dir: self.dir.clone(),
            pending: Default::default(),
            rejected: Vec::new(),
            corrupt: Vec::new(),
            checkpoint: fs::symlink_metadata(Spool::checkpoint_file(&self.dir)).is_ok(),
        };
        for dest in Destination::ALL {
            let windows = self.windows(dest, Area::Pending)?.into_iter();
            let file = |name| format!("{dest}/pending/{name}");
            let summaries = windows.map(|l| WindowSummary::new(file(l.name), &l.window, l.bytes));
            listing.pending.insert(dest, summaries.collect());
            listing.rejected.extend(self.rejected_summaries(dest)?);
        }
        let corrupt = self.corrupt_dir();
        let (names, _) = fsutil::list_names(&corrupt)?;
        for name in names.into_iter().filter(|n| !n.ends_with(REASON_SUFFIX)) {
            let reason = read_text(&corrupt.join(format!("{name}{REASON_SUFFIX}")), 65536)?;
            listing.corrupt.push(CorruptSummary {
                bytes: fs::symlink_metadata(corrupt.join(&name)).map_or(0, |m| m.len()),
                reason: reason.map(|r| r.trim().to_owned()),
                file: format!("{CORRUPT_DIR}/{name}"),
            });
        }
        drop(st);
        for (n, slot) in &self.slots {
            listing.absorb(slot.list()?, &format!("{}{n}/", slots::SLOT_PREFIX));
        }
        Ok(listing)
    }

    /// The rejected windows of `dest`, with the status of their answers.
    fn rejected_summaries(&self, dest: Destination) -> Result<Vec<RejectedSummary>, SpoolError> {
        let dir = self.area_dir(dest, Area::Rejected);
        let mut out = Vec::new();
        for l in self.windows(dest, Area::Rejected)? {
            let answer = answer_file_name(&l.name);
            let text = read_text(&dir.join(&answer), 2 * MAX_ANSWER_BYTES as u64)?;
            let first = text.as_deref().and_then(|t| t.lines().next());
            let file = format!("{dest}/rejected/{}", l.name);
            out.push(RejectedSummary {
                window: WindowSummary::new(file, &l.window, l.bytes),
                status: first.and_then(|s| s.strip_prefix("status: ")?.trim().parse().ok()),
                answer_file: text.map(|_| format!("{dest}/rejected/{answer}")),
            });
        }
        Ok(out)
    }

    /// The content of one spool file, found by window id (pending, then
    /// rejected, then corrupt) or by file name or relative path (as in
    /// [`list`](Self::list)). A symbolic link is described, never followed.
    pub fn show(&self, id_or_file: &str) -> Result<String, SpoolError> {
        let query = id_or_file.trim();
        for spool in std::iter::once(self).chain(self.slots.iter().map(|(_, s)| s)) {
            if let Some(text) = spool.show_here(query)? {
                return Ok(text);
            }
        }
        Err(SpoolError::NoSuchEntry {
            query: query.to_owned(),
            dir: self.dir.clone(),
        })
    }

    /// [`show`](Self::show) in this directory alone (not its slots).
    fn show_here(&self, query: &str) -> Result<Option<String>, SpoolError> {
        let _st = self.state.lock();
        let candidates = match Uuid::parse_str(query) {
            Ok(id) => self.files_of(id)?,
            Err(_) => self.files_named(query),
        };
        for path in candidates {
            if let Some(text) = read_regular_text(&path)? {
                return Ok(Some(text));
            }
        }
        Ok(None)
    }

    /// The files holding window `id`: pending, rejected (by canonical name,
    /// else by content), then corrupt.
    fn files_of(&self, id: Uuid) -> Result<Vec<PathBuf>, SpoolError> {
        let mut out = Vec::new();
        for area in Area::ALL {
            for dest in Destination::ALL {
                let dir = self.area_dir(dest, area);
                let (names, _) = fsutil::list_names(&dir)?;
                let names = names.into_iter().filter(|n| !n.ends_with(ANSWER_SUFFIX));
                let (hits, odd): (Vec<String>, Vec<String>) =
                    names.partition(|n| id_from_file_name(n) == Some(id));
                let hand_named = || odd.iter().any(|n| id_from_file_name(n).is_none());
                let hits = match hits.is_empty() && hand_named() {
                    true => self
                        .windows(dest, area)?
                        .into_iter()
                        .filter(|l| l.window.id == id)
                        .map(|l| l.name)
                        .collect(),
                    false => hits,
                };
                out.extend(hits.into_iter().map(|n| dir.join(n)));
            }
        }
        let needle = id.hyphenated().to_string();
        let (names, _) = fsutil::list_names(&self.corrupt_dir())?;
        let corrupt = names.iter().filter(|n| n.contains(&needle));
        out.extend(corrupt.map(|n| self.corrupt_dir().join(n)));
        Ok(out)
    }

    /// Where a file name or relative path may be: a bare name in the spool
    /// directory or any area or `corrupt/`; a path only through real
    /// directories of the spool (never a link, never `..`).
    fn files_named(&self, query: &str) -> Vec<PathBuf> {
        let rel = Path::new(query);
        let parts: Vec<Component> = rel.components().collect();
        if parts.is_empty() || !parts.iter().all(|c| matches!(c, Component::Normal(_))) {
            return Vec::new();
        }
        if parts.len() > 1 {
            let mut p = self.dir.clone();
            for c in &parts[..parts.len() - 1] {
                p.push(c);
                if !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    return Vec::new();
                }
            }
            return vec![self.dir.join(rel)];
        }
        self.dirs().into_iter().map(|d| d.join(rel)).collect()
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
            return Err(SpoolError::on("exporting to", out)(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "give the path of a file to write, not a directory",
            )));
        };
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        write_atomic(parent, &name.to_string_lossy(), &window::to_pretty(&bundle))?;
        tracing::info!(count, out = %out.display(), "exported pending windows");
        Ok(count)
    }

    /// Pending windows of `dest` and their total size on disk: from the
    /// index on a held spool, else from directory metadata only (no file
    /// is parsed).
    pub fn stats(&self, dest: Destination) -> Result<(usize, u64), SpoolError> {
        let (mut count, mut bytes) = {
            let mut st = self.state.lock();
            if self.is_read_only() {
                self.stats_from_dir(dest)?
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

    fn stats_from_dir(&self, dest: Destination) -> Result<(usize, u64), SpoolError> {
        let dir = self.area_dir(dest, Area::Pending);
        let (names, _) = fsutil::list_names(&dir)?;
        let sizes = names
            .iter()
            .filter(|n| n.ends_with(".json"))
            .filter_map(|n| fs::symlink_metadata(dir.join(n)).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len());
        Ok(sizes.fold((0, 0), |(c, b), len| (c + 1, b + len)))
    }
}

/// The text of the regular file at `path` if it holds at most `max` bytes.
fn read_text(path: &Path, max: u64) -> Result<Option<String>, SpoolError> {
    Ok(match read_regular(path, max)? {
        Read::Found(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    })
}

/// What `show` prints for the file at `path`: its text, or a line saying
/// why not (a link is described, never followed); `None` if there is no
/// such file.
fn read_regular_text(path: &Path) -> Result<Option<String>, SpoolError> {
    Ok(match read_regular(path, MAX_FILE_BYTES)? {
        Read::Gone => None,
        Read::Found(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Read::Bad(why) => {
            let target = fs::read_link(path)
                .map(|t| format!(" pointing to {}", t.display()))
                .unwrap_or_default();
            Some(format!("({} not shown: {why}{target})\n", path.display()))
        }
    })
}
