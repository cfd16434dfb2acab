//! What can be wrong with a configuration value, and where it came from.

use crate::secret::Secret;
use std::fmt;
use std::time::Duration;

/// Where a value given to the configuration came from: what an error
/// names, so that the fix lands where the value was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// This environment variable (read by [`super::ConfigBuilder::from_lookup`]).
    Var(&'static str),
    /// This method of [`super::ConfigBuilder`], called from code. Shown as
    /// `ConfigBuilder::{method}`.
    Builder(&'static str),
}

impl Origin {
    /// The variable, if the value came from one.
    pub fn var(self) -> Option<&'static str> {
        match self {
            Origin::Var(v) => Some(v),
            Origin::Builder(_) => None,
        }
    }

    /// How to take the value back: unset the variable, or leave the call out.
    fn undo(self) -> &'static str {
        match self {
            Origin::Var(_) => "unset it",
            Origin::Builder(_) => "leave it out",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Var(v) => f.write_str(v),
            Origin::Builder(m) => write!(f, "ConfigBuilder::{m}"),
        }
    }
}

/// A configuration value that cannot be used.
///
/// Every message starts with where the value came from ([`Origin`]: the
/// variable, or the builder method), shows the value (cut short; never for
/// a credential) and says how to fix it. The texts are the point here
/// (there is no underlying error to keep as a source): the CA file's I/O
/// error is folded into `reason` because the message must name the path
/// and the origin, which `std::io::Error` does not.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The value is not valid UTF-8.
    #[error("{origin} is not valid UTF-8; set it to plain text or {}", .origin.undo())]
    NotUnicode {
        /// Where it came from.
        origin: Origin,
    },
    /// The value is longer than allowed.
    #[error("{origin} is {len} bytes long, more than the {max} allowed; set a shorter value")]
    TooLong {
        /// Where it came from.
        origin: Origin,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A credential contains whitespace or control characters (the value is
    /// not shown).
    #[error(
        "{origin} contains whitespace or control characters, so it cannot be a valid key; \
         set it to the key exactly as issued (the value is not shown because it is a secret)"
    )]
    BadSecret {
        /// Where it came from.
        origin: Origin,
    },
    /// A wire dialect that is neither `published` nor `langgraph-api`.
    #[error(
        "{origin} is {value:?}; set it to published (the published format, the default) or \
         langgraph-api (what the langgraph-api package sends), or {}", .origin.undo()
    )]
    BadDialect {
        /// Where it came from.
        origin: Origin,
        /// The value.
        value: String,
    },
    /// A number of seconds (from a variable) that is not a whole number in
    /// range.
    #[error(
        "{origin} is {value:?}; set it to a whole number of seconds from {min} to {max}, or {} for {default}",
        .origin.undo()
    )]
    BadSeconds {
        /// Where it came from.
        origin: Origin,
        /// The value.
        value: String,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// The default.
        default: u64,
    },
    /// A number of milliseconds (from a variable) that is not a whole
    /// number in range.
    #[error(
        "{origin} is {value:?}; set it to a whole number of milliseconds from {min} to {max}, or {} for {default}",
        .origin.undo()
    )]
    BadMillis {
        /// Where it came from.
        origin: Origin,
        /// The value.
        value: String,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// The default.
        default: u64,
    },
    /// Operational metrics are turned on with nowhere to send them (the
    /// platform refuses to start in this case too).
    #[error(
        "{origin} turns on the export of operational metrics, but {endpoint} is not set; set it to \
         the OTLP/HTTP metrics URL of your collector (such as https://collector.example/v1/metrics), \
         or {}", .origin.undo()
    )]
    NoMetricsEndpoint {
        /// Where the switch came from.
        origin: Origin,
        /// The endpoint's variable.
        endpoint: &'static str,
    },
    /// A duration (given in code) out of range or finer than a millisecond.
    #[error(
        "{origin} is {value:?}; give a whole number of milliseconds from {min:?} to {max:?}, or {}",
        .origin.undo()
    )]
    BadDuration {
        /// Where it came from.
        origin: Origin,
        /// The value.
        value: Duration,
        /// Smallest allowed.
        min: Duration,
        /// Largest allowed.
        max: Duration,
    },
    /// A flag that is not a recognized boolean.
    #[error("{origin} is {value:?}; set it to true, false, 1, 0, yes or no")]
    BadBool {
        /// Where it came from.
        origin: Origin,
        /// The value.
        value: String,
    },
    /// A URL that does not parse or cannot be an endpoint.
    #[error(
        "{origin} is {value:?}, which is not a usable endpoint URL ({reason}); set it to a base URL like https://beacon.example.com"
    )]
    BadUrl {
        /// Where it came from.
        origin: Origin,
        /// The value (user info replaced by `***`).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A plain-`http` URL to a host that is not loopback.
    #[error(
        "{origin} is {value:?}: plain http is allowed only to a loopback address (127.0.0.0/8, ::1, localhost); use https"
    )]
    InsecureUrl {
        /// Where it came from.
        origin: Origin,
        /// The value (user info replaced by `***`).
        value: String,
    },
    /// The CA certificate file is missing, unreadable or holds no certificate.
    #[error(
        "{origin} is {path:?}: {reason}; point it at a readable PEM file holding at least one CERTIFICATE block, or {}",
        .origin.undo()
    )]
    BadCaCert {
        /// Where it came from.
        origin: Origin,
        /// The path given.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The message, as for [`std::fmt::Display`]: a `ConfigError` returned from
/// `main` through `Box<dyn Error>` or `anyhow` reads as its fix, not as a
/// struct dump. Every field of every variant is in the message already,
/// and none is a secret.
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ConfigError {
    /// The error with every occurrence of `secrets` in the values it shows
    /// replaced by their redacted form.
    pub(super) fn without_secrets(mut self, secrets: &[Secret]) -> ConfigError {
        let clean =
            |s: &mut String| *s = secrets.iter().fold(std::mem::take(s), |s, k| k.scrub(&s));
        match &mut self {
            ConfigError::BadSeconds { value, .. }
            | ConfigError::BadMillis { value, .. }
            | ConfigError::BadBool { value, .. }
            | ConfigError::BadDialect { value, .. }
            | ConfigError::InsecureUrl { value, .. } => clean(value),
            ConfigError::BadUrl { value, reason, .. }
            | ConfigError::BadCaCert {
                path: value,
                reason,
                ..
            } => {
                clean(value);
                clean(reason);
            }
            ConfigError::NotUnicode { .. }
            | ConfigError::TooLong { .. }
            | ConfigError::BadSecret { .. }
            | ConfigError::NoMetricsEndpoint { .. }
            | ConfigError::BadDuration { .. } => {}
        }
        self
    }

    /// Where the bad value came from.
    pub fn origin(&self) -> Origin {
        match self {
            ConfigError::NotUnicode { origin }
            | ConfigError::TooLong { origin, .. }
            | ConfigError::BadSecret { origin }
            | ConfigError::BadSeconds { origin, .. }
            | ConfigError::BadMillis { origin, .. }
            | ConfigError::NoMetricsEndpoint { origin, .. }
            | ConfigError::BadDuration { origin, .. }
            | ConfigError::BadBool { origin, .. }
            | ConfigError::BadDialect { origin, .. }
            | ConfigError::BadCaCert { origin, .. }
            | ConfigError::BadUrl { origin, .. }
            | ConfigError::InsecureUrl { origin, .. } => *origin,
        }
    }

    /// The variable that was wrong, if the value came from the environment.
    pub fn var(&self) -> Option<&'static str> {
        self.origin().var()
    }
}
