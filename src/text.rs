//! Small text helpers shared by every layer above the core: an error's
//! whole chain, and cutting text at a character boundary. May import: std.

/// An error and all its sources, `: `-separated; a source whose text the
/// chain already ends with (a wrapper that repeats its cause) is left out.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// The longest beginning of `s` of at most `max` bytes that ends on a
/// character boundary.
// Its callers are the copies it replaces in `wire/tags.rs` (`cut_bytes`),
// `wire/logs.rs` (`cut_string`) and `spool/mod.rs` (`cap_utf8`), switched
// when those modules' rework merges; until then only its tests call it.
#[allow(dead_code)]
pub(crate) fn floor_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    // A char is at most 4 bytes: a boundary is found within 3 steps.
    let end = (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[..end]
}

/// The first `n` characters of `s`, with `…` if anything was cut.
pub(crate) fn cut_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot save")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("cannot save: {0}")]
        struct Repeating(#[source] std::io::Error);
        let outer = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&outer), "cannot save: disk on fire");
        let repeating = Repeating(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&repeating), "cannot save: disk on fire");
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(floor_utf8("héllo", 2), "h");
        assert_eq!(floor_utf8("héllo", 3), "hé");
        assert_eq!(floor_utf8("héllo", 99), "héllo");
        assert_eq!(floor_utf8("🦀🦀", 7), "🦀");
        assert_eq!(floor_utf8("🦀", 0), "");
        assert_eq!(cut_chars("héllo", 2), "hé…");
        assert_eq!(cut_chars("héllo", 5), "héllo");
    }
}
