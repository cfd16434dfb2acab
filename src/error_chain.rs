//! An error's whole chain as one line, for logs and messages in every layer
//! above the core. (Cutting text at a character boundary is pure, so it
//! lives in [`crate::wire::truncate`].) May import: std.

/// An error and all its sources, `: `-separated; a source whose text the
/// chain already ends with (a wrapper that repeats its cause) is left out.
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
}
