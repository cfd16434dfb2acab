//! How output looks: colors and spinners only for a person at a terminal.
//!
//! Color is used only when stdout is a terminal, `NO_COLOR` is unset and
//! `TERM` is not `dumb`. A spinner is shown (on stderr) only when both
//! stdout and stderr are terminals. Piped or redirected output is plain
//! text, line by line.

use indicatif::{ProgressBar, ProgressFinish, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// What the terminal can show. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// ANSI colors on stdout.
    pub color: bool,
    /// stdout and stderr are both terminals: spinners and live status are
    /// welcome.
    pub interactive: bool,
}

impl Term {
    /// Looks at the real stdout, stderr and environment.
    pub fn detect() -> Term {
        let stdout = std::io::stdout().is_terminal();
        let stderr = std::io::stderr().is_terminal();
        Term {
            color: stdout && color_allowed(),
            interactive: stdout && stderr,
        }
    }

    /// Plain output: no color, no spinner (pipes, files, tests).
    #[cfg(test)]
    pub fn plain() -> Term {
        Term {
            color: false,
            interactive: false,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Green: something worked.
    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Red: something failed.
    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }

    /// Yellow: worth a look.
    pub fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Dim: skipped or secondary.
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    /// Bold: a heading.
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    /// A spinner on stderr with `message`, cleared when dropped; hidden
    /// (every call a no-op) unless `wanted` (not for `--json`) and
    /// [interactive](Self::interactive).
    pub fn spinner(&self, wanted: bool, message: &str) -> ProgressBar {
        if !(wanted && self.interactive) {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_finish(ProgressFinish::AndClear);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }
}

/// True unless `NO_COLOR` is set (to anything) or `TERM` is `dumb`.
pub(crate) fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_has_no_escape_codes() {
        let t = Term::plain();
        assert_eq!(t.good("ok"), "ok");
        assert_eq!(t.bad("FAIL"), "FAIL");
        let c = Term {
            color: true,
            interactive: false,
        };
        assert_eq!(c.bad("FAIL"), "\x1b[31mFAIL\x1b[0m");
        // no spinner when not interactive
        assert!(t.spinner(true, "x").is_hidden());
    }
}
