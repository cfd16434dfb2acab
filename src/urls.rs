//! The one URL rule of the crate, and the URL helpers around it: `https`
//! anywhere, plain `http` only to a loopback host. Used by the
//! configuration, the client and the sink alike. May import: `url`.

use url::Url;

/// True if `url`'s host is a loopback host: an address in 127.0.0.0/8 or
/// `::1`, or `localhost` (any letter case).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// True if requests may go to `url`: `https://` with a host, or `http://`
/// to a [loopback](is_loopback) host.
pub(crate) fn is_secure(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host_str().is_some_and(|h| !h.is_empty()),
        "http" => is_loopback(url),
        _ => false,
    }
}

/// `base` with `segments` appended to its path, every segment of `base`'s
/// own path kept (`https://h/proxy` + `auth` = `https://h/proxy/auth`);
/// query and fragment dropped. `None` if `base` cannot take a path (such as
/// `mailto:`).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Option<Url> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(segments);
    Some(url)
}

/// `url` safe to show: no user name, password, query or fragment.
pub(crate) fn display(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have credentials at all.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://beacon.example.com/",
            "http://127.0.0.1:8080/",
            "http://127.9.9.9/",
            "http://[::1]:1/",
            "http://localhost:9/x",
            "http://LOCALHOST/",
        ] {
            assert!(is_secure(&url(ok)), "{ok}");
        }
        for bad in [
            "http://beacon.example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.example.com/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
        ] {
            assert!(!is_secure(&url(bad)), "{bad}");
        }
    }

    #[test]
    fn join_keeps_the_base_path() {
        let j = |b: &str| join(&url(b), &["v1", "beacon", "verify"]).unwrap();
        assert_eq!(
            j("https://b.example.com").as_str(),
            "https://b.example.com/v1/beacon/verify"
        );
        assert_eq!(
            j("https://b.example.com/prefix/?q=1#f").as_str(),
            "https://b.example.com/prefix/v1/beacon/verify"
        );
        assert_eq!(
            j("https://b.example.com/a/b").as_str(),
            "https://b.example.com/a/b/v1/beacon/verify"
        );
        assert_eq!(join(&url("mailto:a@b.c"), &["x"]), None);
    }

    #[test]
    fn display_drops_credentials_and_query() {
        assert_eq!(
            display(&url("https://user:pw@h.example.com/p?key=lcl_x#f")),
            "https://h.example.com/p"
        );
    }
}
