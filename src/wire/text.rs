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

/// The first `n` characters of `s`, with `…` if anything was cut.
pub fn cut_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
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
    }
}
