//! Hostile environments: every configuration variable set to nothing,
//! blanks, non-UTF-8 bytes, huge values, bad numbers and flags, URLs that
//! do not parse or are plain http to another host or carry a password, CA
//! "certificates" that are missing, directories, devices or not PEM, and
//! ids that are not UUIDs. `Config::from_lookup` and `Tags::from_lookup`
//! must answer `Ok` or an error that names a variable that was set, never
//! panic, and never show a credential or a URL password.
#![cfg(all(feature = "reporter", unix))]

use beacon_meter::config::{
    Config, ENV_API_KEY, ENV_AUTH_ENDPOINT, ENV_BEACON_URL, ENV_CA_CERT, ENV_CHECKPOINT,
    ENV_CONTROL_PLANE_API_KEY, ENV_ENDPOINT, ENV_INTERVAL, ENV_LEGACY_API_KEY, ENV_LEGACY_ENDPOINT,
    ENV_LICENSE_KEY, ENV_OFFLINE, ENV_SPOOL_DIR, ENV_TIMEOUT, ENV_WIRE, MAX_SECRET_BYTES,
    MAX_VALUE_BYTES,
};
use beacon_meter::wire::Tags;
use beacon_meter::wire::tags::{ENV_PROJECT_ID, ENV_REVISION, ENV_TENANT_ID, ENV_VARIANT};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

const LICENSE: &str = "lcl_SECRETLICENSE0123456789abcdef";
const API_KEY: &str = "lsv2_SECRETAPIKEYfedcba9876543210";
/// Put in URLs as a password: must never be shown.
const URL_PASSWORD: &str = "PASSW0RDinURL77";

const VARS: [&str; 10] = [
    ENV_LICENSE_KEY,
    ENV_API_KEY,
    ENV_AUTH_ENDPOINT,
    ENV_BEACON_URL,
    ENV_INTERVAL,
    ENV_TIMEOUT,
    ENV_OFFLINE,
    ENV_SPOOL_DIR,
    ENV_CA_CERT,
    ENV_CHECKPOINT,
];

/// The variables read only when those before them in a precedence list are
/// unset, and the dialect.
const MORE_VARS: [&str; 5] = [
    ENV_CONTROL_PLANE_API_KEY,
    ENV_LEGACY_API_KEY,
    ENV_LEGACY_ENDPOINT,
    ENV_ENDPOINT,
    ENV_WIRE,
];

