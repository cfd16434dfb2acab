//! The two wire dialects of a usage report: the published format and the
//! one the reference reporter (`langgraph-api` 0.16.7) sends. Pure data:
//! imports nothing but `std` and thiserror.
//!
//! They differ for the license destination only, in the report path and in
//! the name of the credential field; the API-key destination and every
//! other field are the same in both. Where a path goes under a base URL is
//! the configuration's business (`config::Config::destination`); this
//! module only names the pieces.

use std::fmt;
use std::str::FromStr;

/// Which dialect reports to the license destination are sent in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// The published format: `{beacon}/v1/metadata/submit`, the key in
    /// `"license"`.
    #[default]
    Published,
    /// What `langgraph-api` 0.16.7 sends: `{beacon}/v1/beacon/metadata/submit`,
    /// the key in `"license_key"`.
    LanggraphApi,
}

impl Dialect {
    /// Both dialects, the default first.
    pub const ALL: [Dialect; 2] = [Dialect::Published, Dialect::LanggraphApi];

    /// The name used in settings and output: `published` or
    /// `langgraph-api`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Published => "published",
            Dialect::LanggraphApi => "langgraph-api",
        }
    }

    /// The JSON field a license key travels in: `license` or `license_key`.
    pub fn license_field(self) -> &'static str {
        match self {
            Dialect::Published => "license",
            Dialect::LanggraphApi => "license_key",
        }
    }

    /// The license destination's report path under the Beacon's base URL,
    /// as segments: `v1/metadata/submit` or `v1/beacon/metadata/submit`.
    pub fn license_report_path(self) -> &'static [&'static str] {
        match self {
            Dialect::Published => &["v1", "metadata", "submit"],
            Dialect::LanggraphApi => &["v1", "beacon", "metadata", "submit"],
        }
    }

    /// The other dialect.
    pub fn other(self) -> Dialect {
        match self {
            Dialect::Published => Dialect::LanggraphApi,
            Dialect::LanggraphApi => Dialect::Published,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dialect name that is neither `published` nor `langgraph-api`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a wire dialect: use published or langgraph-api")]
pub struct UnknownDialect;

impl FromStr for Dialect {
    type Err = UnknownDialect;

    /// `published` or `langgraph-api` (ASCII case ignored; `langgraph_api`
    /// is taken too, as the Python module is spelled).
    fn from_str(s: &str) -> Result<Dialect, UnknownDialect> {
        match s.to_ascii_lowercase().as_str() {
            "published" => Ok(Dialect::Published),
            "langgraph-api" | "langgraph_api" => Ok(Dialect::LanggraphApi),
            _ => Err(UnknownDialect),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fields_differ() {
        for d in Dialect::ALL {
            assert_eq!(d.name().parse::<Dialect>(), Ok(d));
            assert_eq!(d.other().other(), d);
            assert_ne!(d.license_field(), d.other().license_field());
            assert_ne!(d.license_report_path(), d.other().license_report_path());
        }
        assert_eq!(Dialect::default(), Dialect::Published);
        assert_eq!("LangGraph-API".parse(), Ok(Dialect::LanggraphApi));
        assert_eq!("langgraph_api".parse(), Ok(Dialect::LanggraphApi));
        assert_eq!("beacon".parse::<Dialect>(), Err(UnknownDialect));
        assert_eq!(Dialect::LanggraphApi.license_field(), "license_key");
    }
}
