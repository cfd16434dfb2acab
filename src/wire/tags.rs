//! Report tags: the platform's metadata, every value a string.
//!
//! A [`Tags`] holds the spec's platform tags (versions, revision, variant,
//! host, tenant, project, plan), the `user_app.*` feature flags, custom tags
//! with fixed values, and dynamic tags whose value is computed each time a
//! window closes. [`Tags::evaluate`] turns it into the report's `tags` map:
//! every platform tag is present, `""` when unknown, and flags read
//! `"true"` / `"false"`.
//!
//! ```
//! use beacon_meter::wire::{Plan, Tags, UserAppFlags};
//!
//! let tags = Tags::new()
//!     .api_version("0.2.0")
//!     .plan(Plan::Enterprise)
//!     .user_app(UserAppFlags { uses_indexing: true, ..Default::default() })
//!     .custom("myplatform.region", "eu-west-1")?
//!     .dynamic("myplatform.workers", || "8".to_owned())?;
//! let evaluated = tags.evaluate();
//! assert_eq!(evaluated.tags["langgraph.platform.plan"], "enterprise");
//! assert_eq!(evaluated.tags["user_app.uses_indexing"], "true");
//! assert_eq!(evaluated.tags["langgraph.platform.host"], "");
//! assert_eq!(evaluated.tags["myplatform.workers"], "8");
//! # Ok::<(), beacon_meter::wire::TagError>(())
//! ```
//!
//! Layer: wire (pure). May import uuid and `std`; must not read the process
//! environment (the shell passes it in: `crate::config::tags_from_env`) or
//! import the shell.

use super::truncate::{cut_chars, prefix_within};
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use uuid::Uuid;

/// Declares each platform tag's name constant, [`PLATFORM_TAGS`] (in the
/// spec's order, which is this order) and, for the plain-text ones, its
/// setter on [`Tags`].
macro_rules! platform_tags {
    ($($name:ident = $tag:literal $(, $setter:ident)?;)*) => {
        $(#[doc = concat!("`", $tag, "`")] pub const $name: &str = $tag;)*
        /// The platform tags, in the spec's order. Every report carries all of them.
        pub const PLATFORM_TAGS: [&str; [$($name),*].len()] = [$($name),*];
        impl Tags {
            $($(#[doc = concat!("`", $tag, "`")]
            pub fn $setter(self, v: impl Into<String>) -> Tags {
                self.set($name, v)
            })?)*
        }
    };
}

platform_tags! {
    PYTHON_VERSION = "langgraph.python.version", python_version;
    API_VERSION = "langgraph_api.version", api_version;
    REVISION = "langgraph.platform.revision", revision;
    VARIANT = "langgraph.platform.variant", variant;
    HOST = "langgraph.platform.host", host;
    TENANT_ID = "langgraph.platform.tenant_id";
    PROJECT_ID = "langgraph.platform.project_id";
    PLAN = "langgraph.platform.plan";
}

/// The prefix of the feature-flag tags.
pub const USER_APP_PREFIX: &str = "user_app.";
/// The reference platform's one `user_app.` tag outside the
/// [`UserAppFlags`]: whether a loaded graph uses a delta channel, which it
/// computes at each report (`"True"`, `"False"` or `"unknown"`). Allowed
/// as a custom or dynamic tag so a drop-in reports it as the platform does.
pub const USES_DELTA_CHANNEL: &str = "user_app.uses_delta_channel";

/// The environment variables [`Tags::from_lookup`] reads.
pub const ENV_VARS: [&str; 4] = [ENV_REVISION, ENV_VARIANT, ENV_PROJECT_ID, ENV_TENANT_ID];

/// Environment variable: the platform revision.
pub const ENV_REVISION: &str = "LANGSMITH_LANGGRAPH_API_REVISION";
/// Environment variable: the platform variant (`cloud` means SaaS).
pub const ENV_VARIANT: &str = "LANGSMITH_LANGGRAPH_API_VARIANT";
/// Environment variable: the host project id (a UUID; set means BYOC).
pub const ENV_PROJECT_ID: &str = "LANGSMITH_HOST_PROJECT_ID";
/// Environment variable: the tenant id (a UUID).
pub const ENV_TENANT_ID: &str = "LANGSMITH_TENANT_ID";

/// At most this many custom plus dynamic tags.
pub const MAX_EXTRA_TAGS: usize = 64;
/// Longest custom or dynamic tag name, in bytes.
pub const MAX_TAG_NAME_BYTES: usize = 128;
/// Longest tag value, in bytes; longer values are cut (at a character
/// boundary). Together with [`MAX_EXTRA_TAGS`] this keeps tags far below the
/// report size limit.
pub const MAX_TAG_VALUE_BYTES: usize = 256;

/// The subscription plan tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `"enterprise"`: reports are sent with a license key.
    Enterprise,
    /// `"developer"`: no license key.
    Developer,
}

