//! Reading the environment into a [`ConfigBuilder`]: which variable wins,
//! and the checks that only make sense for text from a variable (UTF-8,
//! length). Parsing and range checks are the builder's, so a variable and
//! a builder call are held to one rule.

use super::builder::{ConfigBuilder, Given};
use super::{
    API_KEY_VARS, AUTH_ENDPOINT_VARS, ConfigError, ENV_BEACON_URL, ENV_CA_CERT, ENV_CHECKPOINT,
    ENV_HOSTNAME, ENV_INTERVAL, ENV_LICENSE_KEY, ENV_METRICS_ENABLED, ENV_METRICS_ENDPOINT,
    ENV_METRICS_INTERVAL, ENV_OFFLINE, ENV_SPOOL_DIR, ENV_TIMEOUT, ENV_WIRE, MAX_SECRET_BYTES,
    MAX_VALUE_BYTES, Origin,
};
use crate::secret::Secret;
use std::ffi::OsString;
use std::path::PathBuf;

impl ConfigBuilder {
    /// A builder holding what the process environment sets (see the
    /// [module docs](super) for the variables); call setters on it to
    /// override, then [`build`](Self::build).
    pub fn from_env() -> Result<ConfigBuilder, ConfigError> {
        ConfigBuilder::from_lookup(|var| std::env::var_os(var))
    }

    /// A builder holding what `lookup` (an environment) sets. Of each
    /// precedence list, the first variable set to a non-empty value wins and
    /// later ones are not read; a winner that is not UTF-8 or too long is an
    /// error here, and anything else wrong with it is found by
    /// [`build`](Self::build), naming the variable.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<ConfigBuilder, ConfigError> {
        let env = Env(&lookup);
        let secret = |vars| {
            let found = env.first(vars, MAX_SECRET_BYTES)?;
            Ok::<_, ConfigError>(found.map(|(var, s)| (Origin::Var(var), Secret::new(s))))
        };
        let text = |vars| {
            let found = env.first(vars, MAX_VALUE_BYTES)?;
            Ok::<_, ConfigError>(found.map(|(var, s)| (Origin::Var(var), s)))
        };
        let raw = |var| env.first(&[var], MAX_VALUE_BYTES);
        let path = |var| {
            let found = env.first(&[var], MAX_VALUE_BYTES)?;
            Ok::<_, ConfigError>(found.map(|(var, s)| (Origin::Var(var), PathBuf::from(s))))
        };
        Ok(ConfigBuilder {
            license_key: secret(&[ENV_LICENSE_KEY])?,
            api_key: secret(&API_KEY_VARS)?,
            auth_endpoint: text(&AUTH_ENDPOINT_VARS)?,
            beacon_url: text(&[ENV_BEACON_URL])?,
            wire: raw(ENV_WIRE)?.map(Given::var),
            interval: raw(ENV_INTERVAL)?.map(Given::var),
            timeout: raw(ENV_TIMEOUT)?.map(Given::var),
            checkpoint_interval: raw(ENV_CHECKPOINT)?.map(Given::var),
            offline: raw(ENV_OFFLINE)?.map(Given::var),
            spool_dir: path(ENV_SPOOL_DIR)?,
            ca_cert: path(ENV_CA_CERT)?,
            metrics_enabled: raw(ENV_METRICS_ENABLED)?.map(Given::var),
            metrics_endpoint: text(&[ENV_METRICS_ENDPOINT])?,
            metrics_interval: raw(ENV_METRICS_INTERVAL)?.map(Given::var),
            instance_id: text(&[ENV_HOSTNAME])?,
        })
    }
}

/// Reads and checks variables from a lookup function.
struct Env<'a, F: Fn(&str) -> Option<OsString>>(&'a F);

impl<F: Fn(&str) -> Option<OsString>> Env<'_, F> {
    /// The trimmed value, `None` when unset or empty. Not UTF-8 or longer
    /// than `max` is an error.
    fn raw(&self, var: &'static str, max: usize) -> Result<Option<String>, ConfigError> {
        let origin = Origin::Var(var);
        let Some(os) = (self.0)(var) else {
            return Ok(None);
        };
        let s = os
            .into_string()
            .map_err(|_| ConfigError::NotUnicode { origin })?;
        let s = s.trim();
        if s.len() > max {
            return Err(ConfigError::TooLong {
                origin,
                len: s.len(),
                max,
            });
        }
        Ok((!s.is_empty()).then(|| s.to_owned()))
    }

    /// The first of `vars` that is set (non-empty) and its value, checking
    /// each one read on the way; the ones after it are not read.
    fn first(
        &self,
        vars: &[&'static str],
        max: usize,
    ) -> Result<Option<(&'static str, String)>, ConfigError> {
        for var in vars {
            if let Some(s) = self.raw(var, max)? {
                return Ok(Some((var, s)));
            }
        }
        Ok(None)
    }
}
