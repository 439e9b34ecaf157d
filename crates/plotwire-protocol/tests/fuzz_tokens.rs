//! Fuzzes session ids and tokens (`plotwire_protocol::token`): `decode_token`,
//! `token_session_id`, `check_token_signature`, `check_session_id_signature` and
//! `check_token_expiry` on (1) arbitrary and base64-like strings, (2) byte mutations of
//! the Bokeh 3.9.2 vectors in `tests/fixtures/bokeh-3.9.2/tokens.json` and of freshly
//! generated signed tokens, and (3) structured payloads (odd `session_id`s and expiries,
//! valid, truncated and non-string `__bk__zlib_`, either base64 alphabet, padding).
//!
//! Properties: nothing panics; a random string never verifies under a secret; a mutated
//! signed token or signed session id never verifies unless the mutation left it
//! unchanged (and then it verifies exactly as before), nor under a different secret
//! (different after HMAC's zero padding); `decode_token` and `token_session_id` agree;
//! `check_token_expiry` fails exactly when the expiry is missing or `now >= expiry`.
//! Case count: `PLOTWIRE_FUZZ_CASES`.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::io::Write as _;
use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::{byte_mutation, fixtures, fuzz, json_value, mutated, ByteMutation};
use plotwire_protocol::token::{
    check_session_id_signature, check_token_expiry, check_token_signature, decode_token,
    generate_token, sign_session_id, token_session_id, TokenError,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value as Json};

struct Vectors {
    secret: Vec<u8>,
    /// `(token, verifies with the secret)`.
    tokens: Vec<(String, bool)>,
    /// The signed session id.
    session_id: String,
}

fn vectors() -> &'static Vectors {
    static V: OnceLock<Vectors> = OnceLock::new();
    V.get_or_init(|| {
        let path = fixtures().join("tokens.json");
        let v: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut tokens: Vec<(String, bool)> = v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["token"].as_str().unwrap().to_owned(),
                    t["check_token_signature(signed=True)"].as_bool().unwrap(),
                )
            })
            .collect();
        tokens.push((
            v["bokehjs_DEFAULT_TOKEN"]["token"]
                .as_str()
                .unwrap()
                .to_owned(),
            false,
        ));
        assert_eq!(tokens.len(), 5);
        assert!(tokens.iter().any(|(_, ok)| *ok), "a vector that verifies");
        Vectors {
            secret: v["secret_key_utf8"].as_str().unwrap().as_bytes().to_vec(),
            tokens,
            session_id: v["signed_session_id"]["session_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    })
}

/// The key HMAC-SHA256 actually uses: hashed when longer than a block, zero-padded.
fn hmac_key(secret: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let mut k = if secret.len() > 64 {
        sha2::Sha256::digest(secret).to_vec()
    } else {
        secret.to_vec()
    };
    k.resize(64, 0);
    k
}

/// The properties every input must have, whatever it is.
fn check_any(token: &str, secret: &[u8], now: i64) -> Result<(), TestCaseError> {
    prop_assert!(check_token_signature(token, None));
    let id = token_session_id(token);
    match decode_token(token) {
        Ok(payload) => {
            prop_assert_eq!(id.as_ref(), Ok(&payload.session_id));
            prop_assert!(!payload.extra.contains_key("session_id"));
            prop_assert!(!payload.extra.contains_key("session_expiry"));
            prop_assert!(!payload.extra.contains_key("__bk__zlib_"));
            match (check_token_expiry(&payload, now), payload.session_expiry) {
                (Err(TokenError::MissingExpiry), None) => {}
                (Err(TokenError::Expired { expiry, now: n }), Some(e)) => {
                    prop_assert!(now >= e);
                    prop_assert_eq!((expiry, n), (e, now));
                }
                (Ok(()), Some(e)) => prop_assert!(now < e),
                (r, e) => prop_assert!(false, "check_token_expiry {:?} for expiry {:?}", r, e),
            }
        }
        // The session id is read before anything else of the payload.
        Err(
            e @ (TokenError::InvalidBase64
            | TokenError::NotJson(_)
            | TokenError::NotAnObject
            | TokenError::MissingSessionId
            | TokenError::SessionIdNotString),
        ) => prop_assert_eq!(id.clone(), Err(e)),
        Err(_) => prop_assert!(id.is_ok()),
    }
    let signed = check_token_signature(token, Some(secret));
    if signed {
        // Only possible if both signatures are right: the payload decodes to a signed id.
        let sid = id.map_err(|e| TestCaseError::fail(format!("verified but {e}")))?;
        prop_assert!(check_session_id_signature(&sid, secret));
    }
    Ok(())
}

fn now() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 1_799_999_000i64..1_800_001_000,
        1 => any::<i64>(),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
    ]
}

