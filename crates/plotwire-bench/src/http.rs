//! A small HTTP/1.1 client for the REST workloads: one keep-alive connection over a
//! `TcpStream` (TCP_NODELAY), requests written head then body, answers read by
//! `Content-Length` or chunked encoding. Enough for plotwire's and Bokeh's answers; no
//! dependency beyond tokio.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::error::{err, Context, Result};

/// The longest answer head (status line and headers) read.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The longest answer body read.
const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

/// The most header lines read.
const MAX_HEADER_LINES: usize = 200;

/// The most chunks of a chunked answer read.
const MAX_CHUNKS: usize = 1_000_000;

/// One HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy), for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Fails unless the status is 2xx.
    ///
    /// # Errors
    /// A status outside 200..300; the body is quoted.
    pub fn ok(self, what: &str) -> Result<Response> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            let mut text = self.text();
            text.truncate(300);
            Err(err(format!("{what}: HTTP {}: {text}", self.status)))
        }
    }
}

/// One keep-alive HTTP/1.1 connection to 127.0.0.1:`port`.
pub struct HttpConn {
    port: u16,
    stream: BufReader<TcpStream>,
    /// Header lines sent with every request (e.g. `Authorization`), each ending in `\r\n`.
    always: String,
}

impl HttpConn {
    /// Connects.
    ///
    /// # Errors
    /// When the connection cannot be made within `limit`.
    pub async fn connect(port: u16, limit: Duration) -> Result<HttpConn> {
        let deadline = Instant::now() + limit;
        let tcp = timeout_at(deadline, TcpStream::connect(("127.0.0.1", port)))
            .await
            .context(|| format!("connecting to 127.0.0.1:{port}"))?
            .context(|| format!("connecting to 127.0.0.1:{port}"))?;
        tcp.set_nodelay(true).context(|| "setting TCP_NODELAY")?;
        Ok(HttpConn {
            port,
            stream: BufReader::with_capacity(256 * 1024, tcp),
            always: String::new(),
        })
    }

    /// Presents `key` (when there is one) as `Authorization: Bearer` on every request.
    pub fn with_key(mut self, key: Option<&str>) -> HttpConn {
        self.always = key.map_or_else(String::new, |k| format!("Authorization: Bearer {k}\r\n"));
        self
    }

    /// Sends one request (`extra_headers`: lines each ending in `\r\n`) and reads its
    /// answer, all before `deadline`.
    ///
    /// # Errors
    /// Socket errors, a malformed answer, a closed connection, or `deadline`.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        extra_headers: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Response> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n{}{extra_headers}\r\n",
            self.port,
            body.len(),
            self.always
        );
        let exchange = async {
            let tcp = self.stream.get_mut();
            if body.len() < 16 * 1024 {
                let mut whole = head.into_bytes();
                whole.extend_from_slice(body);
                tcp.write_all(&whole)
                    .await
                    .context(|| "writing a request")?;
            } else {
                tcp.write_all(head.as_bytes())
                    .await
                    .context(|| "writing a request head")?;
                tcp.write_all(body)
                    .await
                    .context(|| "writing a request body")?;
            }
            read_response(&mut self.stream, method == "HEAD").await
        };
        timeout_at(deadline, exchange)
            .await
            .context(|| format!("{method} {path}: timed out"))?
            .context(|| format!("{method} {path}"))
    }

    /// A GET with `extra_headers`.
    ///
    /// # Errors
    /// As [`HttpConn::request`].
    pub async fn get(
        &mut self,
        path: &str,
        extra_headers: &str,
        deadline: Instant,
    ) -> Result<Response> {
        self.request("GET", path, extra_headers, &[], deadline)
            .await
    }
}

/// Reads one line (up to `\n`), at most `limit` bytes.
async fn read_line(stream: &mut BufReader<TcpStream>, limit: &mut usize) -> Result<String> {
    let mut line = Vec::new();
    let n = (&mut *stream)
        .take(*limit as u64)
        .read_until(b'\n', &mut line)
        .await
        .context(|| "reading the answer")?;
    if n == 0 {
        return Err(err("the server closed the connection"));
    }
    *limit = limit.saturating_sub(n);
    if line.last() != Some(&b'\n') {
        return Err(err("an answer line is too long"));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// Reads a status line, headers and body.
async fn read_response(stream: &mut BufReader<TcpStream>, head_only: bool) -> Result<Response> {
    let mut limit = MAX_HEAD_BYTES;
    let status_line = read_line(stream, &mut limit).await?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context(|| format!("a bad status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    for _ in 0..MAX_HEADER_LINES {
        let line = read_line(stream, &mut limit).await?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 {
        // No body.
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        for _ in 0..MAX_CHUNKS {
            let mut limit = 1024;
            let line = read_line(stream, &mut limit).await?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(hex, 16).context(|| format!("a bad chunk size {line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                for _ in 0..MAX_HEADER_LINES {
                    let mut limit = MAX_HEAD_BYTES;
                    if read_line(stream, &mut limit).await?.is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY_BYTES {
                return Err(err("the answer is too big"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            let chunk = body.get_mut(start..).context(|| "chunk bounds")?;
            stream
                .read_exact(chunk)
                .await
                .context(|| "reading a chunk")?;
            let mut crlf = [0u8; 2];
            stream
                .read_exact(&mut crlf)
                .await
                .context(|| "reading a chunk end")?;
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .context(|| format!("a bad Content-Length {len:?}"))?;
        if len > MAX_BODY_BYTES {
            return Err(err("the answer is too big"));
        }
        body.resize(len, 0);
        stream
            .read_exact(&mut body)
            .await
            .context(|| "reading the body")?;
    } else {
        return Err(err(
            "an answer with neither Content-Length nor chunked encoding",
        ));
    }
    Ok(Response { status, body })
}
