//! The reporter's configuration from keyword arguments and the environment.
//! Each configuration keyword is a call on the Rust crate's
//! [`ConfigBuilder`], with the Python value converted to the setter's type,
//! so a keyword is held to the builder's rules and its errors name the
//! keyword; the environment, when read, goes through
//! [`ConfigBuilder::from_env`] and its errors name the variable. The four
//! tag keywords stand for their variables ([`Tags::from_lookup`]), whose
//! rules (the host tag derived from the variant and the project id) are
//! those of the environment.
//!
//! May import: `beacon_meter::{config, wire}`, pyo3, [`crate::callback`].

use crate::callback;
use beacon_meter::config::{Config, ConfigBuilder, Origin};
use beacon_meter::wire::{self, Plan, TagError, Tags, UserAppFlags};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use std::sync::Arc;
use std::time::Duration;

create_exception!(
    beacon_meter,
    ConfigError,
    PyValueError,
    "A configuration value is wrong. `.variable` names the environment \
     variable (or keyword) at fault; the message says how to fix it and \
     never shows a credential."
);

/// The configuration keywords: each one's [`ConfigBuilder`] method.
const CONFIG_KEYWORDS: [(&str, &str); 10] = [
    ("license_key", "license_key"),
    ("api_key", "api_key"),
    ("auth_endpoint", "auth_endpoint"),
    ("beacon_url", "beacon_url"),
    ("interval_secs", "interval"),
    ("timeout_secs", "timeout"),
    ("checkpoint_secs", "checkpoint_interval"),
    ("offline", "offline"),
    ("spool_dir", "spool_dir"),
    ("ca_cert", "ca_cert"),
];

/// The tag keywords: each one's environment variable.
const TAG_KEYWORDS: [(&str, &str); 4] = [
    ("revision", wire::tags::ENV_REVISION),
    ("variant", wire::tags::ENV_VARIANT),
    ("project_id", wire::tags::ENV_PROJECT_ID),
    ("tenant_id", wire::tags::ENV_TENANT_ID),
];

/// The keyword that sets the `langgraph.platform.plan` tag, for a platform
/// that decides its plan itself (langgraph-api's `PLAN`); without it the
/// plan follows the credential ([`Plan::for_license`]).
const PLAN_KEYWORD: &str = "plan";

/// The plan named by `v`: `"enterprise"` or `"developer"`.
fn plan_of(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Plan> {
    match text(v)?.as_str() {
        "enterprise" => Ok(Plan::Enterprise),
        "developer" => Ok(Plan::Developer),
        other => Err(config_error(
            py,
            PLAN_KEYWORD,
            format!("plan is {other:?}; use \"enterprise\" or \"developer\""),
        )),
    }
}

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

/// The variable, keyword or tag a tag error is about: a tag variable given
/// as a keyword (in `given`) is named by its keyword, in the message too.
fn tag_error(py: Python<'_>, e: TagError, given: &[(&str, String)]) -> PyErr {
    let mut message = e.to_string();
    let variable = match &e {
        TagError::NotAUuid { var, .. } | TagError::NotUnicode { var } => {
            let keyword = TAG_KEYWORDS
                .iter()
                .find(|(_, v)| v == var && given.iter().any(|(g, _)| g == var));
            match keyword {
                Some((kw, _)) => {
                    message = message.replacen(var, kw, 1);
                    (*kw).to_owned()
                }
                None => (*var).to_owned(),
            }
        }
        TagError::BadName { name, .. } | TagError::DynamicPanicked { name, .. } => name.clone(),
        // `TooMany`, and any kind of tag error added later.
        _ => "tags".to_owned(),
    };
    config_error(py, &variable, message)
}

/// A configuration error from the builder, in Python's words: a keyword's
/// error names the keyword (every message starts with its origin, so the
/// builder's name for it is replaced there), a variable's names the variable.
fn builder_error(py: Python<'_>, e: beacon_meter::config::ConfigError) -> PyErr {
    let message = e.to_string();
    let keyword = match e.origin() {
        Origin::Builder(method) => CONFIG_KEYWORDS.iter().find(|(_, m)| *m == method),
        _ => None,
    };
    match keyword {
        Some((kw, _)) => {
            let message = message.replacen(&e.origin().to_string(), kw, 1);
            config_error(py, kw, message)
        }
        None => config_error(py, &e.origin().to_string(), message),
    }
}

/// A keyword's value of the wrong kind: a `ConfigError` naming it.
fn wrong_kind(py: Python<'_>, keyword: &str, v: &Bound<'_, PyAny>, want: &str) -> PyErr {
    let shown = v.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string());
    let shown = wire::truncate::cut_chars(&shown, 100);
    config_error(py, keyword, format!("{keyword} is {shown}; pass {want}"))
}

