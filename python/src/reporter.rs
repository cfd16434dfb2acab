//! `Reporter`: the Rust reporter on a thread and tokio runtime of its own,
//! so Python needs no asyncio for it and never waits for it while
//! recording.
//!
//! # States
//!
//! ```text
//! Idle ──start──▶ Starting ──▶ Running ──shutdown──▶ Stopping ──▶ Stopped ──start──▶ …
//!   ▲                              │ fork (in the child)
//!   └── start failed              ▼
//!                               Forked ──first use──▶ Starting
//! ```
//!
//! The state lock is held only for short, Python-free, non-blocking steps by
//! a thread holding the GIL (see `fork.rs` for why that makes it fork-safe).
//! Starting and stopping, which block, run with the lock released and the
//! GIL detached, the state saying `Starting`/`Stopping` meanwhile; other
//! callers poll until it settles.
//!
//! May import: `beacon_meter` (reporter, config, wire), pyo3, tokio,
//! [`crate::meter`], [`crate::settings`], [`crate::fork`].

use crate::fork;
use crate::meter::{Cell, Meter};
use crate::settings::{self, Settings};
use beacon_meter::Meter as Core;
use beacon_meter::reporter::{Reporter as CoreReporter, ReporterOptions, ReporterStats};
use parking_lot::Mutex;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};
use std::sync::Arc;
use std::time::Duration;

create_exception!(
    beacon_meter,
    ReporterError,
    PyRuntimeError,
    "The reporter could not start: its spool is locked by another process or \
     not writable, or its HTTP client could not be built. The message names \
     the directory or setting and the fix."
);

/// How often a caller re-checks a reporter that another thread is starting
/// or stopping.
const POLL: Duration = Duration::from_millis(5);

/// A reporter running in this process.
struct Running {
    /// The runtime and the reporter on it; `None` only once
    /// [`Running::stop`] or `drop` has taken them.
    live: Option<(tokio::runtime::Runtime, CoreReporter)>,
    pid: u32,
}

impl Running {
    fn reporter(&self) -> &CoreReporter {
        &self.live.as_ref().expect("taken only when stopping").1
    }

    /// Shuts the reporter down: the final window spooled, then delivered
    /// until `timeout`. Blocks; call it with the GIL detached (gauges and
    /// tags called during the final close take the GIL).
    fn stop(mut self, timeout: Duration) -> ReporterStats {
        let (rt, reporter) = self.live.take().expect("taken only when stopping");
        stop(rt, reporter, timeout)
    }
}

/// Shuts `reporter` down and then its runtime.
fn stop(rt: tokio::runtime::Runtime, reporter: CoreReporter, timeout: Duration) -> ReporterStats {
    let stats = rt.block_on(reporter.shutdown(timeout));
    rt.shutdown_timeout(Duration::from_secs(1));
    stats
}

impl Drop for Running {
    /// A reporter dropped while it runs (its Python object collected
    /// without `shutdown`) shuts down on a thread of its own. Dropping the
    /// runtime here would block until its worker ends, and the dropping
    /// thread usually holds the GIL, which that worker may be waiting for
    /// in a gauge or tag callback: a deadlock.
    fn drop(&mut self) {
        let Some(live) = self.live.take() else { return };
        if self.pid != std::process::id() {
            // A parent's runtime in a forked child: its threads are gone,
            // and waiting for them would never end.
            std::mem::forget(live);
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("beacon-meter-drop".into())
            .spawn(move || drop(stop(live.0, live.1, DROP_SHUTDOWN)));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a thread to shut down a dropped reporter; its open window stays in the meter");
        }
    }
}

/// How long a reporter dropped without `shutdown` keeps delivering.
const DROP_SHUTDOWN: Duration = Duration::from_secs(10);

enum State {
    Idle,
    Starting,
    Running(Box<Running>),
    Stopping,
    Stopped(Box<ReporterStats>),
    Forked,
}

/// One reporter's state, shared with the fork registry.
pub(crate) struct Shared {
    cell: Arc<Cell>,
    settings: Settings,
    state: Mutex<State>,
    shutdown_timeout: Duration,
}

/// What `begin` found.
enum Step<T> {
    Done(T),
    Wait,
    Go,
}

