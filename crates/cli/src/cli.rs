//! The `beacon-meter` command line.
//!
//! `src/main.rs` calls [`main`]. This module parses arguments and renders;
//! the work (probes, previews, the demo harness) is in library
//! modules ([`crate::doctor`], [`crate::demo`]) with typed
//! results. The layout follows hyperfine's:
//!
//! * [`args`]: the clap definitions, help texts and examples, and nothing
//!   else;
//! * one module per subcommand, each taking its parsed arguments, a
//!   [`Term`] and an output stream, and returning a typed error:
//!   [`demo`], [`sink`], [`check`], [`preview`], [`spool`];
//! * this module: tracing set-up, the tokio runtime for the subcommands that
//!   need one, dispatch, and turning errors into a message and an
//!   [exit status](exit). `anyhow` is used here and in `preview`, nowhere
//!   else.
//!
//! Adding a subcommand (e.g. `demo`): a variant with its `Args` struct in
//! [`args::Command`], a module `src/cli/demo.rs` with a `run` function, and
//! one arm in [`run`].
//!
//! Output rules: results go to stdout, notes, warnings and logs to stderr;
//! color and spinners only when stdout is a terminal ([`Term`]); `--json`
//! wherever a program would read the output; secrets only ever redacted;
//! control characters shown, never sent ([`clean`]).

pub mod args;
pub mod check;
pub mod clean;
pub mod demo;
pub mod preview;
pub mod sink;
pub mod spool;
pub mod term;

pub use args::Cli;
pub use term::Term;

use anyhow::Context as _;
use args::Command;
use clap::Parser as _;
use std::io::{IsTerminal as _, Write};
use std::process::ExitCode;

/// The exit statuses of `beacon-meter` besides success (0) and `check`'s
/// ([`crate::doctor::Verdict::exit_code`]: 3 unreachable, 4
/// credential rejected).
pub mod exit {
    /// Any failure without a more specific status.
    pub const FAILURE: u8 = 1;
    /// A configuration (environment) or usage (command line) error.
    pub const CONFIG: u8 = crate::doctor::Verdict::ConfigError.exit_code();
}

/// Runs `beacon-meter` with the process's arguments: parses them (printing
/// help, the version or a usage error as clap does), sets up logging, runs
/// the subcommand and returns its exit status. Errors are printed to stderr
/// as `error: ...`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                // The reader went away (`| head`): nothing left to say.
                return ExitCode::from(exit::FAILURE);
            }
            let mut stderr = clean::Clean::new(std::io::stderr(), false);
            let _ = writeln!(stderr, "error: {}", message(&e));
            ExitCode::from(exit_status(&e))
        }
    }
}

/// Runs a parsed command line, writing results to stdout.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let term = Term::detect();
    // Everything printed passes through `Clean`: much of it came from a
    // client or a file (see `clean`).
    let mut out = clean::Clean::new(std::io::stdout().lock(), term.color);
    let code = match cli.command {
        Command::Demo(args) => runtime()?
            .block_on(demo::run(&args, term, &mut out))
            .map(|()| 0)?,
        Command::Sink(args) => match &args.action {
            Some(args::SinkAction::Usage(usage)) => {
                sink::usage(usage, term, &mut out).map(|()| 0)?
            }
            Some(args::SinkAction::Metrics(metrics)) => {
                sink::metrics(metrics, term, &mut out).map(|()| 0)?
            }
            None => runtime()?
                .block_on(sink::run(&args, term, &mut out))
                .map(|_| 0)?,
        },
        Command::Check(args) => runtime()?.block_on(check::run(&args, term, &mut out))?,
        Command::Preview(args) => preview::run(&args, term, &mut out).map(|()| 0)?,
        Command::Spool(args) => spool::run(&args, term, &mut out).map(|()| 0)?,
    };
    Ok(ExitCode::from(code))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime (threads or timers); check the process limits")
}

/// Logs to stderr: `RUST_LOG` if set, else `warn` plus `-v` (info),
/// `-vv` (debug) or `-vvv` (trace) for this crate. Other crates stay at
/// `warn` unless `RUST_LOG` says otherwise. Called once.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let fallback = match verbose {
        0 => "warn",
        1 => "warn,beacon_meter=info",
        2 => "warn,beacon_meter=debug",
        _ => "warn,beacon_meter=trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            let _ = writeln!(
                std::io::stderr(),
                "warning: RUST_LOG is not a valid log filter ({e}); using {fallback:?} \
                 (example: RUST_LOG=beacon_meter=debug)"
            );
            EnvFilter::new(fallback)
        }),
        _ => EnvFilter::new(fallback),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && term::color_allowed())
        .try_init();
}

/// The error and its causes, `: `-separated, skipping a cause whose text
/// the message already contains.
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let next = cause.to_string();
        if text.contains(&next) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&next);
    }
    text
}

/// The exit status for an error: [`exit::CONFIG`] for a bad environment,
/// else [`exit::FAILURE`].
fn exit_status(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<beacon_meter::config::ConfigError>()
            || cause.is::<beacon_meter::wire::TagError>()
        {
            return exit::CONFIG;
        }
        if let Some(s) = cause.downcast_ref::<sink::SinkCommandError>() {
            return s.exit_status();
        }
    }
    exit::FAILURE
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_skip_repeated_causes() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(inner).context("writing x: disk on fire");
        assert_eq!(message(&e), "writing x: disk on fire");
        let e = anyhow::Error::new(std::io::Error::other("b")).context("a");
        assert_eq!(message(&e), "a: b");
    }

    #[test]
    fn config_errors_exit_2() {
        let e = anyhow::Error::new(beacon_meter::config::ConfigError::BadBool {
            origin: beacon_meter::config::Origin::Var("BEACON_OFFLINE"),
            value: "x".into(),
        });
        assert_eq!(exit_status(&e), exit::CONFIG);
        assert_eq!(exit_status(&anyhow::anyhow!("other")), exit::FAILURE);
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing");
        assert!(is_broken_pipe(&pipe));
    }
}