impl Plan {
    /// `Enterprise` when a license key is used, else `Developer`.
    pub fn for_license(license_key_used: bool) -> Plan {
        if license_key_used {
            Plan::Enterprise
        } else {
            Plan::Developer
        }
    }

    /// The tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Enterprise => "enterprise",
            Plan::Developer => "developer",
        }
    }
}

/// The spec's `user_app.*` feature flags. Each is reported as `"true"` or
/// `"false"`; all default to false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserAppFlags {
    /// `user_app.uses_indexing`
    pub uses_indexing: bool,
    /// `user_app.uses_custom_app`
    pub uses_custom_app: bool,
    /// `user_app.uses_custom_auth`
    pub uses_custom_auth: bool,
    /// `user_app.uses_thread_ttl`
    pub uses_thread_ttl: bool,
    /// `user_app.uses_store_ttl`
    pub uses_store_ttl: bool,
}

impl UserAppFlags {
    fn entries(&self) -> [(&'static str, bool); 5] {
        [
            ("user_app.uses_indexing", self.uses_indexing),
            ("user_app.uses_custom_app", self.uses_custom_app),
            ("user_app.uses_custom_auth", self.uses_custom_auth),
            ("user_app.uses_thread_ttl", self.uses_thread_ttl),
            ("user_app.uses_store_ttl", self.uses_store_ttl),
        ]
    }
}

/// Why tags could not be set up, or why a dynamic tag is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// An id variable is set but is not a UUID.
    #[error(
        "{var} is {value:?}, which is not a UUID; set it to the id as a UUID \
         (like 3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1) or unset it"
    )]
    NotAUuid {
        /// The environment variable.
        var: &'static str,
        /// Its value (cut to 100 characters).
        value: String,
    },
    /// An environment variable is not valid UTF-8 (found by
    /// `crate::config::tags_from_env`).
    #[error("{var} is not valid UTF-8; set it to plain text or unset it")]
    NotUnicode {
        /// The environment variable.
        var: &'static str,
    },
    /// A custom or dynamic tag name is empty, too long, or taken by the
    /// platform tags or the `user_app.` flags.
    #[error(
        "tag name {name:?} cannot be used: {reason}; pick a non-empty name of at most \
         128 bytes outside the platform tags and the \"user_app.\" prefix"
    )]
    BadName {
        /// The name (cut to 100 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More than [`MAX_EXTRA_TAGS`] custom and dynamic tags.
    #[error("more than {MAX_EXTRA_TAGS} custom and dynamic tags; drop some")]
    TooMany,
    /// A dynamic tag's closure panicked; the tag was left out.
    #[error(
        "dynamic tag {name:?} panicked while being evaluated ({message}); it was left out \
         of this report: fix the closure"
    )]
    DynamicPanicked {
        /// The tag.
        name: String,
        /// The panic message, if it was a string (cut to 200 characters).
        message: String,
    },
}

/// A dynamic tag's value source; `Debug` shows only that it is a closure.
#[derive(Clone)]
struct DynamicFn(Arc<dyn Fn() -> String + Send + Sync>);

impl fmt::Debug for DynamicFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<closure>")
    }
}

/// The tags of a platform. See the [module docs](self).
///
/// Cheap to clone (dynamic closures are shared), `Send + Sync`.
#[derive(Clone, Debug, Default)]
pub struct Tags {
    platform: BTreeMap<&'static str, String>,
    flags: UserAppFlags,
    custom: BTreeMap<String, String>,
    dynamic: Vec<(String, DynamicFn)>,
}

/// The result of [`Tags::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatedTags {
    /// The report's `tags`.
    pub tags: BTreeMap<String, String>,
    /// Dynamic tags that panicked and were left out.
    pub errors: Vec<TagError>,
}