/// Files the CA-certificate variable may point at.
struct Files {
    _dir: tempfile::TempDir,
    good: PathBuf,
    paths: Vec<String>,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let good = p("good.pem");
    std::fs::write(
        &good,
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fm\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(p("empty.pem"), "").unwrap();
    std::fs::write(p("binary.pem"), [0xffu8, 0, 1, 2, 0x80, 0xfe]).unwrap();
    std::fs::write(
        p("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(
        p("bad-base64.pem"),
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(p("open.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    // Larger than any CA file read (sparse: costs no disk).
    std::fs::File::create(p("huge.pem"))
        .unwrap()
        .set_len(64 * 1024 * 1024)
        .unwrap();
    std::fs::create_dir(p("a-directory.pem")).unwrap();
    let fifo = p("fifo.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    #[cfg(unix)]
    std::os::unix::fs::symlink(p("missing.pem"), p("dangling.pem")).unwrap();
    let mut paths: Vec<String> = [
        "good.pem",
        "empty.pem",
        "binary.pem",
        "key.pem",
        "bad-base64.pem",
        "open.pem",
        "huge.pem",
        "a-directory.pem",
        "dangling.pem",
        "missing.pem",
    ]
    .iter()
    .map(|n| p(n).display().to_string())
    .collect();
    if made {
        paths.push(fifo.display().to_string());
    }
    paths.extend([
        "/dev/null".into(),
        "/dev/zero".into(),
        "relative/x.pem".into(),
    ]);
    Files {
        _dir: dir,
        good,
        paths,
    }
}

/// Values any variable may get: unset, empty, blanks, random text, non-UTF-8
/// bytes, more bytes than allowed.
fn common() -> BoxedStrategy<Option<OsString>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(OsString::new())),
        1 => "[ \t\r\n\u{a0}\u{2003}]{1,6}".prop_map(|s| Some(OsString::from(s))),
        2 => "\\PC{0,40}".prop_map(|s| Some(OsString::from(s))),
        1 => ".{0,20}".prop_map(|s| Some(OsString::from(s))),
        1 => (prop::collection::vec(any::<u8>(), 0..20), any::<u8>())
            .prop_map(|(mut v, b)| {
                v.push(0x80 | (b & 0x3f)); // a lone continuation byte: never UTF-8
                Some(OsString::from_vec(v))
            }),
        1 => (MAX_VALUE_BYTES - 2..MAX_VALUE_BYTES + 40)
            .prop_map(|n| Some(OsString::from("9".repeat(n)))),
    ]
    .boxed()
}

fn os(s: impl Into<String>) -> Option<OsString> {
    Some(OsString::from(s.into()))
}

/// A credential variable: the key, well-formed or mangled (whitespace,
/// control characters, non-UTF-8, too long). Never anything without the
/// key in it, so a leak can be told from a coincidence.
fn secret(key: &'static str) -> BoxedStrategy<Option<OsString>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(OsString::new())),
        3 => Just(os(key)),
        2 => ("[ \t\r\n]{0,3}", "[ \t\r\n]{0,3}").prop_map(move |(a, b)| os(format!("{a}{key}{b}"))),
        2 => (prop::sample::select(vec![" ", "\t", "\u{7}", "\u{0}", "\u{2028}", "\u{a0}", "\n"]),
              0..key.len())
            .prop_map(move |(c, at)| os(format!("{}{c}{}", &key[..at], &key[at..]))),
        1 => Just(os(format!("{key} {key}"))),
        1 => (0..key.len()).prop_map(move |at| {
            let mut v = key.as_bytes().to_vec();
            v.insert(at, 0xff);
            Some(OsString::from_vec(v))
        }),
        1 => (MAX_SECRET_BYTES / key.len() - 1..MAX_SECRET_BYTES / key.len() + 3)
            .prop_map(move |n| os(key.repeat(n))),
        1 => Just(os(format!("offline_{key}"))),
    ]
    .boxed()
}

/// An endpoint variable.
fn url() -> BoxedStrategy<Option<OsString>> {
    let pw = URL_PASSWORD;
    let hostile: Vec<String> = vec![
        "https://beacon.example.com".into(),
        "https://beacon.example.com:8443/prefix/".into(),
        "http://127.0.0.1:9000".into(),
        "http://[::1]:8080/x".into(),
        "http://localhost".into(),
        "http://beacon.example.com".into(),
        "http://10.0.0.1".into(),
        "http://192.168.1.1:80".into(),
        "http://[::2]".into(),
        "http://127.0.0.1.nip.io".into(),
        "http://localhost.evil.example".into(),
        "http://0x7f.0.0.1".into(),
        "http://2130706433".into(),
        "http://0177.0.0.1".into(),
        "http://[::ffff:127.0.0.1]".into(),
        "http://[::ffff:10.0.0.1]".into(),
        "http://0.0.0.0".into(),
        "https://".into(),
        "https:///path".into(),
        "https://:443".into(),
        "beacon.example.com".into(),
        "//beacon.example.com".into(),
        "ftp://beacon.example.com".into(),
        "file:///etc/passwd".into(),
        "javascript:alert(1)".into(),
        "data:text/plain,hello".into(),
        "mailto:ops@example.com".into(),
        "https://beacon.example.com/?q=1".into(),
        "https://beacon.example.com/#frag".into(),
        "https://exa mple.com".into(),
        "https://[::1".into(),
        "https://example.com:99999".into(),
        "https://%00.example.com".into(),
        "https://xn--.example.com".into(),
        "https://ex\u{0}ample.com".into(),
        format!("https://user:{pw}@beacon.example.com/"),
        format!("https://:{pw}@beacon.example.com"),
        format!("https://{pw}@beacon.example.com"),
        format!("http://user:{pw}@evil.example.com"),
        format!("http://user:{pw}@127.0.0.1:1"),
        format!("ftp://user:{pw}@host"),
        format!("https:user:{pw}@beacon.example.com"),
        format!("https:/user:{pw}@beacon.example.com"),
        format!("https:\\\\user:{pw}@beacon.example.com"),
        format!("HTTPS://USER:{pw}@BEACON.EXAMPLE.COM"),
        format!("  https://user:{pw}@beacon.example.com  "),
        format!("https://user:{pw}@beacon.example.com/?token={pw}"),
        format!("https://user%40x:{pw}@beacon.example.com"),
        format!("https://user:{pw}@[::1"),
        format!("https://user:{pw}@exa mple.com"),
        format!("https://user:{pw}@"),
        format!("http://user:{pw}@"),
        format!("https://user:{pw}@/path"),
        format!("http://user:{pw}@:80"),
        format!("https://a:b@c:{pw}@beacon.example.com"),
    ];
    prop_oneof![
        2 => common(),
        3 => prop::sample::select(hostile).prop_map(os),
        1 => ("[a-z]{1,8}", "[ -~]{0,30}").prop_map(|(s, rest)| os(format!("{s}://{rest}"))),
    ]
    .boxed()
}

fn seconds() -> BoxedStrategy<Option<OsString>> {
    prop_oneof![
        2 => common(),
        2 => (0u64..100_000).prop_map(|n| os(n.to_string())),
        2 => prop::sample::select(vec![
            "-1", "0", "+5", "5.0", "1e3", "0x10", " 7 ", "07", "٣", "５", "18446744073709551615",
            "18446744073709551616", "99999999999999999999999999999", "NaN", "inf", "5s", "1_000",
        ])
        .prop_map(os),
    ]
    .boxed()
}

fn boolean() -> BoxedStrategy<Option<OsString>> {
    prop_oneof![
        2 => common(),
        2 => prop::sample::select(vec![
            "true", "false", "1", "0", "yes", "no", "TRUE", "Yes", "on", "off", "2", "y", "n",
            "tru", "truee", "İ", "ＴＲＵＥ",
        ])
        .prop_map(os),
    ]
    .boxed()
}

fn ca_cert(paths: Vec<String>) -> BoxedStrategy<Option<OsString>> {
    prop_oneof![
        2 => common(),
        3 => prop::sample::select(paths).prop_map(os),
    ]
    .boxed()
}

fn env(files: &Files) -> impl Strategy<Value = HashMap<&'static str, OsString>> {
    let spool = prop_oneof![
        2 => common(),
        1 => Just(os("/tmp/beacon spool/ü")),
    ];
    let first = (
        secret(LICENSE),
        secret(API_KEY),
        url(),
        url(),
        seconds(),
        seconds(),
        boolean(),
        spool,
        ca_cert(files.paths.clone()),
        seconds(),
    )
        .prop_map(|(l, a, au, b, i, t, o, s, c, cp)| {
            VARS.iter()
                .zip([l, a, au, b, i, t, o, s, c, cp])
                .filter_map(|(k, v)| v.map(|v| (*k, v)))
                .collect::<HashMap<_, _>>()
        });
    let more = (secret(API_KEY), secret(API_KEY), url(), url(), dialect()).prop_map(
        |(cp, legacy, le, e, w)| {
            MORE_VARS
                .iter()
                .zip([cp, legacy, le, e, w])
                .filter_map(|(k, v)| v.map(|v| (*k, v)))
                .collect::<HashMap<_, _>>()
        },
    );
    (first, more).prop_map(|(mut a, b)| {
        a.extend(b);
        a
    })
}

/// The wire-dialect variable: a good name in any case, or anything.
fn dialect() -> BoxedStrategy<Option<OsString>> {
    prop_oneof![
        2 => common(),
        1 => prop::sample::select(vec!["published", "langgraph-api", " LangGraph_API ", "PUBLISHED"])
            .prop_map(os),
    ]
    .boxed()
}

/// The secret fragments that must not be shown: 8 characters of either
/// key's secret part (any case), or the URL password.
fn leaks(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    for key in [LICENSE, API_KEY] {
        let secret = &key[key.find('_').unwrap() + 1..];
        for w in secret.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap().to_ascii_lowercase();
            if lower.contains(&w) {
                return Some(w);
            }
        }
    }
    lower
        .contains(&URL_PASSWORD.to_ascii_lowercase())
        .then(|| URL_PASSWORD.to_owned())
}

