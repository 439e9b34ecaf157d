//! Session ids and session tokens, compatible with `bokeh.util.token` 3.9.2 (spec §2.1–§2.5).
//!
//! A session id is 44 characters from `[a-zA-Z0-9]`, optionally followed by `.` and an
//! HMAC-SHA256 signature. A token is the unpadded URL-safe base64 of a JSON payload
//! (`session_id`, `session_expiry`, optional zlib-compressed extra data under
//! `__bk__zlib_`), optionally followed by `.` and an HMAC-SHA256 signature of that base64
//! text.
//!
//! Everything here is pure: randomness and the current time are supplied by the caller.
//! The signing secret is the raw bytes of `BOKEH_SECRET_KEY` (UTF-8), never base64-decoded;
//! `None` means signing is off.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde_json::{Map, Number, Value};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Length of a server-generated session id, without any signature.
pub const SESSION_ID_LENGTH: usize = 44;

/// The characters a generated session id is drawn from, in Bokeh's order.
const SESSION_ID_CHARS: &[u8; 62] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The payload key that carries the zlib-compressed extra payload.
const ZLIB_KEY: &str = "__bk__zlib_";

/// Upper bound on the inflated size of `__bk__zlib_` accepted by [`decode_token`].
///
/// Bokeh has no such limit; it is here so that a small token cannot expand into an
/// arbitrarily large allocation.
pub const MAX_EXTRA_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// Decoder for token segments: URL-safe alphabet, padding optional, trailing bits ignored
/// (as Python's `base64.urlsafe_b64decode` after re-padding).
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a token could not be decoded, generated or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The first `.`-segment of the token is not URL-safe base64.
    #[error("token payload is not valid URL-safe base64")]
    InvalidBase64,
    /// The decoded payload is not UTF-8 JSON.
    #[error("token payload is not valid JSON: {0}")]
    NotJson(String),
    /// The decoded payload is JSON but not an object.
    #[error("token payload is not a JSON object")]
    NotAnObject,
    /// The payload has no `session_id` key.
    #[error("token payload has no session_id")]
    MissingSessionId,
    /// The payload's `session_id` is not a string.
    #[error("token payload session_id is not a string")]
    SessionIdNotString,
    /// `session_expiry` is present but is not a number.
    #[error("token session_expiry is not a number")]
    InvalidExpiry,
    /// The `__bk__zlib_` value is not a string.
    #[error("token extra payload (__bk__zlib_) is not a string")]
    ExtraNotString,
    /// The `__bk__zlib_` value is not URL-safe base64.
    #[error("token extra payload (__bk__zlib_) is not valid URL-safe base64")]
    ExtraInvalidBase64,
    /// The `__bk__zlib_` value is not a valid zlib stream.
    #[error("token extra payload (__bk__zlib_) is not a valid zlib stream: {0}")]
    ExtraInvalidZlib(String),
    /// The `__bk__zlib_` value inflates to more than [`MAX_EXTRA_PAYLOAD_BYTES`].
    #[error("token extra payload (__bk__zlib_) inflates to more than {limit} bytes")]
    ExtraTooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The inflated `__bk__zlib_` content is not UTF-8 JSON.
    #[error("token extra payload (__bk__zlib_) is not valid JSON: {0}")]
    ExtraNotJson(String),
    /// The inflated `__bk__zlib_` content is JSON but not an object.
    #[error("token extra payload (__bk__zlib_) is not a JSON object")]
    ExtraNotAnObject,
    /// The extra payload contains `session_id`, which only the token itself may carry.
    #[error("extra payload for session tokens may not contain 'session_id'")]
    ForbiddenExtraKey,
    /// Compressing the extra payload failed.
    #[error("could not compress the extra payload: {0}")]
    Compression(String),
    /// The payload has no `session_expiry`.
    #[error("session expiry has not been provided")]
    MissingExpiry,
    /// The token's `session_expiry` is not after the current time.
    #[error("token is expired (session_expiry {expiry}, now {now})")]
    Expired {
        /// The token's `session_expiry`, seconds since the Unix epoch.
        expiry: i64,
        /// The time the token was checked at, seconds since the Unix epoch.
        now: i64,
    },
}

