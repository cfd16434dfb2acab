//! Python callables called from Rust: gauges (sampled when a window closes)
//! and dynamic tags (evaluated for each report).
//!
//! The core catches a panicking gauge or tag and leaves it out of that one
//! window. A Python callback that raises is turned into exactly that: the
//! exception is logged on the `beacon_meter` logger (with its traceback)
//! and the callback unwinds with [`std::panic::resume_unwind`], which, unlike
//! `panic!`, runs no panic hook, so nothing else is printed.
//!
//! May import: pyo3.

use pyo3::prelude::*;
use std::sync::Arc;

/// The unwind payload of a callback that raised (already logged).
struct Skipped;

/// Calls `f` with the GIL, converting the result with `convert`; on an
/// exception, logs it and unwinds so that the core leaves the value out.
fn call<T>(
    kind: &str,
    name: &str,
    f: &Py<PyAny>,
    convert: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
) -> T {
    let out = Python::attach(|py| match f.bind(py).call0().and_then(|v| convert(&v)) {
        Ok(v) => Some(v),
        Err(e) => {
            log_exception(py, kind, name, e);
            None
        }
    });
    match out {
        Some(v) => v,
        None => std::panic::resume_unwind(Box::new(Skipped)),
    }
}

/// A gauge: a callable returning a non-negative `int`.
pub(crate) fn gauge(name: String, f: Arc<Py<PyAny>>) -> impl Fn() -> u64 + Send + Sync + 'static {
    move || call("gauge", &name, &f, |v| v.extract::<u64>())
}

/// A dynamic tag: a callable whose result is reported as `str(result)`.
pub(crate) fn tag(name: String, f: Arc<Py<PyAny>>) -> impl Fn() -> String + Send + Sync + 'static {
    move || call("tag", &name, &f, |v| Ok(v.str()?.to_string()))
}

/// Logs a callback's exception on the `beacon_meter` logger. If logging
/// itself fails (interpreter shutting down), the exception is dropped: a
/// callback must never break a rotation.
fn log_exception(py: Python<'_>, kind: &str, name: &str, err: PyErr) {
    let logged = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("beacon_meter",))?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("exc_info", err.into_value(py))?;
        logger.call_method(
            "warning",
            (
                "%s callback %r raised; its value is left out of this report",
                kind,
                name,
            ),
            Some(&kwargs),
        )?;
        Ok(())
    })();
    drop(logged);
}
