//! The import rules of the layers, checked on the source so they cannot rot.
//!
//! Each module's `//!` doc states its rule in one line; this test enforces
//! the part a reader can check mechanically:
//!
//! * the core (`src/meter/`, `src/sync.rs`) uses nothing of tokio, reqwest,
//!   hyper, axum, serde_json, tracing or chrono, and nothing of the crate
//!   beyond itself;
//! * `src/wire/` (pure data and serialization) uses no tokio, reqwest,
//!   hyper, axum, `std::fs`, `std::net`, `std::env`, tracing_subscriber or
//!   rusqlite, and none of the shell (client, reporter, spool, sink, cli,
//!   config, clock, oplog);
//! * `src/config.rs` uses no HTTP crate, runtime or server, and nothing of
//!   the client, reporter or sink;
//! * `src/client/` uses no reporter, spool, sink or config, and no server
//!   crate; `src/spool/` no runtime, HTTP, client, reporter, sink or config;
//!   `src/reporter/` no sink; `src/sink/` no HTTP client, client, reporter,
//!   spool or config;
//! * the leaf helpers (`jwt.rs`, `secret.rs`, `text.rs`, `urls.rs`) use
//!   nothing of the crate;
//! * nothing below the CLI uses the egress check, the demo or the CLI, and
//!   nothing outside `src/cli/` (and the thin `src/main.rs`) uses the CLI.
//!
//! A "use" is any path in a `use` item (braces expanded) and any path
//! written in code (`tokio::spawn(..)`), comments, doc comments and a
//! file's `#[cfg(test)] mod` left out. The test reads the source tree only
//! (`CARGO_MANIFEST_DIR/src`).

use std::path::{Path, PathBuf};

/// One rule: files it covers, and the path prefixes they must not use.
struct Rule {
    name: &'static str,
    covers: fn(&str) -> bool,
    forbidden: &'static [&'static [&'static str]],
}

/// The async runtime and the HTTP crates.
const ASYNC_HTTP: &[&str] = &["tokio", "reqwest", "hyper", "axum"];

/// The shell's modules (and the CLI).
const SHELL: &[&str] = &[
    "crate::client",
    "crate::reporter",
    "crate::spool",
    "crate::sink",
    "crate::cli",
    "crate::config",
    "crate::clock",
    "crate::oplog",
];

/// What sits above the shell: the egress check, the demo and the CLI.
const ABOVE_SHELL: &[&str] = &["crate::doctor", "crate::demo", "crate::cli"];

const RULES: &[Rule] = &[
    Rule {
        name: "the core (meter, sync) knows nothing of async, HTTP, JSON, logs or dates",
        covers: |f| f.starts_with("meter/") || f == "sync.rs",
        forbidden: &[
            ASYNC_HTTP,
            &["serde_json", "tracing", "chrono", "crate::wire"],
            SHELL,
        ],
    },
    Rule {
        name: "wire is pure data and serialization: no I/O, environment or shell",
        covers: |f| f.starts_with("wire/"),
        forbidden: &[
            ASYNC_HTTP,
            &[
                "std::fs",
                "std::net",
                "std::env",
                "tracing_subscriber",
                "rusqlite",
            ],
            SHELL,
        ],
    },
    Rule {
        name: "config reads the environment: no HTTP client, runtime, server or shell above it",
        covers: |f| f == "config.rs",
        forbidden: &[
            ASYNC_HTTP,
            &["crate::client", "crate::reporter", "crate::sink"],
            ABOVE_SHELL,
        ],
    },
    Rule {
        name: "the client speaks HTTP only: no reporter, spool, sink, config or server crate",
        covers: |f| f.starts_with("client/"),
        forbidden: &[
            &["axum", "rusqlite"],
            &[
                "crate::reporter",
                "crate::spool",
                "crate::sink",
                "crate::config",
            ],
            ABOVE_SHELL,
        ],
    },
    Rule {
        name: "the spool is files only: no runtime, HTTP, client, reporter, sink or config",
        covers: |f| f.starts_with("spool/"),
        forbidden: &[
            ASYNC_HTTP,
            &[
                "crate::client",
                "crate::reporter",
                "crate::sink",
                "crate::config",
            ],
            ABOVE_SHELL,
        ],
    },
    Rule {
        name: "the reporter does not reach the sink or any HTTP server crate",
        covers: |f| f.starts_with("reporter/"),
        forbidden: &[&["axum", "rusqlite", "crate::sink"], ABOVE_SHELL],
    },
    Rule {
        name: "the sink is a server on the wire types: no HTTP client, client, reporter, spool or config",
        covers: |f| f.starts_with("sink/"),
        forbidden: &[
            &["reqwest"],
            &[
                "crate::client",
                "crate::reporter",
                "crate::spool",
                "crate::config",
            ],
            ABOVE_SHELL,
        ],
    },
    Rule {
        name: "the leaf helpers (jwt, secret, text, urls) import nothing of the crate",
        covers: |f| matches!(f, "jwt.rs" | "secret.rs" | "text.rs" | "urls.rs"),
        forbidden: &[&["crate"], ASYNC_HTTP],
    },
    Rule {
        name: "only the CLI (and main.rs) uses the CLI",
        covers: |f| !f.starts_with("cli/") && f != "main.rs",
        forbidden: &[&["crate::cli", "beacon_meter::cli", "super::cli"]],
    },
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code alone: comments (doc comments included) and the contents of
/// string and character literals are blanked, keeping line breaks, so that
/// neither text nor a quoted path counts as a use and line numbers stay
/// right.
fn strip_comments(src: &str) -> String {
    let blank =
        |s: &str| -> String { s.chars().map(|c| if c == '\n' { c } else { ' ' }).collect() };
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        let rest = &src[i..];
        let len = if let Some(len) = raw_or_char_literal(rest) {
            len
        } else if c == '"' {
            string_len(rest)
        } else if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |n| n + 2)
        } else {
            out.push(c);
            i += c.len_utf8();
            continue;
        };
        out.push_str(&blank(&rest[..len]));
        i += len;
    }
    out
}

