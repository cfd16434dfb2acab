//! Moving windows between areas and spools: requeueing rejected windows
//! and adopting a dead process's slot.
//!
//! May import `super` (the spool's types and file helpers), `std`.

use super::fsutil::{remove_if_exists, sync_dir, write_atomic};
use super::scan::Loaded;
use super::window::WindowFile;
use super::{Area, Destination, Spool, SpoolError, answer_file_name};
use std::fs;

impl Spool {
    /// Moves every rejected window back to pending (same id, `attempts`
    /// reset to 0) and deletes its answer file. Returns how many moved.
    ///
    /// The id is kept: a rejected window was refused, not counted, so
    /// sending it again under its key is safe. A server that caches the
    /// refusal under that key rejects it again; [`export`](Self::export) is
    /// then the way out.
    pub fn requeue_rejected(&self) -> Result<usize, SpoolError> {
        let mut st = self.held()?;
        let mut moved = 0;
        for dest in Destination::ALL {
            let rejected = self.area_dir(dest, Area::Rejected);
            let pending = self.area_dir(dest, Area::Pending);
            for l in self.windows(dest, Area::Rejected)? {
                if self.index(&mut st, dest)?.get(l.window.id).is_none() {
                    let (mut window, replaces) = (l.window, l.replaces);
                    window.attempts = 0;
                    let name = window.file_name();
                    write_atomic(&pending, &name, &WindowFile { window, replaces }.to_bytes())?;
                    moved += 1;
                }
                remove_if_exists(&rejected.join(&l.name))?;
                remove_if_exists(&rejected.join(answer_file_name(&l.name)))?;
                sync_dir(&rejected)?;
            }
            let entries = self.windows(dest, Area::Pending)?;
            self.enforce_bound(&mut st, dest, entries)?;
        }
        if moved > 0 {
            tracing::info!(moved, "requeued rejected windows");
        }
        Ok(moved)
    }

    /// Moves every pending and rejected window of `other` (a spool whose
    /// lock this process holds: a dead process's slot) into this spool, one
    /// `rename` per file, so at every instant each window is in exactly one
    /// of the two. `other` was opened (so repaired: no window of it is
    /// replaced by a merged one) and its checkpoint recovered by the caller.
    ///
    /// `other`'s oldest pending window of each destination may have been in
    /// flight when its process died: it is marked in doubt first, so it is
    /// only ever sent as itself, under its own id (never merged). Returns
    /// how many windows moved.
    pub(crate) fn take_over(&self, other: &Spool) -> Result<usize, SpoolError> {
        let mut st = self.held()?;
        let _other = other.held()?;
        let mut moved = 0;
        for dest in Destination::ALL {
            // Adopted windows may go ahead of this spool's oldest, which
            // is in doubt only in memory so far: make that durable.
            let mut mine = self.windows(dest, Area::Pending)?;
            let head = self.index(&mut st, dest)?.iter().next();
            if head.is_some_and(|h| h.in_doubt) {
                self.mark_in_doubt(&mut mine)?;
            }
            for area in Area::ALL {
                let mut entries = other.windows(dest, area)?;
                if area == Area::Pending {
                    other.mark_in_doubt(&mut entries)?;
                }
                moved += self.adopt(other, dest, area, &entries)?;
            }
            let entries = self.windows(dest, Area::Pending)?;
            self.enforce_bound(&mut st, dest, entries)?;
        }
        Ok(moved)
    }

    /// Renames the files of `entries` (of `other`'s `area` of `dest`) into
    /// the same area here, with their answers; returns how many moved.
    fn adopt(
        &self,
        other: &Spool,
        dest: Destination,
        area: Area,
        entries: &[Loaded],
    ) -> Result<usize, SpoolError> {
        let (from, to) = (other.area_dir(dest, area), self.area_dir(dest, area));
        let mut moved = 0;
        for l in entries {
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
        let (window, replaces) = (head.window.clone(), head.replaces.clone());
        let bytes = WindowFile { window, replaces }.to_bytes();
        write_atomic(&dir, &head.name, &bytes)?;
        head.bytes = bytes.len() as u64;
        Ok(())
    }
}
