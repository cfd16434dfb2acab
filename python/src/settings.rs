//! The reporter's configuration from keyword arguments and the environment,
//! by the Rust crate's own rules ([`Config::from_lookup`],
//! [`Tags::from_lookup`]): each keyword stands for one environment
//! variable, and the value is checked exactly as that variable would be.
//!
//! May import: `beacon_meter::{config, wire}`, pyo3, [`crate::callback`].

use crate::callback;
use beacon_meter::config::{self, Config};
use beacon_meter::wire::{self, Plan, TagError, Tags, UserAppFlags};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use std::ffi::OsString;
use std::sync::Arc;

create_exception!(
    _native,
    ConfigError,
    PyValueError,
    "A configuration value is wrong. `.variable` names the environment \
     variable (or keyword) at fault; the message says how to fix it and \
     never shows a credential."
);

/// Keyword → the environment variable it stands for.
const KEYWORDS: [(&str, &str); 14] = [
    ("license_key", config::ENV_LICENSE_KEY),
    ("api_key", config::ENV_API_KEY),
    ("auth_endpoint", config::ENV_AUTH_ENDPOINT),
    ("beacon_url", config::ENV_BEACON_URL),
    ("interval_secs", config::ENV_INTERVAL),
    ("timeout_secs", config::ENV_TIMEOUT),
    ("checkpoint_secs", config::ENV_CHECKPOINT),
    ("offline", config::ENV_OFFLINE),
    ("spool_dir", config::ENV_SPOOL_DIR),
    ("ca_cert", config::ENV_CA_CERT),
    ("revision", wire::tags::ENV_REVISION),
    ("variant", wire::tags::ENV_VARIANT),
    ("project_id", wire::tags::ENV_PROJECT_ID),
    ("tenant_id", wire::tags::ENV_TENANT_ID),
];

/// What a reporter runs with.
pub(crate) struct Settings {
    pub(crate) config: Config,
    pub(crate) tags: Tags,
}

/// A `ConfigError` naming `variable`.
fn config_error(py: Python<'_>, variable: &str, message: String) -> PyErr {
    let err = ConfigError::new_err(message);
    // Setting an attribute on a fresh exception instance cannot fail in
    // practice; if it did, the message still names the variable.
    let _ = err.value(py).setattr("variable", variable);
    err
}

/// The variable or tag a tag error is about.
fn tag_error(py: Python<'_>, e: TagError) -> PyErr {
    let variable = match &e {
        TagError::NotAUuid { var, .. } | TagError::NotUnicode { var } => (*var).to_owned(),
        TagError::BadName { name, .. } | TagError::DynamicPanicked { name, .. } => name.clone(),
        // `TooMany`, and any kind of tag error added later.
        _ => "tags".to_owned(),
    };
    config_error(py, &variable, e.to_string())
}

/// The keyword arguments as `(variable, value)` pairs. `None` means unset;
/// booleans are `true`/`false`; path-like values go through `os.fspath`;
/// anything else through `str`.
fn pairs(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let fspath = py.import("os")?.getattr("fspath")?;
    for (k, v) in kwargs.into_iter().flat_map(|d| d.iter()) {
        let k: String = k.extract()?;
        let Some((_, var)) = KEYWORDS.iter().find(|(kw, _)| *kw == k) else {
            let known: Vec<&str> = KEYWORDS.iter().map(|k| k.0).collect();
            return Err(PyTypeError::new_err(format!(
                "unknown reporter setting {k:?}; the settings are {known:?}"
            )));
        };
        if v.is_none() {
            continue;
        }
        let value = if let Ok(b) = v.cast::<PyBool>() {
            b.is_true().to_string()
        } else if v.hasattr("__fspath__")? {
            fspath.call1((&v,))?.str()?.to_string()
        } else {
            v.str()?.to_string()
        };
        out.push(((*var).to_owned(), value));
    }
    Ok(out)
}

/// The settings from `kwargs`, falling back to the process environment for
/// what they leave out when `use_env`; `tags` adds custom tags (a string
/// value) and dynamic tags (a callable, evaluated for each report).
pub(crate) fn settings(
    py: Python<'_>,
    kwargs: Option<&Bound<'_, PyDict>>,
    use_env: bool,
    tags: Option<&Bound<'_, PyDict>>,
) -> PyResult<Settings> {
    let given = pairs(py, kwargs)?;
    let lookup = |var: &str| -> Option<OsString> {
        match given.iter().find(|(k, _)| k == var) {
            Some((_, v)) => Some(OsString::from(v)),
            None if use_env => std::env::var_os(var),
            None => None,
        }
    };
    let config =
        Config::from_lookup(lookup).map_err(|e| config_error(py, e.var(), e.to_string()))?;
    let mut t = Tags::from_lookup(|var| lookup(var).and_then(|v| v.into_string().ok()))
        .map_err(|e| tag_error(py, e))?
        .plan(Plan::for_license(config.license_key.is_some()));
    for (k, v) in tags.into_iter().flat_map(|d| d.iter()) {
        let name: String = k.extract()?;
        t = if v.is_callable() {
            t.dynamic(name.clone(), callback::tag(name, Arc::new(v.unbind())))
        } else {
            t.custom(name, v.str()?.to_string())
        }
        .map_err(|e| tag_error(py, e))?;
    }
    Ok(Settings { config, tags: t })
}

/// The platform tags a Python executor knows about itself: the
/// `langgraph` and `langgraph_api` versions (`langgraph.python.version`,
/// `langgraph_api.version`) and the `user_app.*` flags (keywords
/// `uses_indexing`, `uses_custom_app`, `uses_custom_auth`,
/// `uses_thread_ttl`, `uses_store_ttl`; truthy means true).
pub(crate) fn platform(
    mut tags: Tags,
    langgraph_version: Option<String>,
    api_version: Option<String>,
    user_app: Option<&Bound<'_, PyDict>>,
) -> PyResult<Tags> {
    if let Some(v) = langgraph_version {
        tags = tags.python_version(v);
    }
    if let Some(v) = api_version {
        tags = tags.api_version(v);
    }
    let Some(flags) = user_app else {
        return Ok(tags);
    };
    let mut f = UserAppFlags::default();
    for (k, v) in flags.iter() {
        let k: String = k.extract()?;
        let on = v.is_truthy()?;
        match k.as_str() {
            "uses_indexing" => f.uses_indexing = on,
            "uses_custom_app" => f.uses_custom_app = on,
            "uses_custom_auth" => f.uses_custom_auth = on,
            "uses_thread_ttl" => f.uses_thread_ttl = on,
            "uses_store_ttl" => f.uses_store_ttl = on,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown user_app flag {k:?}; the flags are uses_indexing, uses_custom_app, \
                     uses_custom_auth, uses_thread_ttl and uses_store_ttl"
                )));
            }
        }
    }
    Ok(tags.user_app(f))
}
