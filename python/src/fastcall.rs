//! `Meter`'s recording methods on CPython's vectorcall convention
//! (`METH_FASTCALL | METH_KEYWORDS`): the arguments arrive as a C array
//! plus a tuple of keyword names, and no tuple or dict is built per call.
//!
//! # Why by hand
//!
//! The package is one `abi3` wheel for CPython 3.9 and later, so PyO3
//! targets 3.9's limited API. That API does not declare `METH_FASTCALL`
//! (3.10's does), so PyO3 registers every method as
//! `METH_VARARGS | METH_KEYWORDS`: each `record_run(nodes=3)` then
//! allocates an argument tuple and a keyword dict and matches the dict's
//! keys by string, which costs more than the record itself
//! (`BENCHMARKS.md`, "Python binding"). The convention is older than the
//! limited API's declaration of it:
//! * the flag's value (`0x0080`) and the function's signature (PEP 590)
//!   are in CPython's public API since 3.7, and the method descriptor
//!   dispatches on them (`method_vectorcall_FASTCALL_KEYWORDS`) since 3.8;
//! * 3.10 put exactly these into the limited API, which promises that they
//!   do not change from then on.
//!
//! So a 3.9 interpreter calls these functions as 3.10 and later do. They
//! are installed over the type's attributes when the module loads
//! ([`install`]), through `PyDescr_NewMethod`, which is in the stable ABI.
//!
//! May import: pyo3 (and its `ffi`), [`crate::meter`].

use crate::meter::{Live, Meter};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};
use std::ffi::{CStr, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

/// `METH_FASTCALL` from CPython's `methodobject.h` (pyo3-ffi declares it
/// only for the 3.10 limited API and later; see the module doc).
const METH_FASTCALL: c_int = 0x0080;

/// A `METH_FASTCALL | METH_KEYWORDS` function (PEP 590): `self`, the
/// argument array, the number of positional arguments, and the tuple of
/// keyword names (or null) whose values follow the positional ones.
type FastCall = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// The methods, with the signature line `inspect.signature` reads.
const METHODS: [(&CStr, &CStr, FastCall); 4] = [
    (
        c"record_run",
        c"record_run($self, nodes=0, **custom)\n--\n\nRecords one run of `nodes` nodes, \
          with custom counter amounts given as keywords, as one indivisible record.",
        record_run,
    ),
    (
        c"record_nodes",
        c"record_nodes($self, n)\n--\n\nRecords `n` nodes outside a completed run.",
        record_nodes,
    ),
    (
        c"incr_runs",
        c"incr_runs($self, *, incr=1)\n--\n\nThe reference platform's `incr_runs`: `incr` runs.",
        incr_runs,
    ),
    (
        c"incr_nodes",
        c"incr_nodes($self, _node, *, incr=1)\n--\n\nThe reference platform's `incr_nodes`, \
          also the graph engine's per-node callback: `incr` nodes.",
        incr_nodes,
    ),
];

/// Puts the methods on the `Meter` type. Called once, when the module
/// loads.
pub(crate) fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    for (name, doc, f) in METHODS {
        // Leaked: a method descriptor points to its definition for as long
        // as the type lives, which is until the process ends.
        let def = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                // safety: CPython calls `ml_meth` with the signature its
                // flags name (`FastCall` for these); the union's field is
                // only how C spells "some function pointer", and function
                // pointers have one size and representation.
                PyCFunction: unsafe { std::mem::transmute::<FastCall, ffi::PyCFunction>(f) },
            },
            ml_flags: METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: doc.as_ptr(),
        }));
        // safety: `ty` is a live type object and `def` is never freed.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(ty.py(), ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))?
        };
        ty.setattr(PyString::new(ty.py(), &name.to_string_lossy()), descr)?;
    }
    Ok(())
}

/// One call's arguments: the positional ones, then the keywords'
/// `(name, value)` pairs.
struct Args<'a, 'py> {
    py: Python<'py>,
    method: &'static str,
    positional: &'a [*mut ffi::PyObject],
    values: &'a [*mut ffi::PyObject],
    names: Option<Borrowed<'a, 'py, PyTuple>>,
}