/// The decoded content of a token's first segment.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPayload {
    /// The session id the token names (signed form `base.sig` when signing is on).
    pub session_id: String,
    /// Expiry, integer seconds since the Unix epoch (UTC); `None` when absent.
    ///
    /// A fractional value is rounded up, which keeps `now >= expiry` exact for integer
    /// `now`; an integer beyond the `i64` range saturates.
    pub session_expiry: Option<i64>,
    /// Everything else: the keys of the inflated `__bk__zlib_` object (usually `headers`,
    /// `cookies`, `arguments`) and any other unknown keys of the payload, in order.
    ///
    /// Python `bytes` values stay in their JSON form `{"bytes": "<unpadded base64url>"}`.
    pub extra: Map<String, Value>,
}

/// Generates a session id: [`SESSION_ID_LENGTH`] characters from `[a-zA-Z0-9]`, signed
/// (`base.sig`) when `secret` is `Some`.
///
/// `pick(n)` must return a uniformly distributed index `< n` from a cryptographically
/// secure source. An out-of-range index is reduced modulo `n` rather than panicking.
pub fn new_session_id(mut pick: impl FnMut(usize) -> usize, secret: Option<&[u8]>) -> String {
    let n = SESSION_ID_CHARS.len();
    let base: String = (0..SESSION_ID_LENGTH)
        .map(|_| {
            let i = pick(n) % n;
            char::from(SESSION_ID_CHARS.get(i).copied().unwrap_or(b'a'))
        })
        .collect();
    match secret {
        Some(secret) => sign_session_id(&base, secret),
        None => base,
    }
}

/// Signs a session id: returns `base.sig` with
/// `sig = base64url_nopad(HMAC-SHA256(secret, utf8(base)))`.
pub fn sign_session_id(base: &str, secret: &[u8]) -> String {
    format!("{base}.{}", signature(base, secret))
}

/// Checks a signed session id `base.sig` (split at the first `.`) against `secret`.
///
/// Returns `false` when there is no `.` or the signature does not match. The comparison
/// is constant-time.
pub fn check_session_id_signature(session_id: &str, secret: &[u8]) -> bool {
    match session_id.split_once('.') {
        Some((base, provided)) => signature_matches(base, provided, secret),
        None => false,
    }
}

/// Generates a session token exactly as Bokeh's `generate_jwt_token` does.
///
/// The payload is `{"session_id": ..., "session_expiry": expiry_epoch_secs}` written like
/// Python's `json.dumps`, plus `"__bk__zlib_": B64(zlib level 9 of json.dumps(extra))`
/// when `extra` is non-empty. The token is `B64(payload)`, followed by `.` and
/// `B64(HMAC-SHA256(secret, B64(payload)))` when `secret` is `Some`. `B64` is URL-safe
/// base64 without padding. `expiry_epoch_secs` is the absolute expiry (now + expiration).
///
/// The output is byte-identical to Bokeh's except inside `__bk__zlib_`, whose deflate
/// stream may differ from C zlib's while inflating to the same bytes.
///
/// # Errors
/// [`TokenError::ForbiddenExtraKey`] if `extra` contains `session_id`;
/// [`TokenError::Compression`] if compression fails.
pub fn generate_token(
    session_id: &str,
    expiry_epoch_secs: i64,
    extra: Option<&Map<String, Value>>,
    secret: Option<&[u8]>,
) -> Result<String, TokenError> {
    let mut json = String::with_capacity(64);
    json.push_str("{\"session_id\": ");
    write_py_string(&mut json, session_id);
    json.push_str(", \"session_expiry\": ");
    // Writing to a String cannot fail.
    let _ = write!(json, "{expiry_epoch_secs}");
    if let Some(extra) = extra.filter(|e| !e.is_empty()) {
        if extra.contains_key("session_id") {
            return Err(TokenError::ForbiddenExtraKey);
        }
        let mut extra_json = String::new();
        write_py_object(&mut extra_json, extra);
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder
            .write_all(extra_json.as_bytes())
            .map_err(|e| TokenError::Compression(e.to_string()))?;
        let compressed = encoder
            .finish()
            .map_err(|e| TokenError::Compression(e.to_string()))?;
        json.push_str(", ");
        write_py_string(&mut json, ZLIB_KEY);
        json.push_str(": ");
        write_py_string(&mut json, &URL_SAFE_NO_PAD.encode(compressed));
    }
    json.push('}');
    let token = URL_SAFE_NO_PAD.encode(json.as_bytes());
    Ok(match secret {
        Some(secret) => {
            let sig = signature(&token, secret);
            format!("{token}.{sig}")
        }
        None => token,
    })
}