impl Tags {
    /// No tags set: every platform tag `""`, every flag false.
    pub fn new() -> Tags {
        Tags::default()
    }

    /// Platform tags from `lookup` (an environment): revision
    /// ([`ENV_REVISION`]), variant ([`ENV_VARIANT`]), project id
    /// ([`ENV_PROJECT_ID`]) and tenant id ([`ENV_TENANT_ID`]); the ids must
    /// be UUIDs. Values are trimmed; empty means unset. `host` is `saas` when
    /// the variant is `cloud`, `byoc` when a project id is set, else
    /// `self-hosted`. The plan, versions and flags are left for the caller.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Tags, TagError> {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let uuid = |var: &'static str| -> Result<Option<Uuid>, TagError> {
            get(var)
                .map(|v| {
                    Uuid::try_parse(&v).map_err(|_| TagError::NotAUuid {
                        var,
                        value: cut_chars(&v, 100),
                    })
                })
                .transpose()
        };
        let project = uuid(ENV_PROJECT_ID)?;
        let tenant = uuid(ENV_TENANT_ID)?;
        let variant = get(ENV_VARIANT);
        let host = if variant.as_deref() == Some("cloud") {
            "saas"
        } else if project.is_some() {
            "byoc"
        } else {
            "self-hosted"
        };
        let id = |id: Option<Uuid>| id.map(|id| id.hyphenated().to_string());
        let set = [
            (REVISION, get(ENV_REVISION)),
            (VARIANT, variant),
            (PROJECT_ID, id(project)),
            (TENANT_ID, id(tenant)),
        ];
        Ok(set
            .into_iter()
            .fold(Tags::new().host(host), |tags, (tag, v)| match v {
                Some(v) => tags.set(tag, v),
                None => tags,
            }))
    }

    fn set(mut self, tag: &'static str, value: impl Into<String>) -> Tags {
        self.platform.insert(tag, cut_bytes(value.into()));
        self
    }

    /// `langgraph.platform.tenant_id` (a UUID, written lowercase hyphenated).
    pub fn tenant_id(self, id: Uuid) -> Tags {
        self.set(TENANT_ID, id.hyphenated().to_string())
    }

    /// `langgraph.platform.project_id` (a UUID, written lowercase hyphenated).
    pub fn project_id(self, id: Uuid) -> Tags {
        self.set(PROJECT_ID, id.hyphenated().to_string())
    }

    /// `langgraph.platform.plan`
    pub fn plan(self, plan: Plan) -> Tags {
        self.set(PLAN, plan.as_str())
    }

    /// The `user_app.*` flags.
    pub fn user_app(mut self, flags: UserAppFlags) -> Tags {
        self.flags = flags;
        self
    }

    /// A tag with a fixed value (cut to [`MAX_TAG_VALUE_BYTES`]). Setting
    /// the same custom name again replaces the value.
    pub fn custom(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Tags, TagError> {
        let name = name.into();
        self.check_new_name(&name, true)?;
        self.custom.insert(name, cut_bytes(value.into()));
        Ok(self)
    }

    /// A tag whose value `f` computes each time a window closes (cut to
    /// [`MAX_TAG_VALUE_BYTES`]). If `f` panics, the panic is caught and the
    /// tag is left out of that report (see [`evaluate`](Self::evaluate)).
    pub fn dynamic(
        mut self,
        name: impl Into<String>,
        f: impl Fn() -> String + Send + Sync + 'static,
    ) -> Result<Tags, TagError> {
        let name = name.into();
        self.check_new_name(&name, false)?;
        self.dynamic.push((name, DynamicFn(Arc::new(f))));
        Ok(self)
    }

    fn check_new_name(&self, name: &str, replacing_custom_ok: bool) -> Result<(), TagError> {
        let bad = |reason| {
            Err(TagError::BadName {
                name: cut_chars(name, 100),
                reason,
            })
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        if name.len() > MAX_TAG_NAME_BYTES {
            return bad("it is longer than 128 bytes");
        }
        if PLATFORM_TAGS.contains(&name) {
            return bad("it is a platform tag");
        }
        if name.starts_with(USER_APP_PREFIX) && name != USES_DELTA_CHANNEL {
            return bad("the \"user_app.\" prefix is reserved for the feature flags");
        }
        if self.dynamic.iter().any(|(n, _)| n == name) {
            return bad("a dynamic tag already has this name");
        }
        let is_custom = self.custom.contains_key(name);
        if is_custom && !replacing_custom_ok {
            return bad("a custom tag already has this name");
        }
        if !is_custom && self.custom.len() + self.dynamic.len() >= MAX_EXTRA_TAGS {
            return Err(TagError::TooMany);
        }
        Ok(())
    }

    /// The report's `tags` now: platform tags (`""` when unset), flags,
    /// custom tags, and each dynamic tag's current value. A dynamic closure
    /// that panics does not propagate: its tag is left out and the panic is
    /// returned in [`EvaluatedTags::errors`]. (The process's panic hook
    /// still runs, so the panic message is printed as usual.)
    pub fn evaluate(&self) -> EvaluatedTags {
        let mut tags: BTreeMap<String, String> = PLATFORM_TAGS
            .iter()
            .map(|&t| {
                (
                    t.to_owned(),
                    self.platform.get(t).cloned().unwrap_or_default(),
                )
            })
            .collect();
        for (name, on) in self.flags.entries() {
            tags.insert(name.to_owned(), on.to_string());
        }
        tags.extend(self.custom.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut errors = Vec::new();
        for (name, f) in &self.dynamic {
            match catch_unwind(AssertUnwindSafe(|| (f.0)())) {
                Ok(v) => {
                    tags.insert(name.clone(), cut_bytes(v));
                }
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-string panic".to_owned());
                    errors.push(TagError::DynamicPanicked {
                        name: name.clone(),
                        message: cut_chars(&message, 200),
                    });
                }
            }
        }
        EvaluatedTags { tags, errors }
    }
}

/// `s` cut to [`MAX_TAG_VALUE_BYTES`] at a character boundary.
fn cut_bytes(mut s: String) -> String {
    s.truncate(prefix_within(&s, MAX_TAG_VALUE_BYTES).len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TENANT: &str = "3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1";
    const PROJECT: &str = "c5b5f53a-4716-4326-8967-d4f7f7799735";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn empty_tags_have_every_platform_tag_and_flag() {
        let e = Tags::new().evaluate();
        assert!(e.errors.is_empty());
        assert_eq!(e.tags.len(), 13);
        for t in PLATFORM_TAGS {
            assert_eq!(e.tags[t], "", "{t}");
        }
        for (f, _) in UserAppFlags::default().entries() {
            assert_eq!(e.tags[f], "false", "{f}");
        }
    }

    #[test]
    fn host_rules_from_lookup() {
        let host = |pairs: &[(&str, &str)]| {
            Tags::from_lookup(env(pairs)).unwrap().evaluate().tags[HOST].clone()
        };
        assert_eq!(host(&[]), "self-hosted");
        assert_eq!(host(&[(ENV_VARIANT, "standard")]), "self-hosted");
        assert_eq!(host(&[(ENV_VARIANT, " cloud ")]), "saas");
        assert_eq!(host(&[(ENV_PROJECT_ID, PROJECT)]), "byoc");
        assert_eq!(
            host(&[(ENV_VARIANT, "cloud"), (ENV_PROJECT_ID, PROJECT)]),
            "saas"
        );
        assert_eq!(host(&[(ENV_PROJECT_ID, "   ")]), "self-hosted");
    }

    #[test]
    fn from_lookup_reads_every_variable() {
        let e = Tags::from_lookup(env(&[
            (ENV_REVISION, " abc123\n"),
            (ENV_VARIANT, "standard"),
            (ENV_PROJECT_ID, &PROJECT.to_uppercase()),
            (ENV_TENANT_ID, TENANT),
        ]))
        .unwrap()
        .plan(Plan::for_license(false))
        .evaluate();
        assert_eq!(e.tags[REVISION], "abc123");
        assert_eq!(e.tags[VARIANT], "standard");
        assert_eq!(e.tags[PROJECT_ID], PROJECT, "normalized to lowercase");
        assert_eq!(e.tags[TENANT_ID], TENANT);
        assert_eq!(e.tags[HOST], "byoc");
        assert_eq!(e.tags[PLAN], "developer");
        assert_eq!(e.tags[PYTHON_VERSION], "");
    }

    #[test]
    fn bad_ids_name_the_variable_and_value() {
        for var in [ENV_TENANT_ID, ENV_PROJECT_ID] {
            let err = Tags::from_lookup(env(&[(var, "tenant-42")])).unwrap_err();
            assert_eq!(
                err,
                TagError::NotAUuid {
                    var,
                    value: "tenant-42".to_owned()
                }
            );
            let msg = err.to_string();
            assert!(
                msg.contains(var) && msg.contains("\"tenant-42\"") && msg.contains("UUID"),
                "{msg}"
            );
        }
        let long = "x".repeat(500);
        let err = Tags::from_lookup(env(&[(ENV_TENANT_ID, &long)])).unwrap_err();
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn flags_custom_and_dynamic() {
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = counter.clone();
        let tags = Tags::new()
            .user_app(UserAppFlags {
                uses_indexing: true,
                uses_store_ttl: true,
                ..Default::default()
            })
            .custom("myplatform.region", "eu")
            .unwrap()
            .custom("myplatform.region", "us")
            .unwrap()
            .dynamic("myplatform.calls", move || {
                (c.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1).to_string()
            })
            .unwrap();
        let e1 = tags.evaluate();
        assert_eq!(e1.tags["user_app.uses_indexing"], "true");
        assert_eq!(e1.tags["user_app.uses_custom_app"], "false");
        assert_eq!(e1.tags["user_app.uses_store_ttl"], "true");
        assert_eq!(e1.tags["myplatform.region"], "us");
        assert_eq!(e1.tags["myplatform.calls"], "1");
        assert_eq!(tags.evaluate().tags["myplatform.calls"], "2");
        assert!(format!("{tags:?}").contains("myplatform.calls"));
    }

    #[test]
    fn panicking_dynamic_tag_is_skipped_and_reported() {
        let tags = Tags::new()
            .dynamic("a.ok", || "fine".to_owned())
            .unwrap()
            .dynamic("b.boom", || panic!("no value today"))
            .unwrap()
            .dynamic("c.boom", || std::panic::panic_any(42u8))
            .unwrap();
        let e = tags.evaluate();
        assert_eq!(e.tags["a.ok"], "fine");
        assert!(!e.tags.contains_key("b.boom") && !e.tags.contains_key("c.boom"));
        assert_eq!(
            e.errors,
            vec![
                TagError::DynamicPanicked {
                    name: "b.boom".into(),
                    message: "no value today".into()
                },
                TagError::DynamicPanicked {
                    name: "c.boom".into(),
                    message: "a non-string panic".into()
                },
            ]
        );
        assert!(e.errors[0].to_string().contains("b.boom"));
    }

    #[test]
    fn reserved_duplicate_and_oversized_names_are_rejected() {
        assert!(Tags::new().custom(PLAN, "x").is_err());
        assert!(Tags::new().custom("user_app.uses_indexing", "x").is_err());
        assert!(Tags::new().custom("user_app.anything_else", "x").is_err());
        // The reference's one extra flag, computed by the platform.
        let delta = Tags::new().dynamic(USES_DELTA_CHANNEL, || "unknown".into());
        assert_eq!(
            delta.unwrap().evaluate().tags[USES_DELTA_CHANNEL],
            "unknown"
        );
        assert!(Tags::new().dynamic(HOST, String::new).is_err());
        assert!(Tags::new().custom("", "x").is_err());
        assert!(Tags::new().custom("n".repeat(129), "x").is_err());
        let t = Tags::new().dynamic("d", String::new).unwrap();
        assert!(t.clone().custom("d", "x").is_err());
        assert!(t.dynamic("d", String::new).is_err());
        let t = Tags::new().custom("c", "x").unwrap();
        assert!(t.dynamic("c", String::new).is_err());
        let mut t = Tags::new();
        for i in 0..MAX_EXTRA_TAGS {
            t = t.custom(format!("t{i}"), "v").unwrap();
        }
        assert_eq!(
            t.clone().custom("one.more", "v").unwrap_err(),
            TagError::TooMany
        );
        assert!(t.custom("t0", "replace is fine").is_ok());
    }

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        let v = "é".repeat(200); // 400 bytes
        let e = Tags::new()
            .revision(v.clone())
            .dynamic("d", move || v.clone())
            .unwrap()
            .evaluate();
        for t in [REVISION, "d"] {
            assert_eq!(e.tags[t].len(), MAX_TAG_VALUE_BYTES);
            assert!(e.tags[t].chars().all(|c| c == 'é'));
        }
    }

    #[test]
    fn tags_are_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Tags>();
    }
}