impl<'a, 'py> Args<'a, 'py> {
    /// # Safety
    /// The arguments of a `FastCall` call, as CPython passed them.
    unsafe fn new(
        py: Python<'py>,
        method: &'static str,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> Self {
        // safety (both): PEP 590: `args` holds `nargs` positional values
        // (the flag `PY_VECTORCALL_ARGUMENTS_OFFSET` is never set for a
        // method descriptor's `ml_meth`), then one value per keyword name;
        // `kwnames` is null or a tuple of str.
        let names = unsafe { Borrowed::from_ptr_or_opt(py, kwnames) }
            .map(|n| unsafe { n.cast_unchecked::<PyTuple>() });
        let nkw = names.map_or(0, |n| n.len());
        let all: &[*mut ffi::PyObject] = if args.is_null() {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(args, nargs as usize + nkw) }
        };
        let (positional, values) = all.split_at(nargs as usize);
        Args {
            py,
            method,
            positional,
            values,
            names,
        }
    }

    /// The first positional argument, if any, once it is checked that
    /// there are at most `max`.
    fn positional(&self, max: usize) -> PyResult<Option<Borrowed<'a, 'py, PyAny>>> {
        if self.positional.len() > max {
            return Err(PyTypeError::new_err(format!(
                "{}() takes at most {max} positional argument(s) ({} given)",
                self.method,
                self.positional.len()
            )));
        }
        // safety: a live object CPython passed in.
        Ok(self
            .positional
            .first()
            .map(|&p| unsafe { Borrowed::from_ptr(self.py, p) }))
    }

    /// How many keyword arguments there are.
    fn keywords(&self) -> std::ops::Range<usize> {
        0..self.values.len()
    }

    /// The `i`th keyword argument, as `(name, value)`; `i` is in
    /// [`Args::keywords`].
    fn keyword(&self, i: usize) -> (Borrowed<'a, 'py, PyString>, Borrowed<'a, 'py, PyAny>) {
        let names = self.names.expect("keyword values come with names");
        // safety: `names` is a tuple of str as long as `values` (PEP 590),
        // and both hold live objects CPython passed in; `PyTuple_GetItem`
        // returns a borrowed reference.
        unsafe {
            let name = ffi::PyTuple_GetItem(names.as_ptr(), i as ffi::Py_ssize_t);
            (
                Borrowed::from_ptr(self.py, name).cast_unchecked::<PyString>(),
                Borrowed::from_ptr(self.py, self.values[i]),
            )
        }
    }

    /// The `TypeError` of a keyword this method does not take.
    fn unexpected(&self, name: Borrowed<'_, '_, PyString>) -> PyErr {
        PyTypeError::new_err(format!(
            "{}() got an unexpected keyword argument '{}'",
            self.method,
            name.to_cow().unwrap_or_default()
        ))
    }
}

/// Whether the keyword `name` is `expected`. Keyword names written in a
/// call are interned, so this is a string compare only for names built at
/// run time (`**{...}`).
fn is(name: Borrowed<'_, '_, PyString>, expected: &Bound<'_, PyString>) -> bool {
    name.as_ptr() == expected.as_ptr() || name.as_any().eq(expected).unwrap_or(false)
}

/// Runs `body` as a method of `Meter`, and turns its error, or a panic,
/// into a raised exception.
///
/// # Safety
/// `slf` and the arguments are those of a `FastCall` call by CPython.
unsafe fn call(
    slf: *mut ffi::PyObject,
    method: &'static str,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    body: impl FnOnce(&Args<'_, '_>, &Meter, &Live) -> PyResult<()>,
) -> *mut ffi::PyObject {
    // safety: CPython calls a method with the thread attached, and the
    // method descriptor has checked that `slf` is a `Meter` (or a subclass)
    // before calling.
    let py = unsafe { Python::assume_attached() };
    let meter = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<Meter>() };
    let args = unsafe { Args::new(py, method, args, nargs, kwnames) };
    let run = || body(&args, meter.get(), meter.get().cell.live(py));
    let err = match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(())) => return py.None().into_ptr(),
        Ok(Err(e)) => e,
        Err(_) => PyRuntimeError::new_err(format!(
            "beacon_meter: Meter.{method}() panicked (a bug: please report it)"
        )),
    };
    err.restore(py);
    ptr::null_mut()
}