impl Shared {
    /// Runs `decide` on the state under the lock; while another thread is
    /// starting or stopping (`Step::Wait`), polls with the GIL detached.
    fn settle<T>(
        &self,
        py: Python<'_>,
        mut decide: impl FnMut(&mut State) -> Step<T>,
    ) -> Option<T> {
        loop {
            // The guard must be gone before a `Wait` detaches and sleeps:
            // a guard in the `match` scrutinee would live through the arms.
            let step = decide(&mut self.state.lock());
            match step {
                Step::Done(t) => return Some(t),
                Step::Go => return None,
                Step::Wait => py.detach(|| std::thread::sleep(POLL)),
            }
        }
    }

    /// Starts the reporter unless it runs in this process already. With
    /// `only_forked`, only a reporter waiting for its first use after a
    /// fork is started (not one that was shut down meanwhile).
    pub(crate) fn start(&self, py: Python<'_>, only_forked: bool) -> PyResult<()> {
        let pid = std::process::id();
        let mut before = State::Idle;
        let done = self.settle(py, |st| match st {
            State::Running(r) if r.pid == pid => Step::Done(()),
            State::Starting | State::Stopping => Step::Wait,
            State::Idle | State::Stopped(_) if only_forked => Step::Done(()),
            other => {
                // A `Running` of another pid: forked by a path that did not
                // run the at-fork hook. Forget it (see `forget_after_fork`).
                let prev = std::mem::replace(other, State::Starting);
                before = match prev {
                    State::Running(r) => {
                        std::mem::forget(r);
                        State::Forked
                    }
                    p => p,
                };
                Step::Go
            }
        });
        if done.is_some() {
            return Ok(());
        }
        let core = self.cell.core(py).clone();
        let options =
            ReporterOptions::new(self.settings.config.clone(), self.settings.tags.clone());
        let started = py.detach(move || spawn(core, options));
        let mut st = self.state.lock();
        match started {
            Ok(r) => {
                *st = State::Running(Box::new(r));
                Ok(())
            }
            Err(msg) => {
                *st = before;
                Err(ReporterError::new_err(msg))
            }
        }
    }

    /// The stats, starting the reporter first if this is its first use in a
    /// forked child.
    fn stats(&self, py: Python<'_>) -> PyResult<Option<ReporterStats>> {
        self.start_if_forked(py)?;
        Ok(self
            .settle(py, |st| match st {
                State::Running(r) => Step::Done(Some(r.reporter().stats())),
                State::Stopped(s) => Step::Done(Some((**s).clone())),
                State::Starting | State::Stopping => Step::Wait,
                State::Idle | State::Forked => Step::Done(None),
            })
            .flatten())
    }

    /// Starts a reporter forked from the parent that has not been used in
    /// this process yet: its first use.
    fn start_if_forked(&self, py: Python<'_>) -> PyResult<()> {
        if matches!(*self.state.lock(), State::Forked) {
            self.start(py, true)?;
        }
        Ok(())
    }

    /// Shuts the reporter down (final window spooled, then delivered until
    /// `timeout`). `None` if it never ran in this process. A forked
    /// reporter not yet started (its background start may still be on its
    /// way) is started first, so what the child recorded is delivered.
    fn shutdown(&self, py: Python<'_>, timeout: Duration) -> PyResult<Option<ReporterStats>> {
        self.start_if_forked(py)?;
        let pid = std::process::id();
        let mut running = None;
        let done = self.settle(py, |st| match st {
            State::Running(r) if r.pid == pid => {
                let State::Running(r) = std::mem::replace(st, State::Stopping) else {
                    unreachable!("matched Running above")
                };
                running = Some(r);
                Step::Go
            }
            State::Stopped(s) => Step::Done(Some((**s).clone())),
            State::Starting | State::Stopping => Step::Wait,
            _ => Step::Done(None),
        });
        if let Some(done) = done {
            return Ok(done);
        }
        let r = running.expect("taken above");
        let stats = py.detach(move || (*r).stop(timeout));
        *self.state.lock() = State::Stopped(Box::new(stats.clone()));
        Ok(Some(stats))
    }

    fn describe(&self) -> &'static str {
        match *self.state.lock() {
            State::Idle => "idle",
            State::Starting => "starting",
            State::Running(_) => "running",
            State::Stopping => "stopping",
            State::Stopped(_) => "stopped",
            State::Forked => "forked (starts on first use)",
        }
    }
}