/// The length of the string literal starting `s` (at its `"`).
fn string_len(s: &str) -> usize {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// The length of a raw string (`r"…"`, `r#"…"#`) or a quote character
/// literal (`'"'`) starting `s`, so that their quotes do not open a string.
fn raw_or_char_literal(s: &str) -> Option<usize> {
    if s.starts_with("'\"'") {
        return Some(3);
    }
    if s.starts_with("'\\\"'") {
        return Some(4);
    }
    let hashes = s
        .strip_prefix('r')?
        .chars()
        .take_while(|&c| c == '#')
        .count();
    let open = 1 + hashes;
    if s[open..].starts_with('"') {
        let close = format!("\"{}", "#".repeat(hashes));
        s[open + 1..]
            .find(&close)
            .map(|n| open + 1 + n + close.len())
    } else {
        None
    }
}

/// Every path a `use` tree names, braces expanded: `a::{b, c::{d}}` gives
/// `a::b`, `a::c::d`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let leaf = tree.split(" as ").next().unwrap_or(tree).trim();
        if !leaf.is_empty() {
            out.push(format!("{prefix}{leaf}"));
        }
        return;
    };
    let head = format!("{prefix}{}", &tree[..open]);
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&head, &inner[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    expand(&head, &inner[start..], out);
}

/// The paths `code` uses, each with its line: `use` items expanded, and
/// every `a::b::c` written elsewhere.
fn used_paths(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while let Some(n) = code[i..].find(|c: char| is_ident(c)) {
        let start = i + n;
        let before = code[..start].chars().next_back();
        let len = code[start..]
            .find(|c: char| !(is_ident(c) || c == ':'))
            .unwrap_or(code.len() - start);
        let word = &code[start..start + len];
        i = start + len.max(1);
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        if word == "use" && code[i..].starts_with(char::is_whitespace) {
            let end = code[i..].find(';').map_or(code.len(), |e| i + e);
            let mut paths = Vec::new();
            expand("", &code[i..end], &mut paths);
            out.extend(paths.into_iter().map(|p| (line_of(start), p)));
            i = end;
        } else if word.contains("::") {
            out.push((line_of(start), word.trim_end_matches(':').to_owned()));
        }
    }
    out
}

