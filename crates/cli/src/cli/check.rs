//! `beacon-meter check`: is this deployment ready to report? Runs the
//! probes of [`crate::doctor`] on the process environment and
//! renders what they found, as text or (`--json`) as the report itself.
//! The exit status is the verdict's: 0 all good, 2 configuration error,
//! 3 unreachable, 4 credential rejected.

use super::args::CheckArgs;
use super::term::Term;
use crate::doctor::{
    CheckReport, CredentialKind, CredentialOutcome, Origin, Outcome, PathFinding, Verdict,
    check_env,
};
use beacon_meter::config::ENV_WIRE;
use std::io::{self, Write};

/// Runs the check on the process environment, prints it (text or JSON) and
/// returns the exit status.
pub async fn run(args: &CheckArgs, term: Term, out: &mut dyn Write) -> io::Result<u8> {
    let spinner = term.spinner(!args.json, "reading the configuration");
    let report = check_env(&|what| spinner.set_message(what)).await;
    drop(spinner);
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(io::Error::other)?;
        writeln!(out, "{json}")?;
    } else {
        render(&report, term, out)?;
    }
    out.flush()?;
    Ok(report.exit_code)
}

fn render(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    if let Some(problem) = &r.config_error {
        let label = term.bad("Configuration error:");
        writeln!(out, "{label} {}", problem.message)?;
        return result_line(r, term, out);
    }
    render_settings(r, term, out)?;
    let egress = term.bold("Egress allowlist (for the firewall)");
    writeln!(out, "\n{egress}")?;
    if let Some(why) = &r.offline {
        writeln!(
            out,
            "  none: the deployment is offline ({why}); nothing is sent and no network call \
             was made"
        )?;
        return result_line(r, term, out);
    }
    if r.egress.is_empty() {
        writeln!(out, "  none: no credential is set")?;
    }
    for e in &r.egress {
        let target = format!("{}:{}", e.host, e.port);
        let purpose = term.dim(&e.purpose.join("; "));
        writeln!(out, "  {:<5}  {target:<32}  {purpose}", e.scheme)?;
    }
    render_hosts(r, term, out)?;
    render_report_paths(r, term, out)?;
    render_credentials(r, term, out)?;
    result_line(r, term, out)
}

fn render_settings(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    let title = term.bold("Configuration (from the environment; secrets redacted)");
    writeln!(out, "{title}")?;
    for s in &r.settings {
        let value = s.value.as_deref().unwrap_or("(unset)");
        let default = (s.origin == Origin::Default).then(|| "default".to_owned());
        let extra: Vec<String> = default.into_iter().chain(s.note.clone()).collect();
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!("  {}", term.dim(&format!("({})", extra.join("; "))))
        };
        writeln!(out, "  {:<28} {value}{extra}", s.variable)?;
    }
    let tags: Vec<String> = r
        .tags
        .iter()
        .filter(|(k, v)| !v.is_empty() && !k.starts_with(beacon_meter::wire::tags::USER_APP_PREFIX))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !tags.is_empty() {
        writeln!(out, "\n{}", term.bold("Tags (from the environment)"))?;
        for t in tags {
            writeln!(out, "  {t}")?;
        }
    }
    Ok(())
}

fn render_hosts(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    for h in &r.hosts {
        let title = term.bold(&format!("Host {}://{}:{}", h.scheme, h.host, h.port));
        writeln!(out, "\n{title}")?;
        if let Some(p) = &h.proxy {
            writeln!(
                out,
                "  requests go through the proxy {p} (*_PROXY); DNS, TCP and TLS below are \
                 tried directly, for information"
            )?;
        }
        for s in &h.steps {
            let step = format!("{:?}", s.step).to_uppercase();
            writeln!(out, "  {}  {step:<4}  {}", mark(s.outcome, term), s.detail)?;
        }
    }
    Ok(())
}

fn render_report_paths(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    for p in &r.report_paths {
        let (label, dialect) = match p.kind {
            CredentialKind::License => ("license", format!("{} dialect, {ENV_WIRE}", p.dialect)),
            CredentialKind::ApiKey => ("API key", "the same in both dialects".to_owned()),
        };
        let title = term.bold(&format!("Reports by {label}: POST {} ({dialect})", p.url));
        writeln!(out, "\n{title}")?;
        for probe in &p.probes {
            let outcome = match probe.finding {
                PathFinding::Exists => Outcome::Ok,
                PathFinding::Missing | PathFinding::Failed => Outcome::Failed,
                PathFinding::Other | PathFinding::Skipped => Outcome::Skipped,
            };
            let whose = probe
                .dialect
                .map(|d| format!(" ({d} path)"))
                .unwrap_or_default();
            let mark = mark(outcome, term);
            writeln!(out, "  {mark}  GET {}{whose}: {}", probe.url, probe.detail)?;
        }
        let body = serde_json::to_string_pretty(&p.body).map_err(io::Error::other)?;
        writeln!(out, "  body of the next report (credential redacted):")?;
        for line in body.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

fn render_credentials(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    if r.credentials.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{}", term.bold("Credentials"))?;
    for c in &r.credentials {
        let outcome = match c.outcome {
            CredentialOutcome::Valid => Outcome::Ok,
            CredentialOutcome::Skipped => Outcome::Skipped,
            _ => Outcome::Failed,
        };
        let label = match c.kind {
            CredentialKind::License => "license",
            CredentialKind::ApiKey => "API key",
        };
        let mark = mark(outcome, term);
        let (key, var, detail) = (&c.key, c.variable, &c.detail);
        writeln!(out, "  {mark}  {label} {key} ({var}): {detail}")?;
    }
    Ok(())
}

fn result_line(r: &CheckReport, term: Term, out: &mut dyn Write) -> io::Result<()> {
    let painted = match r.verdict {
        Verdict::Ok => term.good("all good"),
        Verdict::ConfigError => term.bad("configuration error"),
        Verdict::Unreachable => term.bad("unreachable"),
        Verdict::CredentialRejected => term.bad("credential rejected"),
    };
    writeln!(out)?;
    if r.verdict != Verdict::Ok && r.config_error.is_none() {
        for p in &r.problems {
            writeln!(out, "{} {p}", term.bad("problem:"))?;
        }
    }
    let offline = r
        .offline
        .as_ref()
        .map_or("", |_| " (offline: no network checks)");
    writeln!(out, "Result: {painted}{offline} (exit {})", r.exit_code)
}

fn mark(o: Outcome, term: Term) -> String {
    match o {
        Outcome::Ok => term.good("ok  "),
        Outcome::Failed => term.bad("FAIL"),
        Outcome::Skipped => term.dim("skip"),
    }
}
