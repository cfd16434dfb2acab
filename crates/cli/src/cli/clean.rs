//! Output that cannot drive the terminal. Much of what the CLI prints came
//! from a client or a file: tags and measure names a sink accepted, spool
//! file names and contents, error messages quoting them. A control
//! character in them would reach the terminal raw, and `\x1b[2J` clears
//! it, `\x1b]0;…\x07` retitles it, `\r` overwrites a line with another.
//!
//! So every byte written to stdout (and the final `error:` line on stderr)
//! passes through [`Clean`], which shows each control character as the
//! text of its JSON escape (`\u001b`, `\u000d`, `\u009b`) instead of
//! sending it:
//!
//! * C0 controls other than `\n` and `\t`, DEL, and the C1 controls
//!   (U+0080 to U+009F, which some terminals also obey);
//! * ESC too, except the color sequences [`Term`](super::Term) paints with
//!   (`ESC [ n m` for `n` in [`OWN_SGR`]) when it paints at all.
//!
//! JSON's form, so that `--json` output and exports stay valid JSON that
//! means the same: a raw control character can only be inside a string
//! there (serde_json already escapes C0 ones), where `\u009b` is U+009B.
//!
//! A client could still color its own text with one of those six codes,
//! which changes how text looks, never what it says or where it goes.
//! Sequences are recognized across `write` calls: an escape split between
//! two writes is judged once both halves are in.

use std::io::{self, Write};

/// The SGR parameters [`Term`](super::Term) uses: reset, bold, dim, red,
/// green, yellow.
pub const OWN_SGR: [&[u8]; 6] = [b"0", b"1", b"2", b"31", b"32", b"33"];

/// Longest SGR sequence [`Clean`] waits for before it escapes the ESC.
const MAX_SGR: usize = 8;

/// A writer that shows control characters instead of sending them (see
/// the [module docs](self)).
pub struct Clean<W: Write> {
    inner: W,
    /// Whether [`OWN_SGR`] color sequences pass (the output is painted).
    colors: bool,
    /// The start of an escape or a UTF-8 sequence not yet judged: empty,
    /// or one that [`judge`] answered [`Verdict::Wait`] for.
    pending: Vec<u8>,
}

/// What to do with the start of the pending bytes.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Too few bytes to tell: wait for more.
    Wait,
    /// Send the first `n` bytes as they are.
    Pass(usize),
    /// Show the first `n` bytes as `text`.
    Escape(usize, String),
}

impl<W: Write> Clean<W> {
    /// Wraps `inner`; `colors` lets [`OWN_SGR`] sequences through.
    pub fn new(inner: W, colors: bool) -> Self {
        Clean {
            inner,
            colors,
            pending: Vec::new(),
        }
    }

    /// Judges the pending bytes until they are all sent or shown, or wait.
    fn drain(&mut self, out: &mut Vec<u8>, at_end: bool) {
        while !self.pending.is_empty() {
            match judge(&self.pending, self.colors, at_end) {
                Verdict::Wait => return,
                Verdict::Pass(n) => {
                    out.extend_from_slice(&self.pending[..n]);
                    self.pending.drain(..n);
                }
                Verdict::Escape(n, text) => {
                    out.extend_from_slice(text.as_bytes());
                    self.pending.drain(..n);
                }
            }
        }
    }
}