fn runner() -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

#[test]
fn any_environment_gives_a_config_or_an_error_naming_a_set_variable() {
    let files = files();
    let mut runner = runner();
    runner
        .run(&env(&files), |vars| {
            let result = Config::from_lookup(|k| vars.get(k).cloned());
            match &result {
                Ok(config) => {
                    let shown = format!("{config:?} {config:#?}");
                    if let Some(w) = leaks(&shown) {
                        return Err(TestCaseError::fail(format!("{w:?} in {shown}")));
                    }
                    // What was accepted is what was asked for.
                    if let Some(k) = config.license_key() {
                        prop_assert!(k.expose().contains(LICENSE), "{:?}", k);
                    }
                    if let Some(c) = config.ca_cert() {
                        prop_assert_eq!(&c.path, &files.good);
                    }
                    for url in [config.beacon_url(), config.auth_endpoint()] {
                        prop_assert!(url.username().is_empty() && url.password().is_none());
                        let host = url.host_str().unwrap_or("");
                        let loopback = host
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                            || host.eq_ignore_ascii_case("localhost");
                        prop_assert!(
                            url.scheme() == "https" || (url.scheme() == "http" && loopback),
                            "{}",
                            url
                        );
                    }
                }
                Err(e) => {
                    let Some(var) = e.var() else {
                        return Err(TestCaseError::fail(format!("{e} names no variable")));
                    };
                    prop_assert!(
                        vars.contains_key(var),
                        "{:?} names {}, which was not set; set: {:?}",
                        e,
                        var,
                        vars.keys().collect::<Vec<_>>()
                    );
                    let text = format!("{e} {e:?}");
                    prop_assert!(e.to_string().contains(var), "{}", e);
                    if let Some(w) = leaks(&text) {
                        return Err(TestCaseError::fail(format!("{w:?} in {text}")));
                    }
                    prop_assert!(e.to_string().len() < 1200, "{}", e);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_tag_environment_gives_tags_or_an_error_naming_the_id_variable() {
    let id = prop_oneof![
        Just(None),
        Just(Some("3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1".to_owned())),
        Just(Some(" 3A1C2B6F-4430-4B92-8A5B-79B8B567BBC1\n".to_owned())),
        Just(Some("3a1c2b6f44304b928a5b79b8b567bbc1".to_owned())),
        Just(Some("{3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1}".to_owned())),
        Just(Some(
            "urn:uuid:3a1c2b6f-4430-4b92-8a5b-79b8b567bbc1".to_owned()
        )),
        Just(Some("3a1c2b6f-4430-4b92-8a5b-79b8b567bbc".to_owned())),
        Just(Some("3a1c2b6f-4430-4b92-8a5b-79b8b567bbcg".to_owned())),
        Just(Some("00000000-0000-0000-0000-000000000000".to_owned())),
        "\\PC{0,60}".prop_map(Some),
        (MAX_VALUE_BYTES..MAX_VALUE_BYTES + 10).prop_map(|n| Some("é".repeat(n))),
    ];
    let text = prop_oneof![
        Just(None),
        "\\PC{0,40}".prop_map(Some),
        (1000usize..5000).prop_map(|n| Some("v".repeat(n))),
    ];
    let mut runner = runner();
    runner
        .run(
            &(id.clone(), id, text.clone(), text),
            |(project, tenant, revision, variant)| {
                let vars: HashMap<&str, String> = [
                    (ENV_PROJECT_ID, project),
                    (ENV_TENANT_ID, tenant),
                    (ENV_REVISION, revision),
                    (ENV_VARIANT, variant),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
                match Tags::from_lookup(|k| vars.get(k).cloned()) {
                    Ok(tags) => {
                        let evaluated = tags.evaluate();
                        prop_assert!(evaluated.errors.is_empty(), "{:?}", evaluated.errors);
                    }
                    Err(e) => {
                        let text = e.to_string();
                        let named = [ENV_PROJECT_ID, ENV_TENANT_ID]
                            .into_iter()
                            .find(|v| text.contains(v));
                        prop_assert!(
                            named.is_some_and(|v| vars.contains_key(v)),
                            "{} (set: {:?})",
                            text,
                            vars.keys().collect::<Vec<_>>()
                        );
                        prop_assert!(text.len() < 1200, "{}", text);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

/// One variable at a time, each with its own hostile values, the others
/// unset: an error (if any) must name exactly that variable.
#[test]
fn a_single_bad_variable_is_the_one_named() {
    let files = files();
    let per_var: Vec<(&str, BoxedStrategy<Option<OsString>>)> = vec![
        (ENV_LICENSE_KEY, secret(LICENSE)),
        (ENV_API_KEY, secret(API_KEY)),
        (ENV_AUTH_ENDPOINT, url()),
        (ENV_BEACON_URL, url()),
        (ENV_INTERVAL, seconds()),
        (ENV_TIMEOUT, seconds()),
        (ENV_OFFLINE, boolean()),
        (ENV_SPOOL_DIR, common()),
        (ENV_CA_CERT, ca_cert(files.paths.clone())),
        (ENV_CHECKPOINT, seconds()),
        (ENV_CONTROL_PLANE_API_KEY, secret(API_KEY)),
        (ENV_LEGACY_API_KEY, secret(API_KEY)),
        (ENV_LEGACY_ENDPOINT, url()),
        (ENV_ENDPOINT, url()),
        (ENV_WIRE, dialect()),
    ];
    for (var, strategy) in per_var {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&strategy, |value| {
                let result = Config::from_lookup(|k| (k == var).then(|| value.clone()).flatten());
                if let Err(e) = result {
                    prop_assert_eq!(e.var(), Some(var));
                    let text = format!("{e} {e:?}");
                    if let Some(w) = leaks(&text) {
                        return Err(TestCaseError::fail(format!("{w:?} in {text}")));
                    }
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{var}: {e}"));
    }
}
