//! API keys: how they are made, and the hash the auth file keeps instead of them.
//!
//! A key is `pwk_` and 32 random bytes in URL-safe base64. As it is random and long, a
//! plain SHA-256 of it is a safe thing to store (a slow password hash protects guessable
//! secrets; nobody guesses 256 random bits). Hashes are compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with, so that a leaked one is easy to spot and search for.
pub const KEY_PREFIX: &str = "pwk_";

/// Random bytes in a key.
const KEY_BYTES: usize = 32;

/// A new random key, to be shown once and stored only as its [`KeyHash`].
pub fn new_key() -> String {
    let mut bytes = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new random secret for signing share links.
pub fn new_secret() -> String {
    let mut bytes = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 of a key, written `sha256:<64 hex digits>` in the auth file.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash(…)")
    }
}

impl KeyHash {
    /// The hash of the key `key`.
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// Reads `sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<KeyHash, String> {
        let hex = text
            .strip_prefix("sha256:")
            .ok_or("a key hash is written sha256:<64 hex digits>")?;
        if hex.len() != 64 {
            return Err(format!(
                "a key hash has 64 hex digits after sha256:, not {}",
                hex.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or("not hex")?;
            *byte = u8::from_str_radix(pair, 16)
                .map_err(|_| "a key hash has only hex digits after sha256:".to_owned())?;
        }
        Ok(KeyHash(out))
    }

    /// Equality in constant time.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Display for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_their_hashes_round_trip() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43);
        let hash = KeyHash::of(&a);
        let text = hash.to_string();
        assert_eq!(text.len(), 7 + 64);
        assert!(KeyHash::parse(&text).unwrap().ct_eq(&hash));
        assert!(!KeyHash::of(&b).ct_eq(&hash));
        assert!(!format!("{hash:?}").contains(&text[7..]));
        for bad in [
            "",
            "sha256:",
            "md5:00",
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(KeyHash::parse(bad).is_err(), "{bad}");
        }
    }
}