#[test]
fn fuzz_arbitrary_strings() {
    let v = vectors();
    fuzz(
        "tokens/strings",
        file!(),
        512,
        (
            prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_=+/.-]{0,200}",
                "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{43}",
            ],
            now(),
        ),
        |(s, now)| {
            check_any(&s, &v.secret, now)?;
            prop_assert!(!check_token_signature(&s, Some(&v.secret)), "forged: {}", s);
            prop_assert!(
                !check_session_id_signature(&s, &v.secret),
                "forged id: {}",
                s
            );
            Ok(())
        },
    );
}

fn mutated_str(s: &str, muts: &[ByteMutation]) -> String {
    match String::from_utf8(mutated(s.as_bytes(), muts)) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[test]
fn fuzz_mutated_fixture_tokens() {
    let v = vectors();
    fuzz(
        "tokens/fixtures",
        file!(),
        512,
        (
            0..v.tokens.len() + 1,
            prop::collection::vec(byte_mutation(), 0..4),
            prop::collection::vec(byte_mutation(), 0..2),
            now(),
        ),
        |(i, muts, secret_muts, now)| {
            let secret = mutated(&v.secret, &secret_muts);
            let same_key = hmac_key(&secret) == hmac_key(&v.secret);
            if i == v.tokens.len() {
                // The signed session id.
                let id = mutated_str(&v.session_id, &muts);
                let ok = check_session_id_signature(&id, &secret);
                prop_assert_eq!(ok, id == v.session_id && same_key, "{}", id);
                check_any(&id, &secret, now)?;
                return Ok(());
            }
            let (original, verifies) = &v.tokens[i];
            let token = mutated_str(original, &muts);
            check_any(&token, &secret, now)?;
            let ok = check_token_signature(&token, Some(&secret));
            prop_assert_eq!(ok, token == *original && *verifies && same_key, "{}", token);
            if token == *original {
                prop_assert!(decode_token(&token).is_ok());
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_mutated_generated_tokens() {
    let v = vectors();
    fuzz(
        "tokens/generated",
        file!(),
        256,
        (
            "[A-Za-z0-9]{0,44}",
            any::<i64>(),
            prop::collection::vec(("[a-z_]{1,8}", json_value(2)), 0..3),
            prop::collection::vec(byte_mutation(), 1..4),
            now(),
        ),
        |(base, expiry, extra, muts, now)| {
            let extra: Map<String, Json> = extra
                .into_iter()
                .filter(|(k, _)| k != "session_id")
                .collect();
            let sid = sign_session_id(&base, &v.secret);
            let token = generate_token(&sid, expiry, Some(&extra), Some(&v.secret)).unwrap();
            prop_assert!(check_token_signature(&token, Some(&v.secret)));
            let payload = decode_token(&token).unwrap();
            prop_assert_eq!(payload.session_expiry, Some(expiry));
            let bad = mutated_str(&token, &muts);
            check_any(&bad, &v.secret, now)?;
            prop_assert_eq!(check_token_signature(&bad, Some(&v.secret)), bad == token);
            let bad_id = mutated_str(&sid, &muts);
            prop_assert_eq!(
                check_session_id_signature(&bad_id, &v.secret),
                bad_id == sid
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------
// Structured payloads
// ---------------------------------------------------------------------------------------

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zlib_value() -> impl Strategy<Value = Json> {
    let obj = prop::collection::vec(("[a-z_]{0,8}", json_value(2)), 0..4)
        .prop_map(|kv| Json::Object(kv.into_iter().collect()));
    prop_oneof![
        3 => obj.clone().prop_map(|o| Json::from(URL_SAFE_NO_PAD.encode(zlib(o.to_string().as_bytes())))),
        // With session_id or session_expiry inside, which is forbidden or overrides.
        1 => (obj.clone(), prop_oneof![Just("session_id"), Just("session_expiry")], json_value(1)).prop_map(|(o, k, v)| {
            let mut o = o.as_object().cloned().unwrap_or_default();
            o.insert(k.to_owned(), v);
            Json::from(STANDARD.encode(zlib(Json::Object(o).to_string().as_bytes())))
        }),
        1 => (obj, any::<prop::sample::Index>()).prop_map(|(o, cut)| {
            let z = zlib(o.to_string().as_bytes());
            Json::from(URL_SAFE_NO_PAD.encode(&z[..cut.index(z.len())]))
        }),
        1 => json_value(1).prop_map(|j| Json::from(URL_SAFE_NO_PAD.encode(zlib(j.to_string().as_bytes())))),
        1 => json_value(1),
        1 => "[A-Za-z0-9_=+/-]{0,40}".prop_map(Json::from),
    ]
}

fn payload() -> impl Strategy<Value = Json> {
    let session_id = prop_oneof![
        4 => "[A-Za-z0-9.]{0,50}".prop_map(Json::from),
        1 => json_value(1),
    ];
    let expiry = prop::sample::select(vec![
        json!(1_800_000_300i64),
        json!(0),
        json!(-1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1.5),
        json!(-0.5),
        json!(1e300),
        json!(-1e300),
        json!(1_800_000_000.000_001),
        json!("1800000300"),
        json!(null),
        json!([]),
    ]);
    (
        prop::option::weighted(0.9, session_id),
        prop::option::weighted(0.8, expiry),
        prop::option::weighted(0.4, zlib_value()),
        prop::collection::vec(("[a-z_]{0,8}", json_value(1)), 0..2),
    )
        .prop_map(|(sid, exp, z, other)| {
            let mut o = Map::new();
            if let Some(s) = sid {
                o.insert("session_id".into(), s);
            }
            if let Some(e) = exp {
                o.insert("session_expiry".into(), e);
            }
            if let Some(z) = z {
                o.insert("__bk__zlib_".into(), z);
            }
            for (k, v) in other {
                o.insert(k, v);
            }
            Json::Object(o)
        })
}

#[test]
fn fuzz_structured_payloads() {
    let v = vectors();
    fuzz(
        "tokens/payloads",
        file!(),
        384,
        (
            prop_oneof![4 => payload(), 1 => json_value(2)],
            0usize..4,
            prop::option::of("[A-Za-z0-9_-]{0,44}"),
            now(),
        ),
        |(payload, alphabet, sig, now)| {
            let text = payload.to_string();
            let engine = [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD][alphabet];
            let mut token = engine.encode(text.as_bytes());
            if let Some(sig) = &sig {
                token = format!("{token}.{sig}");
            }
            check_any(&token, &v.secret, now)?;
            prop_assert!(!check_token_signature(&token, Some(&v.secret)));
            if let Ok(p) = decode_token(&token) {
                prop_assert_eq!(
                    Some(&Json::from(p.session_id.clone())),
                    payload.get("session_id")
                );
                if let Some(e) = payload.get("session_expiry").and_then(Json::as_i64) {
                    let overridden = payload.get("__bk__zlib_").is_some();
                    prop_assert!(overridden || p.session_expiry == Some(e));
                }
            }
            Ok(())
        },
    );
}