impl<W: Write> Write for Clean<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 8);
        for &b in buf {
            let plain = matches!(b, b'\n' | b'\t' | 0x20..0x7f) || (b >= 0x80 && b != 0xc2);
            if plain && self.pending.is_empty() {
                out.push(b);
                continue;
            }
            self.pending.push(b);
            self.drain(&mut out, false);
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        self.drain(&mut out, true);
        self.inner.write_all(&out)?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Clean<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// The verdict on the start of `p` (not empty). `at_end`: no more bytes
/// will come, so nothing may wait.
fn judge(p: &[u8], colors: bool, at_end: bool) -> Verdict {
    let wait = |otherwise: Verdict| if at_end { otherwise } else { Verdict::Wait };
    let hex = |b: u8| Verdict::Escape(1, format!("\\u{b:04x}"));
    match p[0] {
        b'\n' | b'\t' => Verdict::Pass(1),
        0x1b if colors => match own_sgr(p) {
            Some(Some(n)) => Verdict::Pass(n),
            Some(None) => wait(hex(0x1b)),
            None => hex(0x1b),
        },
        b @ (0..0x20 | 0x7f) => hex(b),
        0xc2 => match p.get(1) {
            None => wait(Verdict::Pass(1)),
            Some(&c1 @ 0x80..=0x9f) => Verdict::Escape(2, format!("\\u{c1:04x}")),
            Some(_) => Verdict::Pass(1),
        },
        _ => Verdict::Pass(1),
    }
}

/// For `p` starting with ESC: `Some(Some(n))` if its first `n` bytes are
/// one of [`OWN_SGR`]'s sequences, `Some(None)` if they may still become
/// one, `None` if they cannot.
fn own_sgr(p: &[u8]) -> Option<Option<usize>> {
    let Some(&second) = p.get(1) else {
        return Some(None);
    };
    if second != b'[' {
        return None;
    }
    let params = &p[2..];
    match params.iter().position(|&b| b == b'm') {
        Some(end) => OWN_SGR.contains(&&params[..end]).then_some(Some(end + 3)),
        None if params.len() < MAX_SGR && params.iter().all(u8::is_ascii_digit) => Some(None),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `input` written in pieces of `step` bytes, then flushed.
    fn cleaned(input: &[u8], colors: bool, step: usize) -> String {
        let mut out = Vec::new();
        {
            let mut w = Clean::new(&mut out, colors);
            for piece in input.chunks(step) {
                w.write_all(piece).unwrap();
            }
            w.flush().unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn control_characters_are_shown_not_sent_however_the_writes_are_cut() {
        let attack = "tag \x1b[2J\x1b[31mPWNED\x1b]0;title\x07 \r\u{9b}6n end\x7f\n";
        for step in [1, 2, 3, 100] {
            assert_eq!(
                cleaned(attack.as_bytes(), false, step),
                "tag \\u001b[2J\\u001b[31mPWNED\\u001b]0;title\\u0007 \\u000d\\u009b6n end\\u007f\n",
                "pieces of {step}"
            );
            // With colors on, only the client's `31m` passes (one of the
            // codes the CLI paints with); the screen clear and the title
            // do not.
            assert_eq!(
                cleaned(attack.as_bytes(), true, step),
                "tag \\u001b[2J\x1b[31mPWNED\\u001b]0;title\\u0007 \\u000d\\u009b6n end\\u007f\n",
                "pieces of {step}"
            );
        }
    }

    #[test]
    fn text_tabs_newlines_unicode_and_own_colors_pass_unchanged() {
        let painted = "\x1b[1mheading\x1b[0m\n\tcaf\u{e9} \u{2713} \u{1f600} \x1b[32mok\x1b[0m\n";
        for step in [1, 5, 100] {
            assert_eq!(cleaned(painted.as_bytes(), true, step), painted);
        }
        // Without colors even the CLI's own codes are shown (it never
        // paints then).
        assert_eq!(cleaned(b"\x1b[0m", false, 1), "\\u001b[0m");
        // An escape cut off by the end of the output is shown, not held.
        assert_eq!(cleaned(b"end\x1b[3", true, 1), "end\\u001b[3");
    }

    #[test]
    fn json_stays_valid_and_means_the_same() {
        let value = serde_json::json!({"tag": "a\u{9b}b\u{7f}c\u{1b}[2J"});
        let text = cleaned(value.to_string().as_bytes(), true, 1);
        assert!(text.is_ascii(), "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            value
        );
    }
}