/// The production code of a file: all before its `#[cfg(test)] mod`
/// (unit tests may start a server or read a config in any layer).
fn production(source: &str) -> &str {
    let mut at = 0;
    for line in source.split_inclusive('\n') {
        let rest = &source[at + line.len()..];
        if line.trim() == "#[cfg(test)]" && rest.trim_start().starts_with("mod ") {
            return &source[..at];
        }
        at += line.len();
    }
    source
}

/// True if `path` is `prefix` or lies under it (segment-wise).
fn under(path: &str, prefix: &str) -> bool {
    let path = path.strip_prefix("::").unwrap_or(path);
    path == prefix || path.starts_with(&format!("{prefix}::"))
}

/// The breaches of `RULES` in the tree below `src`, one line each.
fn breaches(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .expect("below src")
            .to_string_lossy()
            .replace('\\', "/");
        let source = std::fs::read_to_string(&file).expect("a readable source file");
        let code = strip_comments(production(&source));
        let paths = used_paths(&code);
        for rule in RULES.iter().filter(|r| (r.covers)(&rel)) {
            for (line, path) in &paths {
                if let Some(bad) = rule.forbidden.concat().iter().find(|f| under(path, f)) {
                    found.push(format!(
                        "src/{rel}:{line}: uses {path} ({bad}): {}",
                        rule.name
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn every_layer_keeps_its_import_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = breaches(&src);
    assert!(
        found.is_empty(),
        "layer rules broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_use_trees_inline_paths_and_skips_comments() {
    let code = strip_comments(
        "//! tokio::spawn in a doc\nuse std::{fs, net::TcpStream as T, sync::{Arc}};\n\
         /* crate::cli */ fn f() { tokio::spawn(async {}); let s = \"// not a comment\"; }\n\
         pub use crate::{cli::run, wire};\n",
    );
    let paths: Vec<String> = used_paths(&code)
        .into_iter()
        .map(|(l, p)| format!("{l}:{p}"))
        .collect();
    assert_eq!(
        paths,
        [
            "2:std::fs",
            "2:std::net::TcpStream",
            "2:std::sync::Arc",
            "3:tokio::spawn",
            "4:crate::cli::run",
            "4:crate::wire",
        ]
    );
    assert!(under("crate::cli::run", "crate::cli"));
    assert!(!under("crate::client", "crate::cli"));
    assert!(under("::tokio::spawn", "tokio"));
}

#[test]
fn the_rules_catch_a_breach_in_each_layer() {
    let src = std::env::temp_dir().join(format!("beacon-layers-{}", std::process::id()));
    let files = [
        ("spool/queue.rs", "use crate::config::Config;\n"),
        ("config.rs", "fn f() { reqwest::get(\"x\"); }\n"),
        ("client/http.rs", "use crate::spool::Spool;\n"),
        ("sink/routes.rs", "use crate::client::HttpClient;\n"),
        ("reporter/mod.rs", "use crate::sink::Sink;\n"),
        ("jwt.rs", "use crate::secret::Secret;\n"),
        ("doctor/mod.rs", "use crate::cli::run;\n"),
        ("wire/tags.rs", "use std::env::var;\n"),
        ("meter/mod.rs", "use tokio::spawn;\n"),
        // Allowed: the spool on wire, the sink on jwt, config on the spool's names.
        ("spool/window.rs", "use crate::wire::ReportBody;\n"),
        ("sink/state.rs", "use crate::jwt::issue;\n"),
        ("urls.rs", "use url::Url;\n"),
        // Unit tests may use anything.
        (
            "client/apikey.rs",
            "use reqwest::Client;\n#[cfg(test)]\nmod tests {\n    use axum::Router;\n}\n",
        ),
    ];
    for (name, code) in files {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, code).unwrap();
    }
    let found = breaches(&src);
    std::fs::remove_dir_all(&src).unwrap();
    let files: Vec<&str> = found.iter().map(|b| b.split(':').next().unwrap()).collect();
    assert_eq!(
        files,
        [
            "src/client/http.rs",
            "src/config.rs",
            "src/doctor/mod.rs",
            "src/jwt.rs",
            "src/meter/mod.rs",
            "src/reporter/mod.rs",
            "src/sink/routes.rs",
            "src/spool/queue.rs",
            "src/wire/tags.rs",
        ],
        "{found:#?}"
    );
}