/// `v` as text: `str` of it (a path-like through `os.fspath`).
fn text(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if v.hasattr("__fspath__")? {
        let fspath = v.py().import("os")?.getattr("fspath")?;
        Ok(fspath.call1((v,))?.str()?.to_string())
    } else {
        Ok(v.str()?.to_string())
    }
}

/// `v` as a number of seconds (an `int` or a `float`, not a `bool`).
fn seconds(py: Python<'_>, keyword: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let want = "a number of seconds";
    if v.cast::<PyBool>().is_ok() {
        return Err(wrong_kind(py, keyword, v, want));
    }
    let secs: f64 = v.extract().map_err(|_| wrong_kind(py, keyword, v, want))?;
    Duration::try_from_secs_f64(secs).map_err(|_| wrong_kind(py, keyword, v, want))
}

/// Applies one configuration keyword to `b`.
fn apply(
    py: Python<'_>,
    b: ConfigBuilder,
    keyword: &str,
    v: &Bound<'_, PyAny>,
) -> PyResult<ConfigBuilder> {
    Ok(match keyword {
        "license_key" => b.license_key(text(v)?),
        "api_key" => b.api_key(text(v)?),
        "auth_endpoint" => b.auth_endpoint(text(v)?),
        "beacon_url" => b.beacon_url(text(v)?),
        "interval_secs" => b.interval(seconds(py, keyword, v)?),
        "timeout_secs" => b.timeout(seconds(py, keyword, v)?),
        "checkpoint_secs" => b.checkpoint_interval(seconds(py, keyword, v)?),
        "offline" => {
            let Ok(flag) = v.cast::<PyBool>() else {
                return Err(wrong_kind(py, keyword, v, "True or False"));
            };
            b.offline(flag.is_true())
        }
        "spool_dir" => b.spool_dir(text(v)?),
        "ca_cert" => b.ca_cert(text(v)?),
        _ => unreachable!("only CONFIG_KEYWORDS are applied"),
    })
}

/// The settings from `kwargs` over the process environment when `use_env`
/// (a keyword given wins; `None` leaves the setting to the environment or
/// its default); `tags` adds custom tags (a string value) and dynamic tags
/// (a callable, evaluated for each report).
pub(crate) fn settings(
    py: Python<'_>,
    kwargs: Option<&Bound<'_, PyDict>>,
    use_env: bool,
    tags: Option<&Bound<'_, PyDict>>,
) -> PyResult<Settings> {
    let mut builder = if use_env {
        ConfigBuilder::from_env().map_err(|e| builder_error(py, e))?
    } else {
        ConfigBuilder::default()
    };
    let mut tag_vars: Vec<(&str, String)> = Vec::new();
    let mut plan = None;
    for (k, v) in kwargs.into_iter().flat_map(|d| d.iter()) {
        let k: String = k.extract()?;
        if k == PLAN_KEYWORD {
            plan = (!v.is_none()).then(|| plan_of(py, &v)).transpose()?;
            continue;
        }
        let is = |(kw, _): &&(&str, &str)| *kw == k;
        let (config_kw, tag_kw) = (
            CONFIG_KEYWORDS.iter().find(is),
            TAG_KEYWORDS.iter().find(is),
        );
        if config_kw.is_none() && tag_kw.is_none() {
            let known: Vec<&str> = CONFIG_KEYWORDS
                .iter()
                .chain(&TAG_KEYWORDS)
                .map(|k| k.0)
                .chain([PLAN_KEYWORD])
                .collect();
            return Err(PyTypeError::new_err(format!(
                "unknown reporter setting {k:?}; the settings are {known:?}"
            )));
        }
        if v.is_none() {
            continue;
        }
        match (config_kw, tag_kw) {
            (Some((kw, _)), _) => builder = apply(py, builder, kw, &v)?,
            (_, Some((_, var))) => tag_vars.push((var, text(&v)?)),
            (None, None) => unreachable!("checked above"),
        }
    }
    let config = builder.build().map_err(|e| builder_error(py, e))?;
    let lookup = |var: &str| match tag_vars.iter().find(|(k, _)| *k == var) {
        Some((_, v)) => Some(v.clone()),
        None if use_env => std::env::var(var).ok(),
        None => None,
    };
    let mut t = Tags::from_lookup(lookup)
        .map_err(|e| tag_error(py, e, &tag_vars))?
        .plan(plan.unwrap_or(Plan::for_license(config.license_key().is_some())));
    for (k, v) in tags.into_iter().flat_map(|d| d.iter()) {
        let name: String = k.extract()?;
        t = if v.is_callable() {
            t.dynamic(name.clone(), callback::tag(name, Arc::new(v.unbind())))
        } else {
            t.custom(name, v.str()?.to_string())
        }
        .map_err(|e| tag_error(py, e, &tag_vars))?;
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