/// Reads only the `session_id` of a token, as Bokeh's `get_session_id` does.
///
/// Decodes the first `.`-segment and requires a JSON object with a string `session_id`;
/// `session_expiry` and `__bk__zlib_` are not looked at.
///
/// # Errors
/// [`TokenError::InvalidBase64`], [`TokenError::NotJson`], [`TokenError::NotAnObject`],
/// [`TokenError::MissingSessionId`], [`TokenError::SessionIdNotString`].
pub fn token_session_id(token: &str) -> Result<String, TokenError> {
    let mut object = decode_first_segment(token)?;
    take_session_id(&mut object)
}

/// Decodes a token (signed or not) into its payload, as Bokeh's `get_token_payload` does.
///
/// Only the first `.`-segment is read; padding is restored before decoding (both the
/// URL-safe and the standard base64 alphabets are accepted, as in Python). The payload
/// must be a JSON object with a string `session_id`. `__bk__zlib_`, when present, is
/// base64-decoded, inflated (zlib, RFC 1950) and its keys are merged into the payload
/// in Python `dict.update` fashion, so they may override `session_expiry`.
///
/// # Errors
/// A [`TokenError`] naming the first problem found: bad base64, not JSON, not an object,
/// missing or non-string `session_id`, a bad `__bk__zlib_`, a `session_id` inside the
/// extra payload, or a non-numeric `session_expiry`.
pub fn decode_token(token: &str) -> Result<TokenPayload, TokenError> {
    let mut object = decode_first_segment(token)?;
    let session_id = take_session_id(&mut object)?;
    if let Some(compressed) = object.shift_remove(ZLIB_KEY) {
        let extra = inflate_extra(&compressed)?;
        if extra.contains_key("session_id") {
            return Err(TokenError::ForbiddenExtraKey);
        }
        for (key, value) in extra {
            object.insert(key, value);
        }
    }
    into_payload(session_id, object)
}

/// Decodes a token's `session_id` and `session_expiry` only, leaving the extra payload
/// compressed: `__bk__zlib_`, if present, stays in [`TokenPayload::extra`] as the string
/// it is, never inflated. This is what a server that runs no application code needs at
/// the websocket handshake; it costs no more than the token's length.
///
/// Unlike [`decode_token`], an extra payload that would override `session_expiry` is not
/// seen (Bokeh's own tokens never do that).
///
/// # Errors
/// As [`decode_token`], except for the errors of the extra payload.
pub fn decode_token_claims(token: &str) -> Result<TokenPayload, TokenError> {
    let mut object = decode_first_segment(token)?;
    let session_id = take_session_id(&mut object)?;
    into_payload(session_id, object)
}

/// The payload of a decoded object: `session_expiry` taken out, the rest kept as extra.
fn into_payload(
    session_id: String,
    mut object: Map<String, Value>,
) -> Result<TokenPayload, TokenError> {
    let session_expiry = match object.shift_remove("session_expiry") {
        None => None,
        Some(value) => Some(expiry_from_json(&value)?),
    };
    Ok(TokenPayload {
        session_id,
        session_expiry,
        extra: object,
    })
}

/// Checks a token's signatures by Bokeh's rules (spec §2.4).
///
/// With `secret == None` (signing off) every token is accepted. Otherwise the token must
/// contain a `.`; the part after the first `.` must be the signature of the part before
/// it; and the embedded `session_id` must itself be a validly signed id. An undecodable
/// payload is rejected. Comparisons are constant-time.
pub fn check_token_signature(token: &str, secret: Option<&[u8]>) -> bool {
    let Some(secret) = secret else {
        return true;
    };
    let Some((base, provided)) = token.split_once('.') else {
        return false;
    };
    let token_valid = signature_matches(base, provided, secret);
    let id_valid = match token_session_id(token) {
        Ok(session_id) => check_session_id_signature(&session_id, secret),
        Err(_) => false,
    };
    token_valid & id_valid
}

