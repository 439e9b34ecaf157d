//! HTTPS and wss:// (`--ssl-certfile`, `--ssl-keyfile`): the certificates ([`certs`]),
//! reloaded on SIGHUP, and the listener that runs the TLS handshakes ([`listener`]).
//!
//! rustls with the `ring` provider; TLS 1.3 and 1.2; ALPN offers `http/1.1` only (the
//! server speaks HTTP/1.1, which websockets need anyway).

pub mod certs;
pub mod listener;

pub use certs::{TlsCerts, TlsError};
pub use listener::{TlsListener, HANDSHAKE_TIMEOUT};
