//! Repairs: unreadable files moved to `corrupt/`, hand-renamed files given
//! their canonical names, interrupted merges finished. They happen only
//! when the spool is opened and on an explicit [`rescan`](Spool::rescan);
//! reads never repair.
//!
//! May import `super` (the spool's types and file helpers), `std`, `chrono`.

use super::fsutil::{self, remove_if_exists, sync_dir, write_atomic};
use super::scan::{Loaded, Scan};
use super::{Area, Destination, REASON_SUFFIX, Spool, SpoolError, State, answer_file_name};
use chrono::Utc;
use std::fs;
use std::path::Path;

impl Spool {
    /// Re-reads every window from disk and repairs what it finds (as
    /// [`open`](Self::open) does: unreadable files to `corrupt/`,
    /// hand-renamed files to their canonical names, interrupted merges
    /// finished, the bound enforced), then rebuilds the index. Reads never
    /// repair; call this after changing a held spool's files by hand.
    pub fn rescan(&self) -> Result<(), SpoolError> {
        let mut st = self.held()?;
        Destination::ALL
            .into_iter()
            .try_for_each(|dest| self.repair_dest(&mut st, dest))
    }

    /// Repairs both areas of `dest`, then enforces the bound on its
    /// pending windows (which rebuilds their index).
    pub(super) fn repair_dest(&self, st: &mut State, dest: Destination) -> Result<(), SpoolError> {
        self.repair(dest, Area::Rejected, self.scan(dest, Area::Rejected)?)?;
        let pending = self.repair(dest, Area::Pending, self.scan(dest, Area::Pending)?)?;
        self.enforce_bound(st, dest, pending)
    }

    /// Makes the disk match `scan` (of `dest`'s `area`) and returns its
    /// windows under their canonical names. Bad files go first, so a
    /// window's canonical name is free unless a second copy holds it.
    fn repair(&self, dest: Destination, area: Area, scan: Scan) -> Result<Vec<Loaded>, SpoolError> {
        let dir = self.area_dir(dest, area);
        let origin = format!("{dest}-{}", area.as_str());
        for (path, reason) in &scan.bad {
            self.quarantine(path, &origin, reason)?;
        }
        for name in &scan.replaced {
            remove_if_exists(&dir.join(name))?;
            tracing::info!(file = %name, "removed a window already included in a merged window (a merge was interrupted)");
        }
        if !scan.replaced.is_empty() {
            sync_dir(&dir)?;
        }
        let mut out = Vec::with_capacity(scan.windows.len());
        for mut l in scan.windows {
            let canonical = l.window.file_name();
            if l.name != canonical {
                let (from, to) = (dir.join(&l.name), dir.join(&canonical));
                if fs::symlink_metadata(&to).is_ok() {
                    self.quarantine(&from, &origin, &format!("a duplicate of {canonical}"))?;
                    continue;
                }
                fs::rename(&from, &to).map_err(SpoolError::on("renaming", &to))?;
                sync_dir(&dir)?;
                tracing::info!(from = %l.name, to = %canonical, "renamed a spool file to its canonical name");
                if area == Area::Rejected {
                    let answer = |n: &str| dir.join(answer_file_name(n));
                    let _ = fs::rename(answer(&l.name), answer(&canonical));
                }
                l.name = canonical;
            }
            out.push(l);
        }
        Ok(out)
    }

    /// Moves an unreadable file to `corrupt/` untouched, with its reason in
    /// a sibling `.reason.txt`, and warns.
    pub(super) fn quarantine(
        &self,
        path: &Path,
        origin: &str,
        reason: &str,
    ) -> Result<(), SpoolError> {
        let corrupt = self.corrupt_dir();
        fsutil::create_dir_private(&corrupt)?;
        let name = path
            .file_name()
            .map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned());
        let base = format!("{origin}-{name}");
        let taken = |n: &str| {
            fs::symlink_metadata(corrupt.join(n)).is_ok()
                || fs::symlink_metadata(corrupt.join(format!("{n}{REASON_SUFFIX}"))).is_ok()
        };
        let target_name = std::iter::once(base.clone())
            .chain((1..).map(|n| format!("{base}.{n}")))
            .find(|n| !taken(n))
            .expect("an endless sequence of names has a free one");
        let target = corrupt.join(&target_name);
        match fs::rename(path, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SpoolError::on("moving to corrupt/", path)(e)),
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
