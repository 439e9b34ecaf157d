//! The TCP listener plotwire serves on.
//!
//! Every accepted connection gets TCP_NODELAY, so a message's fragments leave at once.
//! On Linux, TCP_QUICKACK is also re-armed after every read. Tornado, under an unmodified
//! `bokeh.client`, turns Nagle back on, so the client sends a message's first fragment and
//! holds the rest until that fragment is acknowledged. With the kernel's delayed ACK this
//! costs about 40 ms per message. Acknowledging at once removes that stall without any
//! change on the client.
//!
//! The listener holds at most `max_connections` connections: past that it stops
//! accepting until one closes (as tokio's mini-redis does), so the kernel's backlog, not
//! the process, absorbs a flood. TCP keepalive is on, so a peer that vanished without a
//! FIN is found by the kernel even when nothing is being sent.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Idle time before the first keepalive probe, the time between probes, and how many
/// unanswered probes drop the connection: a vanished peer is gone after about 60 s.
const KEEPALIVE: (Duration, Duration, u32) = (Duration::from_secs(30), Duration::from_secs(10), 3);

/// A TCP listener for `axum::serve` that tunes every connection as described above.
pub struct FastAckListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
}

impl FastAckListener {
    /// Wraps a bound listener that holds at most `max_connections` connections.
    pub fn new(inner: TcpListener, max_connections: usize) -> FastAckListener {
        FastAckListener {
            inner,
            slots: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
        }
    }
}

fn tune(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::warn!(error = %e, "could not set TCP_NODELAY");
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE.0)
        .with_interval(KEEPALIVE.1);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive.with_retries(KEEPALIVE.2);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
        tracing::warn!(error = %e, "could not set TCP keepalive");
    }
}

impl axum::serve::Listener for FastAckListener {
    type Io = FastAckStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so this only waits for a free slot.
        let slot = loop {
            if let Ok(p) = self.slots.clone().acquire_owned().await {
                break p;
            }
        };
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        tune(&tcp);
        (
            FastAckStream {
                inner: tcp,
                _slot: slot,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection that acknowledges received data at once. It holds one of the
/// listener's slots until it is dropped.
pub struct FastAckStream {
    inner: TcpStream,
    _slot: OwnedSemaphorePermit,
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
        let mut listener = FastAckListener::new(tcp, 1);
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
        // The one slot is taken: the next connection waits in the backlog until this
        // one closes.
        let second = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"2").await.unwrap();
        });
        let waiting = tokio::time::timeout(
            Duration::from_millis(300),
            axum::serve::Listener::accept(&mut listener),
        )
        .await;
        assert!(waiting.is_err(), "accepted past the connection limit");
        drop(s);
        let (mut s2, _) = tokio::time::timeout(
            Duration::from_secs(5),
            axum::serve::Listener::accept(&mut listener),
        )
        .await
        .expect("accepted once a slot was free");
        let mut got = [0u8; 1];
        s2.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"2");
        second.await.unwrap();
    }
}
