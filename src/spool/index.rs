//! The in-memory index of one destination's pending windows: what ordering,
//! sending, merging and the bound need, without listing the directory or
//! reading a file.
//!
//! May import `super` (the spool's window types), `chrono`, `uuid`, `std`.
//!
//! The spool keeps it in step: it is built from a scan of the pending
//! directory (at open and on an explicit rescan, after their repairs, and
//! when a read finds it stale) and updated by every write, removal and
//! merge made under the spool's lock. Nothing else writes a held spool: its
//! `LOCK` keeps other processes out, and hand edits are picked up by a
//! rescan.

use super::SpooledWindow;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Oldest first: start, then close, then id.
pub(crate) type OrderKey = (DateTime<Utc>, DateTime<Utc>, Uuid);

/// The sending order of a window.
pub(crate) fn order_key(w: &SpooledWindow) -> OrderKey {
    (w.report.from_timestamp, w.closed_at, w.id)
}

/// One pending window as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Indexed {
    /// Its file name in the pending directory.
    pub name: String,
    /// Its id.
    pub id: Uuid,
    /// Its size on disk.
    pub bytes: u64,
    /// An attempt may have been accepted: never merged.
    pub in_doubt: bool,
    /// Start and end of its span.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The pending windows of one destination, oldest first. Every operation
/// is O(log n) (O(1) for the totals).
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_order: BTreeMap<OrderKey, Indexed>,
    by_id: HashMap<Uuid, OrderKey>,
    bytes: u64,
}

impl Index {
    /// Adds (or replaces, by id) window `w`, stored as `name` in `bytes`
    /// bytes. In doubt stays in doubt, as on disk.
    pub fn insert(&mut self, w: &SpooledWindow, name: String, bytes: u64) {
        let was_in_doubt = self.remove(w.id).is_some_and(|old| old.in_doubt);
        let e = Indexed {
            name,
            id: w.id,
            bytes,
            in_doubt: w.in_doubt || was_in_doubt,
            from: w.report.from_timestamp,
            to: w.report.to_timestamp,
        };
        let key = order_key(w);
        self.bytes += e.bytes;
        self.by_id.insert(e.id, key);
        self.by_order.insert(key, e);
    }

    /// Removes window `id`, returning its entry.
    pub fn remove(&mut self, id: Uuid) -> Option<Indexed> {
        let key = self.by_id.remove(&id)?;
        let e = self.by_order.remove(&key)?;
        self.bytes -= e.bytes;
        Some(e)
    }

    /// The entry of window `id`.
    pub fn get(&self, id: Uuid) -> Option<&Indexed> {
        self.by_order.get(self.by_id.get(&id)?)
    }

    /// Marks the oldest window in doubt (in memory): the process that held
    /// the spool before may have been sending it when it stopped.
    pub fn suspect_head(&mut self) {
        if let Some(head) = self.by_order.values_mut().next() {
            head.in_doubt = true;
        }
    }

    /// Carries `old`'s in-doubt marks (some only in memory) over to this
    /// index, rebuilt from disk.
    pub fn carry_doubt(&mut self, old: Option<&Index>) {
        let doubted = old.into_iter().flat_map(Index::iter).filter(|e| e.in_doubt);
        for id in doubted.map(|e| e.id) {
            if let Some(e) = self.by_id.get(&id).and_then(|k| self.by_order.get_mut(k)) {
                e.in_doubt = true;
            }
        }
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Indexed> {
        self.by_order.values()
    }

    /// Windows held.
    pub fn len(&self) -> usize {
        self.by_order.len()
    }

    /// Bytes on disk, over all windows held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Destination;
    use crate::wire::ReportBody;
    use chrono::TimeZone;

    fn window(from: i64) -> SpooledWindow {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        SpooledWindow::new(
            Uuid::new_v4(),
            Destination::Beacon,
            t(from + 300),
            Vec::new(),
            ReportBody {
                from_timestamp: t(from),
                to_timestamp: t(from + 300),
                tags: Default::default(),
                measures: Default::default(),
                logs: Vec::new(),
            },
        )
    }

    #[test]
    fn oldest_first_totals_and_replacement_by_id() {
        let mut ix = Index::default();
        let (a, b) = (window(600), window(0));
        ix.insert(&a, "a".into(), 10);
        ix.insert(&b, "b".into(), 5);
        let names: Vec<&str> = ix.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!((ix.len(), ix.bytes()), (2, 15));
        // Same id again: replaced, not added.
        ix.insert(&a, "a2".into(), 12);
        assert_eq!((ix.len(), ix.bytes()), (2, 17));
        assert_eq!(ix.get(a.id).unwrap().name, "a2");
        assert_eq!(ix.remove(b.id).unwrap().name, "b");
        assert_eq!(ix.remove(b.id), None);
        assert_eq!((ix.len(), ix.bytes()), (1, 12));
    }

    #[test]
    fn in_doubt_is_kept_by_a_replacement_set_on_the_head_and_carried_over() {
        let (a, b) = (window(0), window(300));
        let mut ix = Index::default();
        ix.insert(&a, "a".into(), 1);
        ix.insert(&b, "b".into(), 1);
        ix.suspect_head();
        let doubt = |ix: &Index| ix.iter().map(|e| e.in_doubt).collect::<Vec<_>>();
        assert_eq!(doubt(&ix), [true, false], "only the oldest");
        // Rewritten (e.g. one more attempt) without the flag: it stays.
        ix.insert(&a, "a".into(), 1);
        assert_eq!(doubt(&ix), [true, false]);
        // Rebuilt from disk, where the mark was never written.
        let mut rebuilt = Index::default();
        rebuilt.insert(&a, "a".into(), 1);
        rebuilt.insert(&b, "b".into(), 1);
        rebuilt.carry_doubt(Some(&ix));
        assert_eq!(doubt(&rebuilt), [true, false]);
    }
}
