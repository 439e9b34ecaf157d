//! One HTTP/1.1 request to the server, over a pooled keep-alive connection: the base URL,
//! the request, a timeout and the answer's status and body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::Error;

/// The largest answer read (a big source read back), in bytes.
const MAX_ANSWER_BYTES: usize = 1 << 30;

/// Where the server is: `http://host:port` and a path prefix (`""` or `/prefix`).
#[derive(Debug, Clone)]
pub(crate) struct Base {
    /// `http://host:port`.
    pub(crate) origin: String,
    /// The path prefix the server runs under, without a trailing slash.
    pub(crate) prefix: String,
}

impl Base {
    /// Reads `http://host:port[/prefix]`, or `host:port` as streamvis takes it.
    pub(crate) fn parse(url: &str) -> Result<Base, Error> {
        let bad = |reason: &str| Error::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = full
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported by this client yet: use http, or a TLS proxy in front of it",
                ))
            }
            _ => return Err(bad("the scheme must be http")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| bad("no host"))?
            .as_str()
            .to_owned();
        if uri.query().is_some() {
            return Err(bad("a server URL has no query"));
        }
        Ok(Base {
            origin: format!("http://{authority}"),
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// An answer: its status and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// Why one attempt failed.
pub(crate) enum Failure {
    /// Worth another attempt: the connection failed, or timed out.
    Transient(String),
    /// Not worth retrying.
    Fatal(Error),
}

/// The connection pool.
#[derive(Clone)]
pub(crate) struct Transport {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    pub(crate) base: Base,
}

impl Transport {
    pub(crate) fn new(base: Base, connect_timeout: Duration) -> Transport {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Transport { http, base }
    }

    /// One attempt of `method path` with `headers` and `body`, within `timeout`.
    pub(crate) async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let uri = format!("{}{}{}", self.base.origin, self.base.prefix, path_and_query);
        let mut req = hyper::Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(body)).map_err(|e| {
            Failure::Fatal(Error::BadAnswer(format!(
                "a request could not be built: {e}"
            )))
        })?;
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| Failure::Transient(error_chain(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| Failure::Transient(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Failure::Transient(format!(
                "no answer within {:.1} s",
                timeout.as_secs_f64()
            ))),
        }
    }
}

/// An error and its sources, in one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    for _ in 0..8 {
        let Some(s) = source else { break };
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Base;

    #[test]
    fn base_urls() {
        let b = Base::parse("127.0.0.1:5006").unwrap();
        assert_eq!(
            (b.origin.as_str(), b.prefix.as_str()),
            ("http://127.0.0.1:5006", "")
        );
        let b = Base::parse("http://h:1/pre/").unwrap();
        assert_eq!(
            (b.origin.as_str(), b.prefix.as_str()),
            ("http://h:1", "/pre")
        );
        assert!(Base::parse("https://h:1").is_err());
        assert!(Base::parse("ftp://h").is_err());
        assert!(Base::parse("http://h:1/?x=1").is_err());
    }
}
