//! Credentials that must never reach a log, a `Debug` output or an error.
//! May import: std only.

use std::fmt;

/// A license key or API key.
///
/// `Debug` and `Display` print only a redacted form: the first four and
/// last four characters of a long key (`lcl_…9f2a`), or `…` for a short one.
/// The only way to the full value is [`Secret::expose`], which is called
/// where the key must go on the wire, and nowhere else.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The full credential, for the request that must carry it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short form safe to show: `lcl_…9f2a` for keys of 16 characters or
    /// more, otherwise `…` alone.
    pub fn redacted(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() >= 16 {
            let head: String = chars[..4].iter().collect();
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("{head}…{tail}")
        } else {
            "…".to_owned()
        }
    }

    /// True if the credential is an online license key (`lcl_` prefix).
    /// Any other license key is an offline, air-gapped license.
    pub fn is_online_license(&self) -> bool {
        self.0.starts_with("lcl_")
    }

    /// Replaces every occurrence of this secret in `text` with its redacted
    /// form. Used on text that may echo a request back (server answers).
    ///
    /// Letter case is ignored (ASCII): a key echoed into a host name, say
    /// the target of a refused redirect, comes back lower-cased.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_owned();
        }
        // ASCII lower-casing keeps every byte offset (and char boundary),
        // so matches in the lowered text are matches in `text`.
        let lowered = text.to_ascii_lowercase();
        let needle = self.0.to_ascii_lowercase();
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (at, _) in lowered.match_indices(&needle) {
            out.push_str(&text[last..at]);
            out.push_str(&self.redacted());
            last = at + needle.len();
        }
        out.push_str(&text[last..]);
        out
    }
}

/// PEM text (certificates, a public key), which `Debug` shows by size
/// only: it is long, and what was given may be a credential pasted into
/// the wrong setting. Derefs to its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem(pub Vec<u8>);

impl From<Vec<u8>> for Pem {
    fn from(bytes: Vec<u8>) -> Self {
        Pem(bytes)
    }
}

impl std::ops::Deref for Pem {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_key() {
        let key = "lcl_0123456789abcdef9f2a";
        let s = Secret::new(key);
        for shown in [format!("{s:?}"), format!("{s}"), s.redacted()] {
            assert!(!shown.contains(key), "{shown}");
            assert!(!shown.contains("0123456789"), "{shown}");
        }
        assert_eq!(s.redacted(), "lcl_…9f2a");
        assert_eq!(Secret::new("short").redacted(), "…");
        assert_eq!(s.expose(), key);
        assert_eq!(s.scrub(&format!("bad key {key}!")), "bad key lcl_…9f2a!");
        assert_eq!(
            s.scrub("to http://LCL_0123456789ABCDEF9F2A.example, é lcl_0123456789abcdef9f2a"),
            "to http://lcl_…9f2a.example, é lcl_…9f2a"
        );
    }

    #[test]
    fn online_license_prefix() {
        assert!(Secret::new("lcl_abc").is_online_license());
        assert!(!Secret::new("offline-abc").is_online_license());
    }
}
