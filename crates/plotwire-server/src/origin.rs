//! The websocket Origin check (spec §2.8): same-origin and header-less requests pass,
//! everything else must match the allowlist.

use axum::http::HeaderMap;

/// Normalises an allowlist entry: `host` becomes `host:80`, `host:port` and `*` stay.
fn normalize_entry(entry: &str) -> String {
    let e = entry.trim().to_ascii_lowercase();
    if e == "*" || e.contains(':') {
        e
    } else {
        format!("{e}:80")
    }
}

/// The `host:port` of an Origin header value (`:80` added when there is no port).
fn origin_netloc(origin: &str) -> Option<String> {
    let rest = origin.split_once("://").map(|(_, r)| r)?;
    let netloc = rest.split('/').next()?.to_ascii_lowercase();
    if netloc.is_empty() {
        return None;
    }
    if netloc
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
    {
        Some(netloc)
    } else {
        Some(format!("{netloc}:80"))
    }
}

/// Bokeh's `match_host`: `*` matches any label or port; the label counts must match.
fn match_host(host: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let split = |s: &str| -> (String, Option<String>) {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
            None => (s.to_owned(), None),
        }
    };
    let (h, hp) = split(host);
    let (p, pp) = split(pattern);
    if let (Some(hp), Some(pp)) = (&hp, &pp) {
        if pp != "*" && hp != pp {
            return false;
        }
    }
    let hl: Vec<&str> = h.split('.').collect();
    let pl: Vec<&str> = p.split('.').collect();
    hl.len() == pl.len() && hl.iter().zip(&pl).all(|(a, b)| *b == "*" || a == b)
}

/// The allowlist in force: the configured entries, or `localhost:<port>`.
pub fn allowlist(configured: &[String], port: u16) -> Vec<String> {
    if configured.is_empty() {
        vec![format!("localhost:{port}")]
    } else {
        configured.iter().map(|e| normalize_entry(e)).collect()
    }
}

/// Whether a websocket upgrade with these headers may proceed. `host` is the host the
/// client addressed: the Host header, or a trusted proxy's `X-Forwarded-Host` with
/// `--use-xheaders` ([`crate::forwarded::ClientView::host`]).
pub fn origin_allowed(headers: &HeaderMap, host: Option<&str>, allowlist: &[String]) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match get("sec-fetch-site") {
        Some("same-origin") | Some("none") => return true,
        Some(_) => {}
        None => {
            let Some(origin) = get("origin") else {
                return true;
            };
            if let (Some(netloc), Some(host)) = (origin_netloc(origin), host) {
                let host = host.to_ascii_lowercase();
                let host = if host.contains(':') {
                    host
                } else {
                    format!("{host}:80")
                };
                if netloc == host {
                    return true;
                }
            }
        }
    }
    let Some(netloc) = get("origin").and_then(origin_netloc) else {
        return false;
    };
    allowlist.iter().any(|pattern| match_host(&netloc, pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn origin_allowed(headers: &HeaderMap, allowlist: &[String]) -> bool {
        let host = headers.get("host").and_then(|v| v.to_str().ok());
        super::origin_allowed(headers, host, allowlist)
    }

    #[test]
    fn rules_follow_the_origin_probe() {
        let allow = allowlist(&[], 5110);
        assert!(origin_allowed(&headers(&[]), &allow));
        assert!(origin_allowed(
            &headers(&[
                ("origin", "http://127.0.0.1:5110"),
                ("host", "127.0.0.1:5110")
            ]),
            &allow
        ));
        assert!(!origin_allowed(
            &headers(&[
                ("origin", "http://evil.example:5110"),
                ("host", "127.0.0.1:5110")
            ]),
            &allow
        ));
        assert!(origin_allowed(
            &headers(&[
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "same-origin")
            ]),
            &allow
        ));
        assert!(!origin_allowed(
            &headers(&[
                ("origin", "http://127.0.0.1:5110"),
                ("sec-fetch-site", "cross-site")
            ]),
            &allow
        ));
        assert!(origin_allowed(
            &headers(&[
                ("origin", "http://localhost:5110"),
                ("sec-fetch-site", "cross-site")
            ]),
            &allow
        ));
    }

    #[test]
    fn the_given_host_stands_for_the_host_header() {
        let allow = allowlist(&[], 5006);
        let h = headers(&[
            ("origin", "https://plots.example.com"),
            ("host", "127.0.0.1:5006"),
        ]);
        assert!(!super::origin_allowed(&h, Some("127.0.0.1:5006"), &allow));
        assert!(super::origin_allowed(&h, Some("plots.example.com"), &allow));
        assert!(!super::origin_allowed(&h, None, &allow));
    }

    #[test]
    fn wildcards_and_default_ports() {
        assert!(match_host("192.168.1.2:80", "192.168.*.*:80"));
        assert!(!match_host("192.168.1:80", "192.168.*.*:80"));
        assert!(match_host("a.b:8080", "a.b:*"));
        let allow = allowlist(&["example.com".into()], 1);
        let h = headers(&[("origin", "https://example.com"), ("host", "other:1")]);
        assert!(origin_allowed(&h, &allow));
        let h = headers(&[("origin", "https://example.com:8443"), ("host", "other:1")]);
        assert!(!origin_allowed(&h, &allow));
    }
}
