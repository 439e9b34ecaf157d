//! Read grants: what a share link carries (`?grant=…`) and what a private document's
//! page embeds in its session token so that its websocket may open.
//!
//! A grant is `g1.<expiry>.<signature>`: the expiry in seconds since the Unix epoch, and
//! the URL-safe base64 of HMAC-SHA256(share secret, `plotwire-read-grant`, the document
//! name and the expiry). It lets its holder read that one document until it expires;
//! changing the name or the expiry breaks the signature. Nothing is stored: a grant
//! outlives restarts, and rotating the secret revokes every grant at once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use plotwire_protocol::token::hmac_sha256;
use subtle::ConstantTimeEq;

/// The query parameter (and token claim) a grant travels in.
pub const GRANT_PARAM: &str = "grant";

/// Longest grant accepted, in bytes.
pub const MAX_GRANT_BYTES: usize = 128;

const VERSION: &str = "g1";

/// Why a grant is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Not a grant at all, or signed for another document or with another secret.
    #[error("the share link is not valid (tampered with, for another document, or its secret was rotated)")]
    Invalid,
    /// Correctly signed, but its time is over.
    #[error("the share link expired at {0} (seconds since the Unix epoch); ask for a new one")]
    Expired(i64),
}

fn mac(secret: &[u8], name: &str, expiry: i64) -> [u8; 32] {
    let message = format!("plotwire-read-grant\n{name}\n{expiry}");
    hmac_sha256(secret, message.as_bytes())
}

/// A grant to read `name` until `expiry` (seconds since the Unix epoch).
pub fn sign(secret: &[u8], name: &str, expiry: i64) -> String {
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, name, expiry));
    format!("{VERSION}.{expiry}.{sig}")
}

/// Checks that `grant` lets its holder read `name` at `now`; returns its expiry.
pub fn verify(secret: &[u8], name: &str, grant: &str, now: i64) -> Result<i64, GrantError> {
    if grant.len() > MAX_GRANT_BYTES {
        return Err(GrantError::Invalid);
    }
    let mut parts = grant.split('.');
    let (Some(VERSION), Some(expiry), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(GrantError::Invalid);
    };
    let expiry: i64 = expiry.parse().map_err(|_| GrantError::Invalid)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| GrantError::Invalid)?;
    if !bool::from(mac(secret, name, expiry).as_slice().ct_eq(&sig)) {
        return Err(GrantError::Invalid);
    }
    if now >= expiry {
        return Err(GrantError::Expired(expiry));
    }
    Ok(expiry)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_grant_reads_one_document_until_it_expires() {
        let g = sign(SECRET, "team/board", 1000);
        assert_eq!(verify(SECRET, "team/board", &g, 999), Ok(1000));
        assert_eq!(
            verify(SECRET, "team/board", &g, 1000),
            Err(GrantError::Expired(1000))
        );
        assert_eq!(
            verify(SECRET, "team/other", &g, 0),
            Err(GrantError::Invalid)
        );
        assert_eq!(
            verify(b"another secret, just as long....", "team/board", &g, 0),
            Err(GrantError::Invalid)
        );
        let later = g.replace(".1000.", ".99999.");
        assert_eq!(
            verify(SECRET, "team/board", &later, 0),
            Err(GrantError::Invalid)
        );
        let mut flipped = g.clone().into_bytes();
        if let Some(last) = flipped.last_mut() {
            *last = if *last == b'A' { b'B' } else { b'A' };
        }
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify(SECRET, "team/board", &flipped, 0),
            Err(GrantError::Invalid)
        );
        for bad in [
            "",
            "g1",
            "g1.x.y",
            "g2.1000.AAAA",
            &format!("{g}.extra"),
            &"g".repeat(500),
        ] {
            assert_eq!(
                verify(SECRET, "team/board", bad, 0),
                Err(GrantError::Invalid),
                "{bad}"
            );
        }
    }
}
