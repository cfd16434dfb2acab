//! Cutting text to a size without splitting a character: the one home of
//! UTF-8 truncation for tag values, log records and error messages.
//!
//! Layer: wire (pure). Imports nothing but `std`.

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The first `n` characters of `s`, and whether anything was cut.
pub fn first_chars(s: &str, n: usize) -> (&str, bool) {
    match s.char_indices().nth(n) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

/// The first `n` characters of `s`, with `…` if anything was cut.
pub fn cut_chars(s: &str, n: usize) -> String {
    match first_chars(s, n) {
        (head, true) => format!("{head}…"),
        (whole, false) => whole.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(prefix_within("héllo", 2), "h");
        assert_eq!(prefix_within("héllo", 3), "hé");
        assert_eq!(prefix_within("héllo", 60), "héllo");
        assert_eq!(prefix_within("", 0), "");
        assert_eq!(cut_chars("héllo", 2), "hé…");
        assert_eq!(cut_chars("héllo", 5), "héllo");
        assert_eq!(first_chars("héllo", 2), ("hé", true));
        assert_eq!(first_chars("héllo", 5), ("héllo", false));
    }
}
