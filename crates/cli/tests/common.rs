//! Helpers shared by the CLI's integration tests.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A running `beacon-meter sink --json` process and the base URL it printed.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its stdout, kept open so that the sink never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// The URL from its first line (`{"event": "listening", "url": ...}`).
    pub url: String,
}

impl Running {
    /// Starts `command` (a `beacon-meter sink ... --json` run; its stderr as
    /// the caller set it) and reads the first line it prints.
    pub fn start(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the sink binary starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the sink prints a line");
        let first: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let url = first["url"].as_str().expect("a url").to_owned();
        Running {
            child,
            _stdout: stdout,
            url,
        }
    }
}