/// Checks a decoded token's expiry against the current time (`now >= expiry` is expired).
///
/// # Errors
/// [`TokenError::MissingExpiry`] when the payload has no `session_expiry`;
/// [`TokenError::Expired`] when `now_epoch_secs >= session_expiry`.
pub fn check_token_expiry(payload: &TokenPayload, now_epoch_secs: i64) -> Result<(), TokenError> {
    match payload.session_expiry {
        None => Err(TokenError::MissingExpiry),
        Some(expiry) if now_epoch_secs >= expiry => Err(TokenError::Expired {
            expiry,
            now: now_epoch_secs,
        }),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 block size, the HMAC key size.
const SHA256_BLOCK: usize = 64;

/// HMAC-SHA256 of `message` under `key`.
///
/// The key is brought to block size first (hashed when longer, zero-padded), which is
/// what HMAC does internally anyway; this keeps the construction infallible.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; SHA256_BLOCK];
    if key.len() > SHA256_BLOCK {
        let digest = Sha256::digest(key);
        for (dst, src) in block.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
    } else {
        for (dst, src) in block.iter_mut().zip(key.iter()) {
            *dst = *src;
        }
    }
    let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block.into());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `base64url_nopad(HMAC-SHA256(secret, utf8(text)))`.
fn signature(text: &str, secret: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(hmac_sha256(secret, text.as_bytes()))
}

/// Constant-time check that `provided` is the signature of `text`.
fn signature_matches(text: &str, provided: &str, secret: &[u8]) -> bool {
    let expected = signature(text, secret);
    bool::from(expected.as_bytes().ct_eq(provided.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// Base64-decodes a token segment: standard alphabet mapped to URL-safe, padding optional.
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    let mapped: Vec<u8> = text
        .bytes()
        .map(|b| match b {
            b'+' => b'-',
            b'/' => b'_',
            other => other,
        })
        .collect();
    LENIENT_URL_SAFE.decode(mapped).ok()
}

/// Decodes the first `.`-segment of a token into a JSON object.
fn decode_first_segment(token: &str) -> Result<Map<String, Value>, TokenError> {
    let segment = token.split('.').next().unwrap_or_default();
    let bytes = decode_b64(segment).ok_or(TokenError::InvalidBase64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(TokenError::NotAnObject),
        Err(e) => Err(TokenError::NotJson(e.to_string())),
    }
}

/// Removes and returns the string `session_id` of a payload object.
fn take_session_id(object: &mut Map<String, Value>) -> Result<String, TokenError> {
    match object.shift_remove("session_id") {
        Some(Value::String(id)) => Ok(id),
        Some(_) => Err(TokenError::SessionIdNotString),
        None => Err(TokenError::MissingSessionId),
    }
}

/// Decodes, inflates and parses the `__bk__zlib_` value.
fn inflate_extra(value: &Value) -> Result<Map<String, Value>, TokenError> {
    let Value::String(text) = value else {
        return Err(TokenError::ExtraNotString);
    };
    let compressed = decode_b64(text).ok_or(TokenError::ExtraInvalidBase64)?;
    let limit = MAX_EXTRA_PAYLOAD_BYTES;
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(|e| TokenError::ExtraInvalidZlib(e.to_string()))?;
    if inflated.len() > limit {
        return Err(TokenError::ExtraTooLarge { limit });
    }
    match serde_json::from_slice::<Value>(&inflated) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(TokenError::ExtraNotAnObject),
        Err(e) => Err(TokenError::ExtraNotJson(e.to_string())),
    }
}

/// Converts a JSON `session_expiry` to integer seconds (fractions rounded up, saturating).
fn expiry_from_json(value: &Value) -> Result<i64, TokenError> {
    let Value::Number(n) = value else {
        return Err(TokenError::InvalidExpiry);
    };
    if let Some(i) = n.as_i64() {
        Ok(i)
    } else if n.as_u64().is_some() {
        Ok(i64::MAX)
    } else {
        match n.as_f64() {
            // `as` saturates at the i64 bounds.
            Some(f) if f.is_finite() => Ok(f.ceil() as i64),
            _ => Err(TokenError::InvalidExpiry),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Python `json.dumps` (default separators, ensure_ascii=True)
// ---------------------------------------------------------------------------------------

/// Writes `value` as Python's `json.dumps(value)` would.
fn write_py_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_py_number(out, n),
        Value::String(s) => write_py_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_value(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => write_py_object(out, object),
    }
}

/// Writes an object as `{"k": v, "k2": v2}` in the map's order.
fn write_py_object(out: &mut String, object: &Map<String, Value>) {
    out.push('{');
    for (i, (key, value)) in object.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_py_string(out, key);
        out.push_str(": ");
        write_py_value(out, value);
    }
    out.push('}');
}

/// Writes a number: integers exactly, floats as Python's `float.__repr__`.
fn write_py_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_py_float(out, f);
    } else {
        // Only reachable with serde_json's arbitrary_precision: keep the literal text.
        let _ = write!(out, "{n}");
    }
}

/// Writes a float like Python's `repr`: shortest round-trip digits, positional notation
/// when the decimal exponent is in `-4 < decpt <= 16`, else `d.ddde±XX`.
fn write_py_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let (digits, exponent) = shortest_digits(f.abs());
    // Position of the decimal point relative to the start of `digits`.
    let decpt = exponent.saturating_add(1);
    let n_digits = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    if decpt <= -4 || decpt > 16 {
        let mut chars = digits.chars();
        if let Some(first) = chars.next() {
            out.push(first);
        }
        let rest = chars.as_str();
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = decpt - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", e.unsigned_abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..(-decpt) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt < n_digits {
        let split = usize::try_from(decpt).unwrap_or(0);
        let (int_part, frac_part) = digits.split_at(split.min(digits.len()));
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
    } else {
        out.push_str(&digits);
        for _ in 0..(decpt - n_digits) {
            out.push('0');
        }
        out.push_str(".0");
    }
}

