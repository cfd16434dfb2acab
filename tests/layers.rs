//! The two layer rules inside this crate that the compiler does not check.
//!
//! The crate boundaries and features check the rest: with no features the
//! crate builds without tokio, reqwest, serde, chrono or tracing, so the
//! core (`src/meter/`, `src/sync.rs`) cannot use them; with `wire` alone it
//! builds without tokio, reqwest or tracing, so the wire format cannot use
//! them; the local Beacon and the CLI are other crates, so nothing here can
//! use them (`.ci/run` checks both feature sets). What no build can see:
//!
//! * the core uses nothing of the rest of the crate (with the default
//!   features `crate::wire` or `crate::reporter` would compile);
//! * `src/wire/` does no I/O (`std::fs`, `std::net`, `std::env`,
//!   `std::process`) and uses no shell module.
//!
//! A "use" is a path in a `use` item (braces expanded) or written in code;
//! comments and a file's `#[cfg(test)] mod` are left out.

use std::path::{Path, PathBuf};

/// The shell's modules: what neither the core nor the wire format may use.
const SHELL: &[&str] = &[
    "crate::client",
    "crate::reporter",
    "crate::spool",
    "crate::config",
    "crate::clock",
    "crate::oplog",
    "crate::urls",
    "crate::jwt",
    "crate::error_chain",
];

/// What the core may not use beyond the shell.
const NOT_CORE: &[&str] = &["crate::wire", "crate::secret"];

/// I/O and the process environment.
const IO: &[&str] = &["std::fs", "std::net", "std::env", "std::process"];

/// The rule covering `file` (a path below `src/`): its name and what it
/// forbids.
fn rule(file: &str) -> Option<(&'static str, Vec<&'static str>)> {
    if file.starts_with("meter/") || file == "sync.rs" {
        let forbidden = [SHELL, NOT_CORE].concat();
        Some(("the core uses nothing of the rest of the crate", forbidden))
    } else if file.starts_with("wire/") {
        Some(("wire does no I/O and uses no shell", [SHELL, IO].concat()))
    } else {
        None
    }
}

/// The production code of a file, comments removed: all before its
/// `#[cfg(test)] mod`, each line cut at `//`.
fn production(source: &str) -> String {
    let mut code = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let next_is_mod = lines
            .peek()
            .is_some_and(|l| l.trim_start().starts_with("mod "));
        if line.trim() == "#[cfg(test)]" && next_is_mod {
            break;
        }
        code.push_str(line.split("//").next().unwrap_or_default());
        code.push('\n');
    }
    code
}

/// Every path `code` uses: each `use` item's tree expanded, and every
/// `a::b` written elsewhere.
fn used_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in code.split(';') {
        let item = item.trim_start();
        let tree = item.strip_prefix("pub ").unwrap_or(item);
        match tree.strip_prefix("use ") {
            Some(tree) => expand("", &tree.split_whitespace().collect::<String>(), &mut out),
            None => out.extend(
                item.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .filter(|w| w.contains("::"))
                    .map(str::to_owned),
            ),
        }
    }
    out
}

/// Appends the paths of the use tree `tree` (no spaces), under `prefix`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let Some(open) = tree.find('{') else {
        out.push(format!("{prefix}{tree}"));
        return;
    };
    let head = format!("{prefix}{}", &tree[..open]);
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !inner[start..i].is_empty() {
                    expand(&head, &inner[start..i], out);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
}

/// True if `path` is `prefix` or lies under it, segment-wise.
fn under(path: &str, prefix: &str) -> bool {
    let path = path.strip_prefix("::").unwrap_or(path);
    path == prefix || path.starts_with(&format!("{prefix}::"))
}

/// The breaches in the tree below `src`, one line each.
fn breaches(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Some((name, forbidden)) = rule(&rel) else {
            continue;
        };
        let code = production(&std::fs::read_to_string(&file).unwrap());
        for path in used_paths(&code) {
            if let Some(bad) = forbidden.iter().find(|f| under(&path, f)) {
                found.push(format!("src/{rel}: uses {path} ({bad}): {name}"));
            }
        }
    }
    found
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_core_and_the_wire_format_keep_their_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = breaches(&src);
    assert!(found.is_empty(), "layer breaches:\n{}", found.join("\n"));
}

#[test]
fn use_trees_and_inline_paths_are_seen_and_comments_and_tests_are_not() {
    let code = production(
        "use std::{fs::{self, File}, io};\n// crate::client::x\npub use crate::spool::Spool;\n\
         fn f() { std::env::var(\"X\"); } // std::net\n#[cfg(test)]\nmod tests { use std::net; }\n",
    );
    let paths = used_paths(&code);
    for p in [
        "std::fs::self",
        "std::fs::File",
        "std::io",
        "crate::spool::Spool",
        "std::env::var",
    ] {
        assert!(paths.iter().any(|q| q == p), "{p} not in {paths:?}");
    }
    assert!(
        !paths
            .iter()
            .any(|q| q.starts_with("crate::client") || q.starts_with("std::net"))
    );
}

#[test]
fn each_rule_catches_its_breach() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("meter")).unwrap();
    std::fs::create_dir_all(src.join("wire")).unwrap();
    std::fs::write(src.join("meter/a.rs"), "use crate::wire::Tags;\n").unwrap();
    std::fs::write(src.join("sync.rs"), "fn f() { crate::reporter::x(); }\n").unwrap();
    std::fs::write(src.join("wire/b.rs"), "use std::{fs, io};\n").unwrap();
    std::fs::write(src.join("wire/c.rs"), "use crate::config::Config;\n").unwrap();
    std::fs::write(src.join("config.rs"), "use std::fs;\nuse crate::client;\n").unwrap();
    let found = breaches(src);
    assert_eq!(found.len(), 4, "{found:#?}");
    for file in ["meter/a.rs", "sync.rs", "wire/b.rs", "wire/c.rs"] {
        assert!(
            found.iter().any(|f| f.starts_with(&format!("src/{file}:"))),
            "{file}: {found:#?}"
        );
    }
}
