//! The TCP listener plotwire serves on.
//!
//! Every accepted connection gets TCP_NODELAY, so a message's fragments leave at once.
//! On Linux, TCP_QUICKACK is also re-armed after every read. Tornado, under an unmodified
//! `bokeh.client`, turns Nagle back on, so the client sends a message's first fragment and
//! holds the rest until that fragment is acknowledged. With the kernel's delayed ACK this
//! costs about 40 ms per message. Acknowledging at once removes that stall without any
//! change on the client.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener for `axum::serve` that tunes every connection as described above.
pub struct FastAckListener {
    inner: TcpListener,
}

impl FastAckListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> FastAckListener {
        FastAckListener { inner }
    }
}

impl axum::serve::Listener for FastAckListener {
    type Io = FastAckStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
        (FastAckStream { inner: tcp }, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection that acknowledges received data at once.
pub struct FastAckStream {
    inner: TcpStream,
}

#[cfg(target_os = "linux")]
fn quickack(tcp: &TcpStream) {
    // Best effort: a failure only means the usual delayed ACK.
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
}

#[cfg(not(target_os = "linux"))]
fn quickack(_: &TcpStream) {}

impl AsyncRead for FastAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            quickack(&self.inner);
        }
        polled
    }
}

impl AsyncWrite for FastAckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn accepted_streams_carry_data_both_ways_with_nodelay() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = FastAckListener::new(tcp);
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut back = [0u8; 4];
            c.read_exact(&mut back).await.unwrap();
            back
        });
        let (mut s, _) = axum::serve::Listener::accept(&mut listener).await;
        assert!(s.inner.nodelay().unwrap());
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        s.write_all(&got).await.unwrap();
        assert_eq!(&client.await.unwrap(), b"ping");
    }
}
