//! `beacon_meter._native`: the PyO3 binding of the beacon-meter core and
//! reporter. Thin by design: every count, window, spool write and delivery
//! is done by the Rust crate; this layer converts arguments, holds the GIL
//! no longer than a call, and makes the objects survive `fork()`.
//!
//! May import: `beacon_meter` (core and shell), pyo3, tokio (the reporter's
//! own runtime), tracing.
//!
//! * [`meter`]: `Meter` and `Window`, the hot path.
//! * [`fastcall`]: the hot path's calling convention.
//! * [`reporter`]: `Reporter`, on its own thread and tokio runtime.
//! * [`settings`]: keyword arguments and environment to `Config` and `Tags`.
//! * [`fork`]: what a forked child does to start from a clean slate.
//! * [`callback`]: Python gauges and dynamic tags called from Rust.

mod callback;
mod fastcall;
mod fork;
mod meter;
mod reporter;
mod settings;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging(m.py());
    m.add_class::<meter::Meter>()?;
    fastcall::install(&m.py().get_type::<meter::Meter>())?;
    m.add_class::<meter::Window>()?;
    m.add_class::<reporter::Reporter>()?;
    m.add("ConfigError", m.py().get_type::<settings::ConfigError>())?;
    m.add(
        "ReporterError",
        m.py().get_type::<reporter::ReporterError>(),
    )?;
    m.add_function(wrap_pyfunction!(fork::after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(reporter::shutdown_all, m)?)?;
    Ok(())
}

/// Where the reporter's own log records (deliveries, retries, spool
/// trouble) go. They never contain a credential (the crate redacts them).
///
/// * By default, to Python's `logging`, under the logger names of their
///   Rust modules (`beacon_meter.reporter.sender`, ...; all under
///   `beacon_meter`), at `INFO` and above, so that the host's logging
///   configuration decides what is shown. Python's own default shows
///   warnings on stderr. Each record is handed over with the GIL taken on
///   the reporter's thread; the hot path logs nothing.
/// * With `BEACON_LOG` set (an `EnvFilter`, e.g. `BEACON_LOG=debug`), to
///   stderr through `tracing` instead, at that filter, as a Rust program
///   would, with nothing going through Python. If the host process already
///   installed a `tracing` subscriber, that one is kept.
fn init_logging(py: Python<'_>) {
    match tracing_subscriber::EnvFilter::try_from_env("BEACON_LOG") {
        Ok(filter) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        }
        Err(_) => {
            // tracing's `log-always` feature turns every event into a `log`
            // record, which this logger hands to Python. Levels are looked
            // up in Python at each record (loggers are cached), so that a
            // `logging` configuration made after import still applies.
            match pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers) {
                Ok(logger) => {
                    let _ = logger.filter(log::LevelFilter::Info).install();
                }
                Err(e) => e.print(py),
            }
        }
    }
}