/// In a forked child: closes the file descriptors it inherited for files
/// under `dir`, the parent reporter's spool slot (its `LOCK` above all).
///
/// An OS file lock belongs to the open file, which parent and child share
/// after a fork. With the child's copy open, the slot would stay locked
/// until the child exits, even after the parent has shut down or died, so
/// a restarted parent could not claim its slot back (and what the parent
/// left there would wait for the child's exit to be adopted). Closing the
/// child's copy, not unlocking it, leaves the parent's lock as it is.
///
/// Each such descriptor belongs to a `File` of the parent's reporter, which
/// the child leaks and never uses again, so none is closed twice. Linux
/// only (`/proc/self/fd`); elsewhere the slot is freed when the child
/// exits.
fn close_inherited(dir: &std::path::Path) {
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    let (Ok(dir), Ok(entries)) = (dir.canonicalize(), std::fs::read_dir("/proc/self/fd")) else {
        return;
    };
    let inherited: Vec<RawFd> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            std::fs::read_link(e.path())
                .ok()?
                .starts_with(&dir)
                .then_some(fd)
        })
        .collect();
    for fd in inherited {
        // safety: see above: the descriptor is open (listed a moment ago
        // in this single-threaded child) and nothing else will close it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Builds the reporter's runtime and starts the Rust reporter on it.
fn spawn(core: Core, options: ReporterOptions) -> Result<Running, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("beacon-meter-reporter")
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the reporter's runtime: {e}"))?;
    let reporter = rt
        .block_on(CoreReporter::spawn(core, options))
        .map_err(|e| e.to_string())?;
    Ok(Running {
        live: Some((rt, reporter)),
        pid: std::process::id(),
    })
}

/// Closes windows of a meter on aligned boundaries and delivers each one
/// exactly once, through outages, restarts and crashes (the Rust reporter).
#[pyclass(frozen, module = "beacon_meter")]
pub struct Reporter {
    shared: Arc<Shared>,
}

impl Reporter {
    #[allow(clippy::too_many_arguments)]
    fn make(
        py: Python<'_>,
        meter: &Bound<'_, Meter>,
        use_env: bool,
        config: Option<&Bound<'_, PyDict>>,
        tags: Option<&Bound<'_, PyDict>>,
        platform: (Option<String>, Option<String>, Option<&Bound<'_, PyDict>>),
        start: bool,
        shutdown_timeout: f64,
    ) -> PyResult<Reporter> {
        let mut s = settings::settings(py, config, use_env, tags)?;
        s.tags = settings::platform(s.tags, platform.0, platform.1, platform.2)?;
        let shared = Arc::new(Shared {
            cell: meter.get().cell.clone(),
            settings: s,
            state: Mutex::new(State::Idle),
            shutdown_timeout: seconds(shutdown_timeout)?,
        });
        fork::register_reporter(py, &shared);
        if start {
            shared.start(py, false)?;
        }
        Ok(Reporter { shared })
    }
}

/// A timeout in seconds as a `Duration`.
fn seconds(s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds, got {s}"
        ))
    })
}

/// `ReporterStats` as a Python dict (through its JSON form).
fn to_dict<'py>(py: Python<'py>, stats: &ReporterStats) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(stats).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (json,))
}

