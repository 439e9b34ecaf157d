//! A byte-counting HTTP/1.1 reader: answers as read off the socket, for their size on
//! the wire, and the requests an exported page's poller sends.

use super::*;

/// What one answer was, as read off the socket.
pub(super) struct Wire {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    /// Status line, headers and body (with any chunk framing), as read.
    pub(super) bytes: usize,
    /// The head as text.
    pub(super) head: String,
}

/// One page's keep-alive connection, reading answers byte-counted.
pub(super) struct PageConn {
    pub(super) stream: BufReader<TcpStream>,
}

impl PageConn {
    pub(super) async fn connect(port: u16, deadline: Instant) -> Result<PageConn> {
        let tcp = timeout_at(deadline, TcpStream::connect(("127.0.0.1", port)))
            .await
            .context(|| "connecting: timed out")?
            .context(|| format!("connecting to 127.0.0.1:{port}"))?;
        tcp.set_nodelay(true).context(|| "setting TCP_NODELAY")?;
        Ok(PageConn {
            stream: BufReader::with_capacity(16 * 1024, tcp),
        })
    }

    /// Writes `request` and reads its answer, before `deadline`.
    pub(super) async fn exchange(&mut self, request: &[u8], deadline: Instant) -> Result<Wire> {
        let work = async {
            self.stream
                .get_mut()
                .write_all(request)
                .await
                .context(|| "writing the poll")?;
            read_wire(&mut self.stream).await
        };
        timeout_at(deadline, work)
            .await
            .context(|| "the poll timed out")?
    }
}

/// Reads one line (to `\n`), counting it against `limit` and into `bytes`.
pub(super) async fn wire_line(
    stream: &mut BufReader<TcpStream>,
    limit: &mut usize,
    bytes: &mut usize,
) -> Result<String> {
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
    *bytes += n;
    if line.last() != Some(&b'\n') {
        return Err(err("an answer line is too long"));
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads one answer: status line, headers, body by `Content-Length` or chunked.
pub(super) async fn read_wire(stream: &mut BufReader<TcpStream>) -> Result<Wire> {
    let mut bytes = 0;
    let mut limit = MAX_HEAD_BYTES;
    let mut head = wire_line(stream, &mut limit, &mut bytes).await?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context(|| format!("a bad status line: {:?}", head.trim_end()))?;
    let (mut length, mut chunked) = (None, false);
    for _ in 0..MAX_HEADER_LINES {
        let line = wire_line(stream, &mut limit, &mut bytes).await?;
        head.push_str(&line);
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = Some(v.parse::<usize>().context(|| "a bad Content-Length")?);
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            } else if k == "content-encoding" && !v.eq_ignore_ascii_case("identity") {
                return Err(err(format!("an answer with Content-Encoding {v}")));
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        for _ in 0..MAX_CHUNKS {
            let mut limit = 1024;
            let line = wire_line(stream, &mut limit, &mut bytes).await?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).context(|| "a bad chunk size")?;
            if size == 0 {
                for _ in 0..MAX_HEADER_LINES {
                    let mut limit = MAX_HEAD_BYTES;
                    if wire_line(stream, &mut limit, &mut bytes)
                        .await?
                        .trim_end()
                        .is_empty()
                    {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY_BYTES {
                return Err(err("the answer is too big"));
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            let chunk = body.get_mut(start..).context(|| "chunk bounds")?;
            stream
                .read_exact(chunk)
                .await
                .context(|| "reading a chunk")?;
            body.truncate(start + size);
            bytes += size + 2;
        }
    } else if let Some(len) = length {
        if len > MAX_BODY_BYTES {
            return Err(err("the answer is too big"));
        }
        body.resize(len, 0);
        stream
            .read_exact(&mut body)
            .await
            .context(|| "reading the body")?;
        bytes += len;
    } else if status != 204 && status != 304 {
        return Err(err("an answer without Content-Length or chunks"));
    }
    Ok(Wire {
        status,
        body,
        bytes,
        head,
    })
}

/// The request a page sends: what Chromium sends for an exported page's
/// `AjaxDataSource` GET (`file://` pages send `Origin: null`).
pub(super) fn poll_request(port: u16, path: &str, cursor: u64, hosted: bool) -> Vec<u8> {
    let (origin, site, referer) = if hosted {
        (
            "http://127.0.0.1:8000",
            "same-site",
            "Referer: http://127.0.0.1:8000/\r\n",
        )
    } else {
        ("null", "cross-site", "")
    };
    format!(
        "GET {path}?since={cursor} HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\
         Connection: keep-alive\r\n\
         sec-ch-ua-platform: \"Linux\"\r\n\
         User-Agent: {USER_AGENT}\r\n\
         sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n\
         Content-Type: text/plain\r\n\
         sec-ch-ua-mobile: ?0\r\n\
         Accept: */*\r\n\
         Origin: {origin}\r\n\
         Sec-Fetch-Site: {site}\r\n\
         Sec-Fetch-Mode: cors\r\n\
         Sec-Fetch-Dest: empty\r\n\
         {referer}\
         Accept-Encoding: gzip, deflate, br, zstd\r\n\
         Accept-Language: en-US,en;q=0.9\r\n\
         \r\n"
    )
    .into_bytes()
}