/// Splits a finite, non-negative float in scientific form `d.ddd × 10^exponent` into
/// its digits and exponent.
fn sci_parts(formatted: &str) -> (String, i64) {
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((formatted, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

/// The shortest digits that round-trip to `f` (finite, non-negative) and their decimal
/// exponent, with ties broken to an even last digit as Python's `repr` (David Gay's
/// `dtoa` mode 0) does.
///
/// Rust's `{:e}` also yields the shortest round-trip digits, but when the float lies
/// exactly halfway between the two nearest candidates of that length it picks the upper
/// one (e.g. `591678126893670.3` where Python prints `591678126893670.2`).
fn shortest_digits(f: f64) -> (String, i64) {
    let (digits, exponent) = sci_parts(&format!("{f:e}"));
    let odd_last = digits.bytes().last().is_some_and(|d| (d - b'0') % 2 == 1);
    if !odd_last {
        return (digits, exponent);
    }
    // The exact decimal expansion of a double has at most 767 significant digits.
    let (exact, exact_exponent) = sci_parts(&format!("{f:.800e}"));
    let k = digits.len();
    let is_tie = exact_exponent == exponent
        && exact.as_bytes().get(k) == Some(&b'5')
        && exact.bytes().skip(k + 1).all(|d| d == b'0');
    if !is_tie {
        return (digits, exponent);
    }
    // `digits` is either the truncation of the exact value (the other candidate is one
    // unit above) or one unit above it (the other candidate is the truncation). An odd
    // last digit changes by one without carrying, except 9 going up, which would give a
    // trailing zero and so a shorter form, which `{:e}` would already have found.
    let mut other = digits.clone().into_bytes();
    let truncated = exact.as_bytes().get(..k) == Some(digits.as_bytes());
    if let Some(last) = other.last_mut() {
        match (truncated, *last) {
            (true, b'9') => return (digits, exponent),
            (true, d) => *last = d + 1,
            (false, d) => *last = d - 1,
        }
    }
    let Ok(other) = String::from_utf8(other) else {
        return (digits, exponent);
    };
    let (head, tail) = other.split_at(1.min(other.len()));
    let round_trips = format!("{head}.{tail}e{exponent}").parse::<f64>() == Ok(f);
    if round_trips {
        (other, exponent)
    } else {
        (digits, exponent)
    }
}

/// Writes a string literal with Python's `ensure_ascii` escaping: printable ASCII as is
/// (except `"` and `\`), the usual short escapes, everything else as `\uXXXX` (UTF-16,
/// lower-case hex, surrogate pairs outside the BMP).
fn write_py_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}