/// Defines the `FastCall` function `$name`, whose body is a closure
/// `|args, meter, live| -> PyResult<()>` run by [`call`].
macro_rules! fastcall {
    ($(#[$doc:meta])* $name:ident, $body:expr) => {
        $(#[$doc])*
        unsafe extern "C" fn $name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // safety: CPython calls it as a `FastCall` method (see `install`).
            unsafe { call(slf, stringify!($name), args, nargs, kwnames, $body) }
        }
    };
}

fastcall! {
    /// `record_run(nodes=0, **custom)`.
    record_run, |a: &Args<'_, '_>, m: &Meter, live: &Live| {
        let mut nodes = a.positional(1)?.map(|v| v.extract::<u64>()).transpose()?;
        let mut extra = Vec::new(); // allocates only for custom counters
        for (name, value) in a.keywords().map(|i| a.keyword(i)) {
            if is(name, pyo3::intern!(a.py, "nodes")) {
                if nodes.is_some() {
                    return Err(PyTypeError::new_err(
                        "record_run() got multiple values for argument 'nodes'",
                    ));
                }
                nodes = Some(value.extract()?);
            } else {
                let name = name.to_cow()?;
                let id = live
                    .counter(&name)
                    .ok_or_else(|| PyTypeError::new_err(m.cell.not_a_counter(&name)))?;
                extra.push((id, value.extract::<u64>()?));
            }
        }
        match extra.is_empty() {
            true => live.core.record_run(nodes.unwrap_or(0)),
            false => live.core.record_run_with(nodes.unwrap_or(0), &extra),
        }
        Ok(())
    }
}

fastcall! {
    /// `record_nodes(n)`.
    record_nodes, |a: &Args<'_, '_>, _: &Meter, live: &Live| {
        let mut n = a.positional(1)?.map(|v| v.extract::<u64>()).transpose()?;
        for (name, value) in a.keywords().map(|i| a.keyword(i)) {
            match is(name, pyo3::intern!(a.py, "n")) && n.is_none() {
                true => n = Some(value.extract()?),
                false => return Err(a.unexpected(name)),
            }
        }
        let n = n.ok_or_else(|| {
            PyTypeError::new_err("record_nodes() missing 1 required argument: 'n'")
        })?;
        live.core.record_nodes(n);
        Ok(())
    }
}

/// The keyword-only `incr=1` of the reference's two functions, and
/// whether the node was given (positionally or as `_node=`).
fn incr(a: &Args<'_, '_>, positional: usize) -> PyResult<(u64, bool)> {
    let (mut incr, mut node) = (1, a.positional(positional)?.is_some());
    for (name, value) in a.keywords().map(|i| a.keyword(i)) {
        if is(name, pyo3::intern!(a.py, "incr")) {
            incr = value.extract()?;
        } else if positional == 1 && !node && is(name, pyo3::intern!(a.py, "_node")) {
            node = true;
        } else {
            return Err(a.unexpected(name));
        }
    }
    Ok((incr, node))
}

fastcall! {
    /// `incr_runs(*, incr=1)`: `incr` runs of no nodes.
    incr_runs, |a: &Args<'_, '_>, _: &Meter, live: &Live| {
        for _ in 0..incr(a, 0)?.0 {
            live.core.record_run(0);
        }
        Ok(())
    }
}

fastcall! {
    /// `incr_nodes(_node, *, incr=1)`: `incr` nodes; the node is ignored,
    /// as the reference ignores it.
    incr_nodes, |a: &Args<'_, '_>, _: &Meter, live: &Live| {
        let (n, node) = incr(a, 1)?;
        if !node {
            return Err(PyTypeError::new_err(
                "incr_nodes() missing 1 required argument: '_node'",
            ));
        }
        live.core.record_nodes(n);
        Ok(())
    }
}
