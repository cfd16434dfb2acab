//! Keeping a destination within its [`SpoolLimits`](super::SpoolLimits):
//! merging the oldest adjacent windows, crash-safe, never dropping a count.
//!
//! May import `super` (the spool's types and file helpers), `std`, `uuid`.

use super::fsutil::{remove_if_exists, sync_dir, write_atomic};
use super::scan::Loaded;
use super::window::WindowFile;
use super::{Area, Destination, Spool, SpoolError, SpooledWindow, State, merge};
use uuid::Uuid;

impl Spool {
    /// Merges the oldest adjacent mergeable pairs of `entries` (a scan of
    /// `dest`'s pending windows; never the oldest window) until the
    /// destination is within its limits or nothing more can be merged,
    /// then makes the result the index.
    pub(super) fn enforce_bound(
        &self,
        st: &mut State,
        dest: Destination,
        mut entries: Vec<Loaded>,
    ) -> Result<(), SpoolError> {
        // Until the index is installed below, it does not match the disk.
        st.stale[dest.index()] = true;
        let mut total: u64 = entries.iter().map(|l| l.bytes).sum();
        let mut merges = 0usize;
        while self.limits.exceeded_by(entries.len(), total) {
            let found = (1..entries.len().saturating_sub(1)).find_map(|i| {
                merge(&entries[i].window, &entries[i + 1].window, Uuid::new_v4()).map(|m| (i, m))
            });
            let Some((i, window)) = found else {
                self.warn_over_bound(st, dest, entries.len(), total);
                break;
            };
            let (a, b) = (&entries[i], &entries[i + 1]);
            let originals = [(a.window.id, a.name.clone()), (b.window.id, b.name.clone())];
            let bytes = self.write_merged(&window, &originals)?;
            total = total - a.bytes - b.bytes + bytes;
            let merged = Loaded {
                replaces: vec![a.window.id, b.window.id],
                name: window.file_name(),
                window,
                bytes,
            };
            entries.splice(i..=i + 1, [merged]);
            merges += 1;
        }
        if merges > 0 {
            tracing::info!(destination = %dest, merges, windows = entries.len(),
                "the spool reached its bound: merged the oldest windows (no count dropped)");
        }
        if !self.limits.exceeded_by(entries.len(), total) {
            st.over_bound_warned[dest.index()] = false;
        }
        st.install_index(dest, &entries);
        Ok(())
    }

    /// Writes `merged`, recording the ids of the `originals` it replaces,
    /// then deletes their files (named in `originals`). Merged file first:
    /// from the moment it is durable every scan skips the originals (and a
    /// repair deletes them), so a crash in between never counts twice.
    /// Returns its size; `Err` only if it could not be written (then
    /// nothing changed). An original left behind is only logged.
    pub(super) fn write_merged(
        &self,
        merged: &SpooledWindow,
        originals: &[(Uuid, String)],
    ) -> Result<u64, SpoolError> {
        let dest = merged.destination;
        let dir = self.area_dir(dest, Area::Pending);
        let replaces = originals.iter().map(|(id, _)| *id).collect();
        let window = merged.clone();
        let bytes = WindowFile { window, replaces }.to_bytes();
        write_atomic(&dir, &merged.file_name(), &bytes)?;
        let removed = originals
            .iter()
            .try_for_each(|(_, name)| remove_if_exists(&dir.join(name)))
            .and_then(|()| sync_dir(&dir));
        if let Err(e) = removed {
            tracing::warn!(destination = %dest, error = %e,
                "merged windows but could not delete the originals; every read skips them and the next repair deletes them");
        }
        tracing::debug!(destination = %dest, windows = originals.len(), into = %merged.id, "merged spooled windows");
        Ok(bytes.len() as u64)
    }

    /// Warns, once until the destination is back within its bound, that
    /// nothing more can be merged.
    fn warn_over_bound(&self, st: &mut State, dest: Destination, windows: usize, bytes: u64) {
        if std::mem::replace(&mut st.over_bound_warned[dest.index()], true) {
            return;
        }
        tracing::warn!(
            destination = %dest,
            windows,
            bytes,
            max_windows = self.limits.max_windows,
            max_bytes = self.limits.max_bytes,
            dir = %self.area_dir(dest, Area::Pending).display(),
            "the spool is over its bound and no more windows can be merged \
             (in-doubt windows, differing tags, or only the oldest left): \
             keeping everything rather than dropping counts"
        );
    }
}
