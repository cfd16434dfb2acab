//! The connection limit. File descriptors are finite: with no limit, a
//! client that opens idle connections until the process runs out locks
//! every other client out (accept fails with `EMFILE`) until the header
//! timeout frees them. So the sink serves at most `limit` connections; at
//! the limit a new one closes the oldest *idle* one (no request in
//! progress: between keep-alive requests, or still sending its head, as a
//! slow client does), and only if every connection is busy is the new one
//! closed instead. A client that holds idle connections can so delay, but
//! never shut out, one that sends requests.
//!
//! The default limit follows the open-file limit read at start
//! ([`limit`]): below it by [`RESERVED_FDS`], for the database, its WAL,
//! the JSONL export, the listener and the runtime.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::SinkError;

/// The default connection limit when the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Descriptors kept free of connections, below the open-file limit.
pub const RESERVED_FDS: usize = 64;

/// The limit to serve with: `configured`, or the default, checked against
/// the process's soft open-file limit (`RLIMIT_NOFILE`).
pub(crate) fn limit(configured: Option<usize>) -> Result<usize, SinkError> {
    let room = open_file_limit().map_or(usize::MAX, |n| n.saturating_sub(RESERVED_FDS));
    match configured {
        None if room == 0 => Err(too_few(room, None)),
        None => Ok(DEFAULT_MAX_CONNECTIONS.min(room)),
        Some(0) => Err(SinkError::InvalidConfig(
            "max_connections is 0, so no connection would be served; use a positive count".into(),
        )),
        Some(n) if n > room => Err(too_few(room, Some(n))),
        Some(n) => Ok(n),
    }
}

/// The open-file limit leaves room for only `room` connections (fewer than
/// `asked`, if given).
fn too_few(room: usize, asked: Option<usize>) -> SinkError {
    let asked = asked.map_or_else(String::new, |n| format!("max_connections is {n}, but "));
    SinkError::InvalidConfig(format!(
        "{asked}the open-file limit leaves room for {room} connections ({RESERVED_FDS} \
         descriptors are kept for the database and the listener); raise it (`ulimit -n`) or \
         lower max_connections"
    ))
}

/// The soft `RLIMIT_NOFILE`, if it is finite and can be read.
fn open_file_limit() -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call to fill.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY)
        .then(|| usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX))
}

/// One live connection, as the limit sees it.
#[derive(Default)]
pub(crate) struct Conn {
    /// A request is being served (set by the request handler).
    busy: AtomicBool,
    /// Told to close: it was the oldest idle connection at the limit.
    pub(crate) shed: Notify,
}

impl Conn {
    /// Marks a request as started or finished.
    pub(crate) fn set_busy(&self, busy: bool) {
        // Relaxed: a stale read only makes the limit shed a connection
        // whose request just started (which then finishes: see `shed`'s
        // handling in the server) or skip one that just went idle.
        self.busy.store(busy, Ordering::Relaxed);
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }
}

/// The live connections, oldest first, and the limit.
pub(crate) struct Registry {
    limit: usize,
    live: Mutex<(u64, BTreeMap<u64, Arc<Conn>>)>,
}

/// A connection's place in the [`Registry`], given up when dropped.
pub(crate) struct Admitted {
    registry: Arc<Registry>,
    id: u64,
    pub(crate) conn: Arc<Conn>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.live.lock().1.remove(&self.id);
    }
}

impl Registry {
    pub(crate) fn new(limit: usize) -> Arc<Registry> {
        Arc::new(Registry {
            limit,
            live: Mutex::new((0, BTreeMap::new())),
        })
    }

    /// Admits a new connection: at the limit, by shedding the oldest idle
    /// one (it leaves the registry at once, so the count stays within the
    /// limit while it closes). `None` if every connection is busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut guard = self.live.lock();
        let (next, live) = &mut *guard;
        if live.len() >= self.limit {
            let oldest_idle = live.iter().find(|(_, c)| !c.is_busy()).map(|(id, _)| *id)?;
            if let Some(shed) = live.remove(&oldest_idle) {
                shed.shed.notify_one();
            }
        }
        let id = *next;
        *next += 1;
        let conn = Arc::new(Conn::default());
        live.insert(id, conn.clone());
        Some(Admitted {
            registry: self.clone(),
            id,
            conn,
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

/// A warning logged at most once per [`Throttle::EVERY`], saying how many
/// were held back: a flood of one failure must not flood the log too.
#[derive(Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(10);

    /// Calls `log` with the number held back since the last call, unless
    /// one ran less than [`Self::EVERY`] ago.
    pub(crate) fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            self.held += 1;
            return;
        }
        log(std::mem::take(&mut self.held));
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_oldest_idle_connection_goes_and_busy_ones_stay() {
        let registry = Registry::new(3);
        let a = registry.admit().unwrap();
        let b = registry.admit().unwrap();
        let c = registry.admit().unwrap();
        a.conn.set_busy(true);
        // b is the oldest idle one.
        let d = registry.admit().unwrap();
        assert_eq!(registry.live.lock().1.len(), 3);
        assert!(!registry.live.lock().1.contains_key(&b.id));
        c.conn.set_busy(true);
        d.conn.set_busy(true);
        assert!(
            registry.admit().is_none(),
            "all busy: the new one is refused"
        );
        drop(a);
        assert!(
            registry.admit().is_some(),
            "a closed connection frees its place"
        );
        drop(b);
    }

    #[test]
    fn the_throttle_counts_what_it_held_back() {
        let mut t = Throttle::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            t.warn(|held| logged.push(held));
        }
        assert_eq!(logged, [0]);
        t.last = Some(Instant::now() - Throttle::EVERY);
        t.warn(|held| logged.push(held));
        assert_eq!(logged, [0, 4]);
    }

    #[test]
    fn the_limit_stays_below_the_open_file_limit() {
        let room = open_file_limit().map_or(usize::MAX, |n| n - RESERVED_FDS);
        assert_eq!(limit(None).unwrap(), DEFAULT_MAX_CONNECTIONS.min(room));
        assert_eq!(limit(Some(10)).unwrap(), 10);
        assert!(limit(Some(0)).is_err());
        if room < usize::MAX {
            let e = limit(Some(room + 1)).unwrap_err().to_string();
            assert!(e.contains("ulimit -n"), "{e}");
        }
    }
}