#[pymethods]
impl Reporter {
    /// `Reporter(meter, *, license_key=..., api_key=..., beacon_url=...,
    /// interval_secs=..., spool_dir=..., ..., tags={...})`: configured by
    /// the keywords alone (each stands for its environment variable; the
    /// environment itself is not read).
    #[new]
    #[pyo3(signature = (meter, *, tags = None, langgraph_version = None, api_version = None,
                        user_app = None, start = true, shutdown_timeout = 10.0, **config))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        meter: &Bound<'_, Meter>,
        tags: Option<&Bound<'_, PyDict>>,
        langgraph_version: Option<String>,
        api_version: Option<String>,
        user_app: Option<&Bound<'_, PyDict>>,
        start: bool,
        shutdown_timeout: f64,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Reporter> {
        let platform = (langgraph_version, api_version, user_app);
        Reporter::make(
            py,
            meter,
            false,
            config,
            tags,
            platform,
            start,
            shutdown_timeout,
        )
    }

    /// `Reporter.from_env(meter, **overrides)`: configured from the
    /// environment (`LANGGRAPH_CLOUD_LICENSE_KEY`, `BEACON_URL`, ...), with
    /// keywords overriding single variables.
    #[classmethod]
    #[pyo3(signature = (meter, *, tags = None, langgraph_version = None, api_version = None,
                        user_app = None, start = true, shutdown_timeout = 10.0, **config))]
    #[allow(clippy::too_many_arguments)]
    fn from_env(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        meter: &Bound<'_, Meter>,
        tags: Option<&Bound<'_, PyDict>>,
        langgraph_version: Option<String>,
        api_version: Option<String>,
        user_app: Option<&Bound<'_, PyDict>>,
        start: bool,
        shutdown_timeout: f64,
        config: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Reporter> {
        let platform = (langgraph_version, api_version, user_app);
        Reporter::make(
            py,
            meter,
            true,
            config,
            tags,
            platform,
            start,
            shutdown_timeout,
        )
    }

    /// Starts the reporter (a no-op if it runs already). In a forked child,
    /// starts this process's own reporter.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.start(py, false)
    }

    /// What the reporter has done (a dict), or `None` if it never ran.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.shared.stats(py)?.map(|s| to_dict(py, &s)).transpose()
    }

    /// Closes the open window, spools it, and delivers until the spool is
    /// empty or `timeout` seconds have passed; the rest stays spooled for
    /// the next start. Returns the final stats (`None` if it never ran).
    #[pyo3(signature = (timeout = None))]
    fn shutdown<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let t = match timeout {
            Some(t) => seconds(t)?,
            None => self.shared.shutdown_timeout,
        };
        self.shared
            .shutdown(py, t)?
            .map(|s| to_dict(py, &s))
            .transpose()
    }

    /// The spool directory (the configured one; the reporter may keep its
    /// windows in a sub-directory of it).
    #[getter]
    fn spool_dir(&self) -> std::path::PathBuf {
        ReporterOptions::new(
            self.shared.settings.config.clone(),
            self.shared.settings.tags.clone(),
        )
        .spool_dir()
    }

    /// Cuts the senders' backoff waits short.
    fn retry_now(&self) {
        if let State::Running(r) = &*self.shared.state.lock() {
            r.reporter().retry_now();
        }
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, Self>> {
        slf.get().shared.start(py, false)?;
        Ok(slf.clone())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.shared.shutdown(py, self.shared.shutdown_timeout)?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "Reporter({}, spool_dir={:?}, offline={})",
            self.shared.describe(),
            self.spool_dir(),
            self.shared.settings.config.is_offline()
        )
    }
}

impl fork::ForkedReporter for Shared {
    /// True if this reporter was running in the parent of this forked
    /// process and records from the meter at `meter`.
    fn is_forked_for(&self, _py: Python<'_>, meter: *const ()) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.cell).cast(), meter)
            && matches!(*self.state.lock(), State::Forked)
    }

    /// In a forked child (single-threaded, GIL held): leak the parent's
    /// runtime and reporter without running any of their code (their
    /// threads are gone; dropping them would wait for those threads
    /// forever), and mark the reporter for a restart on first use.
    fn forget_after_fork(&self, _py: Python<'_>) {
        let mut st = self.state.lock();
        match std::mem::replace(&mut *st, State::Forked) {
            State::Running(r) => {
                close_inherited(&r.reporter().spool_dir());
                std::mem::forget(r)
            }
            State::Starting | State::Stopping | State::Forked => {}
            keep @ (State::Idle | State::Stopped(_)) => *st = keep,
        }
    }

    /// `start`, logging a failure instead of raising: for the background
    /// restart after a fork.
    fn start_logged(&self, py: Python<'_>) {
        if let Err(e) = self.start(py, true) {
            tracing::error!(error = %e, "the reporter did not restart in this forked process; usage is kept in the meter until a start succeeds");
        }
    }

    /// `shutdown` within the reporter's own `shutdown_timeout`, logging a
    /// failure instead of raising: for the exit hook.
    fn shutdown_logged(&self, py: Python<'_>) {
        if let Err(e) = self.shutdown(py, self.shutdown_timeout) {
            tracing::error!(error = %e, "the reporter could not shut down at exit");
        }
    }
}

/// Shuts down every reporter running in this process, each with its own
/// `shutdown_timeout`: the `atexit` hook.
#[pyfunction]
pub(crate) fn shutdown_all(py: Python<'_>) {
    for reporter in fork::reporters(py) {
        reporter.shutdown_logged(py);
    }
}
