//! How a standalone copy of a published document (an HTML export or a `json_item`) keeps
//! reading from the server: its options, as the query parameters of
//! `GET .../export.html` and `GET .../json_item` (`docs/exports.md`), with their limits.

use std::fmt::Write as _;

/// How the sources of a standalone copy stay live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Live {
    /// An `AjaxDataSource` per source, polling the read-back cursor (the default).
    #[default]
    Ajax,
    /// A `ServerSentDataSource` per source, resuming with `Last-Event-ID`.
    Sse,
    /// A static snapshot.
    None,
}

impl Live {
    /// The query value: `ajax`, `sse` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Live::Ajax => "ajax",
            Live::Sse => "sse",
            Live::None => "none",
        }
    }
}

/// Polling interval of an `AjaxDataSource` when none is given, in milliseconds.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
/// Shortest polling interval, in milliseconds.
pub const MIN_INTERVAL_MS: u64 = 100;
/// Longest polling interval and retry delay, in milliseconds (one hour).
pub const MAX_DELAY_MS: u64 = 3_600_000;
/// How long a page waits before it asks again once the server could not be reached, in
/// milliseconds when none is given: one failed request, so one console error, a minute.
pub const DEFAULT_RETRY_MS: u64 = 60_000;
/// Shortest retry delay, in milliseconds.
pub const MIN_RETRY_MS: u64 = 500;
/// Longest `public_url`, in bytes.
pub const MAX_PUBLIC_URL_BYTES: usize = 2048;

/// The options of a standalone copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOptions {
    /// How its sources stay live.
    pub live: Live,
    /// The server's URL as the page will reach it (`https://plots.example.com/prefix`);
    /// `None`: the URL the request was made to.
    pub public_url: Option<String>,
    /// The polling interval of `live = ajax`, in milliseconds.
    pub interval_ms: u64,
    /// The rows each source keeps (`max_size`, rollover); `None`: all of them.
    pub max_size: Option<u64>,
    /// How long the page waits before it asks again once the server could not be reached.
    pub retry_ms: u64,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            live: Live::Ajax,
            public_url: None,
            interval_ms: DEFAULT_INTERVAL_MS,
            max_size: None,
            retry_ms: DEFAULT_RETRY_MS,
        }
    }
}

/// Why an option is refused; it names the query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OptionError {
    /// The query parameter.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn error(field: &'static str, message: String) -> OptionError {
    OptionError { field, message }
}

fn millis(field: &'static str, text: &str, min: u64) -> Result<u64, OptionError> {
    let ms: u64 = text.trim().parse().map_err(|_| {
        error(
            field,
            format!("must be a whole number of milliseconds, not {text:?}"),
        )
    })?;
    if !(min..=MAX_DELAY_MS).contains(&ms) {
        return Err(error(
            field,
            format!("must be {min} to {MAX_DELAY_MS} ms, not {ms}"),
        ));
    }
    Ok(ms)
}

/// Checks a public URL: absolute `http` or `https`, without a query, a fragment, quotes,
/// spaces or control characters; the trailing `/` is dropped.
pub fn check_public_url(url: &str) -> Result<String, OptionError> {
    let field = "public_url";
    if url.len() > MAX_PUBLIC_URL_BYTES {
        return Err(error(
            field,
            format!("is longer than {MAX_PUBLIC_URL_BYTES} bytes"),
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            error(
                field,
                format!("must start with http:// or https://, not {url:?}"),
            )
        })?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(error(field, format!("has no host: {url:?}")));
    }
    if let Some(bad) = url
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "\"'<>\\`?#".contains(*c))
    {
        return Err(error(
            field,
            format!(
                "may not hold {bad:?} (give the server's URL, with its prefix, and nothing else)"
            ),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl LiveOptions {
    /// Reads the options from query parameters (`live`, `public_url`, `interval`,
    /// `max_size`, `retry`); the others are ignored.
    pub fn from_query<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LiveOptions, OptionError> {
        let mut o = LiveOptions::default();
        for (k, v) in pairs {
            match k {
                "live" => {
                    o.live = match v {
                        "ajax" => Live::Ajax,
                        "sse" => Live::Sse,
                        "none" => Live::None,
                        other => {
                            return Err(error(
                                "live",
                                format!("must be ajax, sse or none, not {other:?}"),
                            ))
                        }
                    }
                }
                "public_url" => o.public_url = Some(check_public_url(v)?),
                "interval" => o.interval_ms = millis("interval", v, MIN_INTERVAL_MS)?,
                "retry" => o.retry_ms = millis("retry", v, MIN_RETRY_MS)?,
                "max_size" => {
                    let n: u64 = v.trim().parse().map_err(|_| {
                        error("max_size", format!("must be a row count, not {v:?}"))
                    })?;
                    if n == 0 {
                        return Err(error("max_size", "must be at least 1".to_owned()));
                    }
                    o.max_size = Some(n);
                }
                _ => {}
            }
        }
        Ok(o)
    }

    /// The options as a query string (without `?`), leaving out the defaults.
    pub fn to_query(&self) -> String {
        let mut q = format!("live={}", self.live.as_str());
        if let Some(url) = &self.public_url {
            q.push_str("&public_url=");
            q.push_str(&query_value(url));
        }
        if self.interval_ms != DEFAULT_INTERVAL_MS {
            let _ = write!(q, "&interval={}", self.interval_ms);
        }
        if let Some(n) = self.max_size {
            let _ = write!(q, "&max_size={n}");
        }
        if self.retry_ms != DEFAULT_RETRY_MS {
            let _ = write!(q, "&retry={}", self.retry_ms);
        }
        q
    }
}

/// Everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` percent-encoded for a query value.
pub fn query_value(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_the_query() {
        let o = LiveOptions {
            live: Live::Sse,
            public_url: Some("https://plots.example.com/p".to_owned()),
            interval_ms: 250,
            max_size: Some(500),
            retry_ms: 2000,
        };
        let q = o.to_query();
        assert_eq!(
            q,
            "live=sse&public_url=https%3A%2F%2Fplots.example.com%2Fp&interval=250&max_size=500&retry=2000"
        );
        let decoded = [
            ("live", "sse"),
            ("public_url", "https://plots.example.com/p/"),
            ("interval", "250"),
            ("max_size", "500"),
            ("retry", "2000"),
        ];
        assert_eq!(LiveOptions::from_query(decoded).ok(), Some(o));
        assert_eq!(
            LiveOptions::from_query([]).ok(),
            Some(LiveOptions::default())
        );
    }

    #[test]
    fn bad_options_name_their_parameter() {
        for (k, v) in [
            ("live", "websocket"),
            ("interval", "10"),
            ("interval", "fast"),
            ("retry", "99999999999"),
            ("max_size", "0"),
            ("max_size", "-3"),
            ("public_url", "ftp://x"),
            ("public_url", "http://"),
            ("public_url", "http://h/\"onload=alert(1)"),
            ("public_url", "http://h/p?x=1"),
        ] {
            let e = LiveOptions::from_query([(k, v)]).expect_err(v);
            assert_eq!(e.field, k, "{v}");
        }
    }
}
