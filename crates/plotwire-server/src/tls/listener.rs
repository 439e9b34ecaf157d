//! The TLS listener: TCP connections are accepted as [`FastAckListener`] accepts them
//! (connection limit, TCP_NODELAY, keepalive, TCP_QUICKACK on Linux), and each one's TLS
//! handshake then runs in a task of its own, bounded by [`HANDSHAKE_TIMEOUT`]. A client
//! that connects and sends nothing holds only its own connection slot, never the accept
//! loop. Connections whose handshake finished wait in a queue of [`READY_QUEUE`] for
//! `axum::serve` to take them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::certs::TlsCerts;
use crate::listener::{FastAckListener, FastAckStream};
use crate::log::RateLimit;

/// How long a client has to finish its TLS handshake after connecting; past it, the
/// connection is closed. Bounds how long a silent or slow client holds a connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections with a finished handshake may wait for the HTTP server to take
/// them; handshakes that finish while it is full wait (each holding its slot).
pub const READY_QUEUE: usize = 256;

type Ready = (TlsStream<FastAckStream>, SocketAddr);

/// A listener for `axum::serve` that serves TLS with the certificates of a [`TlsCerts`]
/// (the ones current when each handshake starts).
pub struct TlsListener {
    ready: mpsc::Receiver<Ready>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `tcp`, at most `max_connections` connections at a time (handshaking or
    /// open). Must be called inside a tokio runtime: it spawns the accept loop.
    pub fn new(
        tcp: TcpListener,
        max_connections: usize,
        certs: Arc<TlsCerts>,
    ) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(
            FastAckListener::new(tcp, max_connections),
            certs,
            tx,
        ));
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stops accepting; handshakes in flight end on their own (their send fails).
        self.accepting.abort();
    }
}

/// Accepts TCP connections until the listener is dropped, starting a handshake for each.
async fn accept_loop(mut tcp: FastAckListener, certs: Arc<TlsCerts>, tx: mpsc::Sender<Ready>) {
    loop {
        let (stream, addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut tcp) => accepted,
            () = tx.closed() => return,
        };
        let acceptor = TlsAcceptor::from(certs.current());
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(tls) = handshake(acceptor, stream, addr).await {
                // Fails only when the listener is gone; then the connection just closes.
                let _ = tx.send((tls, addr)).await;
            }
        });
    }
}

/// The finished handshake, or `None` (logged at debug, rate-limited) if it failed or
/// took longer than [`HANDSHAKE_TIMEOUT`].
async fn handshake(
    acceptor: TlsAcceptor,
    stream: FastAckStream,
    addr: SocketAddr,
) -> Option<TlsStream<FastAckStream>> {
    static LIMIT: RateLimit = RateLimit::new();
    let failure = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => return Some(tls),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
    };
    if let Some(suppressed) = LIMIT.allow() {
        tracing::debug!(peer = %addr, error = %failure, suppressed, "TLS handshake failed");
    }
    None
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<FastAckStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            None => {
                // The accept loop holds a sender until this listener is dropped, so this
                // happens only if it died: accept nothing more.
                tracing::error!("the TLS accept loop stopped: no new connections");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
