//! Session ids and tokens against the vectors Bokeh 3.9.2's own `bokeh.util.token` produced
//! (`tests/fixtures/bokeh-3.9.2/tokens.json` and the tokens in `ws-edge-cases.jsonl`).

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use plotwire_protocol::token::{
    check_session_id_signature, check_token_expiry, check_token_signature, decode_token,
    decode_token_claims, generate_token, new_session_id, sign_session_id, token_session_id,
    TokenError, TokenPayload, MAX_EXTRA_PAYLOAD_BYTES, SESSION_ID_LENGTH,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bokeh-3.9.2")
}

fn load_json(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn vectors() -> Value {
    load_json("tokens.json")
}

fn secret(v: &Value) -> Vec<u8> {
    v["secret_key_utf8"]
        .as_str()
        .expect("secret_key_utf8")
        .as_bytes()
        .to_vec()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key}"))
}

/// The fixture renders Python `bytes` (as decoded by Bokeh's `_BytesDecoder`) as
/// `{"bytes(base64)": <padded standard base64>}`. On the wire, and in our `extra`, they are
/// `{"bytes": <unpadded URL-safe base64>}`. Convert the former into the latter.
fn wire_form_of_fixture_bytes(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            if object.len() == 1 {
                if let Some(Value::String(b64)) = object.get("bytes(base64)") {
                    let raw = STANDARD.decode(b64).expect("fixture bytes(base64)");
                    return json!({ "bytes": URL_SAFE_NO_PAD.encode(raw) });
                }
            }
            Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), wire_form_of_fixture_bytes(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(wire_form_of_fixture_bytes).collect()),
        other => other.clone(),
    }
}

fn first_segment_text(token: &str) -> String {
    let segment = token.split('.').next().unwrap_or_default();
    String::from_utf8(URL_SAFE_NO_PAD.decode(segment).expect("base64 segment")).expect("utf-8")
}

fn inflate(b64: &str) -> String {
    let compressed = URL_SAFE_NO_PAD.decode(b64).expect("zlib base64");
    let mut out = String::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .read_to_string(&mut out)
        .expect("zlib stream");
    out
}

fn zlib_token(payload: &Value, extra_text: &[u8]) -> String {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(extra_text).expect("compress");
    let compressed = URL_SAFE_NO_PAD.encode(enc.finish().expect("compress"));
    let mut payload = payload.as_object().expect("object").clone();
    payload.insert("__bk__zlib_".into(), Value::String(compressed));
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).expect("json"))
}

fn raw_token(json_text: &str) -> String {
    URL_SAFE_NO_PAD.encode(json_text.as_bytes())
}

// ---------------------------------------------------------------------------------------
// tokens.json
// ---------------------------------------------------------------------------------------

#[test]
fn fixture_tokens_decode() {
    let v = vectors();
    let tokens = v["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 4, "expected the four recorded vectors");
    for t in tokens {
        let name = str_field(t, "name");
        let token = str_field(t, "token");
        // The vector itself: its first segment is the recorded payload text.
        assert_eq!(
            first_segment_text(token),
            str_field(t, "payload_segment_decoded"),
            "{name}"
        );

        let payload = decode_token(token).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(payload.session_id, str_field(t, "session_id"), "{name}");
        assert_eq!(
            token_session_id(token).as_deref(),
            Ok(str_field(t, "session_id"))
        );

        // `get_token_payload` is the payload minus session_id, zlib extra merged in.
        let mut expected = wire_form_of_fixture_bytes(&t["get_token_payload"])
            .as_object()
            .expect("get_token_payload object")
            .clone();
        let expiry = expected
            .shift_remove("session_expiry")
            .and_then(|e| e.as_i64());
        assert_eq!(payload.session_expiry, expiry, "{name}");
        assert_eq!(payload.extra, expected, "{name}");
        // Key order is kept too (Python dicts are ordered).
        let got_keys: Vec<&String> = payload.extra.keys().collect();
        let want_keys: Vec<&String> = expected.keys().collect();
        assert_eq!(got_keys, want_keys, "{name}");
    }
}

#[test]
fn fixture_tokens_signature_checks() {
    let v = vectors();
    let key = secret(&v);
    for t in v["tokens"].as_array().expect("tokens") {
        let name = str_field(t, "name");
        let token = str_field(t, "token");
        let on = t["check_token_signature(signed=True)"]
            .as_bool()
            .expect("bool");
        let off = t["check_token_signature(signed=False)"]
            .as_bool()
            .expect("bool");
        assert_eq!(
            check_token_signature(token, Some(&key)),
            on,
            "{name} signed=True"
        );
        assert_eq!(
            check_token_signature(token, None),
            off,
            "{name} signed=False"
        );
        // A wrong key never verifies.
        assert!(
            !check_token_signature(token, Some(b"another-key")),
            "{name}"
        );
    }
}

#[test]
fn fixture_tokens_regenerate() {
    let v = vectors();
    let key = secret(&v);
    let now = v["frozen_now_epoch_seconds"].as_i64().expect("frozen now");
    assert_eq!(now, 1_800_000_000);
    for t in v["tokens"].as_array().expect("tokens") {
        let name = str_field(t, "name");
        let token = str_field(t, "token");
        let expiry = now + t["expiration"].as_i64().expect("expiration");
        let signed = token.contains('.');
        let secret = signed.then_some(key.as_slice());
        let session_id = str_field(t, "session_id");

        match t.get("zlib_json_text").and_then(Value::as_str) {
            None => {
                let generated = generate_token(session_id, expiry, None, secret).expect("generate");
                assert_eq!(generated, token, "{name}: byte-for-byte");
                // An empty extra map is the same as none (Python: `if extra_payload:`).
                let generated =
                    generate_token(session_id, expiry, Some(&Map::new()), secret).expect("gen");
                assert_eq!(generated, token, "{name}: empty extra");
            }
            Some(zlib_text) => {
                // The extra payload as Bokeh's page handler passed it, in its key order.
                let extra: Map<String, Value> = serde_json::from_str(zlib_text).expect("extra");
                let generated =
                    generate_token(session_id, expiry, Some(&extra), secret).expect("generate");
                assert_eq!(generated.contains('.'), signed, "{name}");

                // Our deflate stream may differ from C zlib's (miniz_oxide vs zlib), so
                // compare everything else byte-for-byte: the inflated JSON text ...
                let ours_text = first_segment_text(&generated);
                let ours: Map<String, Value> = serde_json::from_str(&ours_text).expect("json");
                let ours_zlib = ours["__bk__zlib_"].as_str().expect("zlib field");
                assert_eq!(inflate(ours_zlib), zlib_text, "{name}: json.dumps(extra)");
                let theirs_text = str_field(t, "payload_segment_decoded");
                let theirs: Map<String, Value> = serde_json::from_str(theirs_text).expect("json");
                let theirs_zlib = theirs["__bk__zlib_"].as_str().expect("zlib field");
                assert_eq!(
                    inflate(theirs_zlib),
                    zlib_text,
                    "{name}: vector consistency"
                );
                // ... the zlib header (level 9: 78 DA) ...
                assert_eq!(
                    URL_SAFE_NO_PAD.decode(ours_zlib).expect("b64")[..2],
                    [0x78, 0xDA],
                    "{name}: zlib header"
                );
                // ... and the outer payload text with the compressed field swapped in.
                assert_eq!(
                    ours_text,
                    theirs_text.replace(theirs_zlib, ours_zlib),
                    "{name}: outer json.dumps"
                );
                // Decoding our token gives what decoding Bokeh's gives.
                assert_eq!(
                    decode_token(&generated).expect("decode ours"),
                    decode_token(token).expect("decode theirs"),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn fixture_signed_session_id() {
    let v = vectors();
    let key = secret(&v);
    let s = &v["signed_session_id"];
    let base = str_field(s, "base");
    let full = str_field(s, "session_id");
    assert_eq!(base.len(), SESSION_ID_LENGTH);
    assert_eq!(sign_session_id(base, &key), full);
    assert_eq!(full, format!("{base}.{}", str_field(s, "signature")));
    assert_eq!(full.len(), 88);
    assert!(check_session_id_signature(full, &key));
    assert!(!check_session_id_signature(base, &key), "no signature");
    assert!(!check_session_id_signature(full, b"wrong"), "wrong key");
    assert!(
        !check_session_id_signature(&format!("{full}x"), &key),
        "tampered sig"
    );
    assert!(
        !check_session_id_signature(&format!("x{full}"), &key),
        "tampered base"
    );

    // new_session_id draws from Bokeh's alphabet order: a-z, A-Z, 0-9.
    let alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut indices = base
        .chars()
        .map(|c| alphabet.find(c).expect("alphabet char"));
    let generated = new_session_id(
        |n| {
            assert_eq!(n, 62);
            indices.next().expect("44 picks")
        },
        Some(&key),
    );
    assert_eq!(generated, full);
}

#[test]
fn bokehjs_default_token_decodes() {
    let v = vectors();
    let d = &v["bokehjs_DEFAULT_TOKEN"];
    let token = str_field(d, "token");
    assert_eq!(first_segment_text(token), str_field(d, "decoded"));
    let payload = decode_token(token).expect("default token");
    assert_eq!(
        payload,
        TokenPayload {
            session_id: "default".into(),
            session_expiry: None,
            extra: Map::new(),
        }
    );
    assert_eq!(
        check_token_expiry(&payload, 0),
        Err(TokenError::MissingExpiry)
    );
    assert!(check_token_signature(token, None));
    assert!(!check_token_signature(token, Some(&secret(&v))));
}

// ---------------------------------------------------------------------------------------
// ws-edge-cases.jsonl (signed-session server, same secret key)
// ---------------------------------------------------------------------------------------

#[test]
fn ws_edge_case_tokens() {
    let key = secret(&vectors());
    let path = fixtures_dir().join("ws-edge-cases.jsonl");
    let text = std::fs::read_to_string(&path).expect("ws-edge-cases.jsonl");
    let mut checked = 0;
    let mut expiries = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("jsonl line");
        let name = str_field(&case, "case");
        let Some(token) = case["subprotocols_sent"].get(1).and_then(Value::as_str) else {
            continue;
        };
        let payload = decode_token(token).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expect_valid = !matches!(
            name,
            "unsigned token on signed server" | "token signed but session id unsigned"
        );
        assert_eq!(
            check_token_signature(token, Some(&key)),
            expect_valid,
            "{name}"
        );
        assert!(check_token_signature(token, None), "{name}");
        if expect_valid {
            assert!(
                check_session_id_signature(&payload.session_id, &key),
                "{name}"
            );
            assert_eq!(payload.session_id.len(), 88, "{name}");
        } else {
            assert_eq!(payload.session_id, "plain-id", "{name}");
        }
        expiries.insert(name.to_owned(), payload.session_expiry.expect("expiry"));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} tokens found");
    // The expired token was refused when the valid one (same session id) was accepted.
    let valid = expiries["valid signed token"];
    let expired = expiries["expired signed token"];
    assert!(expired < valid);
    let expired_payload = TokenPayload {
        session_id: String::new(),
        session_expiry: Some(expired),
        extra: Map::new(),
    };
    assert!(check_token_expiry(&expired_payload, valid - 300).is_err());
}

// ---------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------

fn payload_with_expiry(expiry: Option<i64>) -> TokenPayload {
    TokenPayload {
        session_id: "s".into(),
        session_expiry: expiry,
        extra: Map::new(),
    }
}

#[test]
fn expiry_boundaries() {
    let p = payload_with_expiry(Some(1_800_000_300));
    assert_eq!(check_token_expiry(&p, 1_800_000_000), Ok(()));
    assert_eq!(check_token_expiry(&p, 1_800_000_299), Ok(()));
    assert_eq!(
        check_token_expiry(&p, 1_800_000_300),
        Err(TokenError::Expired {
            expiry: 1_800_000_300,
            now: 1_800_000_300
        }),
        "now == expiry is expired"
    );
    assert!(matches!(
        check_token_expiry(&p, 1_800_000_301),
        Err(TokenError::Expired { .. })
    ));
    assert_eq!(
        check_token_expiry(&payload_with_expiry(None), 0),
        Err(TokenError::MissingExpiry)
    );
    let err = check_token_expiry(&p, i64::MAX).expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn expiry_of_generated_tokens() {
    let token = generate_token("abc", 1_800_000_300, None, None).expect("generate");
    let p = decode_token(&token).expect("decode");
    assert_eq!(p.session_expiry, Some(1_800_000_300));
    assert!(check_token_expiry(&p, 1_800_000_000).is_ok());
    assert!(check_token_expiry(&p, 1_800_000_300).is_err());
    // Negative expiration (already expired at creation) works too.
    let token = generate_token("abc", -5, None, None).expect("generate");
    assert_eq!(
        decode_token(&token).expect("decode").session_expiry,
        Some(-5)
    );
}

#[test]
fn expiry_forms() {
    // Fractional expiry: `now >= 10.5` holds from now = 11, as in Python.
    let p =
        decode_token(&raw_token(r#"{"session_id": "s", "session_expiry": 10.5}"#)).expect("decode");
    assert_eq!(p.session_expiry, Some(11));
    assert!(check_token_expiry(&p, 10).is_ok());
    assert!(check_token_expiry(&p, 11).is_err());
    // Integral float.
    let p = decode_token(&raw_token(
        r#"{"session_id": "s", "session_expiry": 1800000300.0}"#,
    ))
    .expect("decode");
    assert_eq!(p.session_expiry, Some(1_800_000_300));
    // Huge integers saturate rather than fail.
    let p = decode_token(&raw_token(
        r#"{"session_id": "s", "session_expiry": 99999999999999999999}"#,
    ))
    .expect("decode");
    assert_eq!(p.session_expiry, Some(i64::MAX));
    // Non-numbers are refused (Bokeh would fail comparing them).
    for bad in [r#""1800000300""#, "null", "true", "[1]"] {
        let token = raw_token(&format!(
            r#"{{"session_id": "s", "session_expiry": {bad}}}"#
        ));
        assert_eq!(
            decode_token(&token),
            Err(TokenError::InvalidExpiry),
            "{bad}"
        );
    }
    // Keys of the zlib extra override the outer payload, as Python's dict.update does.
    let token = zlib_token(
        &json!({"session_id": "s", "session_expiry": 100}),
        br#"{"session_expiry": 5, "headers": {}}"#,
    );
    let p = decode_token(&token).expect("decode");
    assert_eq!(p.session_expiry, Some(5));
    assert_eq!(
        p.extra,
        json!({"headers": {}}).as_object().cloned().expect("obj")
    );
}

// ---------------------------------------------------------------------------------------
// Generation details
// ---------------------------------------------------------------------------------------

const FIXTURE_KEY: &[u8] = b"fixture-secret-key-0123456789abcdefghijklmnopqrstuvwxyz";

#[test]
fn non_ascii_session_id_is_escaped_like_python() {
    // Expected values computed with Python json.dumps and bokeh.util.token._signature.
    let id = "caf\u{e9}-\u{1F600}-\"x\"";
    assert_eq!(
        generate_token(id, 1_800_000_300, None, None).expect("generate"),
        "eyJzZXNzaW9uX2lkIjogImNhZlx1MDBlOS1cdWQ4M2RcdWRlMDAtXCJ4XCIiLCAic2Vzc2lvbl9leHBpcnkiOiAxODAwMDAwMzAwfQ"
    );
    let signed = generate_token(id, 1_800_000_300, None, Some(FIXTURE_KEY)).expect("generate");
    assert_eq!(
        signed,
        "eyJzZXNzaW9uX2lkIjogImNhZlx1MDBlOS1cdWQ4M2RcdWRlMDAtXCJ4XCIiLCAic2Vzc2lvbl9leHBpcnkiOiAxODAwMDAwMzAwfQ.VM2jWGefWt-piMwQh9BL2VLmY__K8nTeSFSWftuHdmY"
    );
    assert_eq!(decode_token(&signed).expect("decode").session_id, id);
    // Session id signatures sign the UTF-8 bytes.
    assert_eq!(
        sign_session_id("caf\u{e9}", FIXTURE_KEY),
        "caf\u{e9}.628Ku1QQ-c-zW5ZJBQUrdt1JYIE0G5-czehSYGtJBFs"
    );
    // Keys longer than a SHA-256 block, and the empty key.
    assert_eq!(
        sign_session_id("abc", &[b'k'; 100]),
        "abc.tYsraU_boN122j6-mRdPco0ydWDzbs4iTpCGeXJHmSI"
    );
    assert_eq!(
        sign_session_id("abc", b""),
        "abc._XrbFSwF74Dcz1Ch-kwF1aPsbalVdfwxKufF0JGDY1E"
    );
}

#[test]
fn extra_json_matches_python_json_dumps() {
    let extra = json!({
        "s": "caf\u{e9} \u{1F600} \"q\" \\ \n\r\t\u{8}\u{c} \u{1} \u{7f} ~",
        "f": [0.1, 1.5, -0.0, 0.0, 1e16, 1e15, 123456789012345680000.0, 1e22, 1e-05, 0.0001,
              2.5e-07, 1.7976931348623157e308, 5e-324, -3.25, 100.0, 1234.5678],
        "i": [0, -1, 9007199254740993_i64, i64::MIN, u64::MAX],
        // Halfway cases: Python breaks ties between shortest candidates to even.
        // (591678126893670.25 and -633018349089.78125, written exactly.)
        "t": [2_366_712_507_574_681.0_f64 / 4.0, -20_256_587_170_873.0_f64 / 32.0, 0.5, 2.5, 1e23,
              2.2250738585072014e-308],
        "n": null,
        "b": [true, false],
        "e": {},
        "l": [],
        "nested": {"a": [{"b": {}}]},
        "\u{fc}": 1
    });
    // Printed by Python 3.11: json.dumps(<the same dict>).
    let python = r#"{"s": "caf\u00e9 \ud83d\ude00 \"q\" \\ \n\r\t\b\f \u0001 \u007f ~", "f": [0.1, 1.5, -0.0, 0.0, 1e+16, 1000000000000000.0, 1.2345678901234568e+20, 1e+22, 1e-05, 0.0001, 2.5e-07, 1.7976931348623157e+308, 5e-324, -3.25, 100.0, 1234.5678], "i": [0, -1, 9007199254740993, -9223372036854775808, 18446744073709551615], "t": [591678126893670.2, -633018349089.7812, 0.5, 2.5, 1e+23, 2.2250738585072014e-308], "n": null, "b": [true, false], "e": {}, "l": [], "nested": {"a": [{"b": {}}]}, "\u00fc": 1}"#;
    let token = generate_token("sid", 1, extra.as_object(), None).expect("generate");
    let outer: Map<String, Value> =
        serde_json::from_str(&first_segment_text(&token)).expect("outer");
    assert_eq!(
        inflate(outer["__bk__zlib_"].as_str().expect("zlib")),
        python
    );
    let decoded = decode_token(&token).expect("decode");
    assert_eq!(Value::Object(decoded.extra), extra);
}

#[test]
fn session_id_in_extra_is_forbidden() {
    let extra = json!({"session_id": "x", "headers": {}});
    assert_eq!(
        generate_token("sid", 1, extra.as_object(), None),
        Err(TokenError::ForbiddenExtraKey)
    );
    let token = zlib_token(
        &json!({"session_id": "s", "session_expiry": 1}),
        br#"{"session_id": "other"}"#,
    );
    assert_eq!(decode_token(&token), Err(TokenError::ForbiddenExtraKey));
    // Only the extra payload is refused; reading the id alone still works, as in Bokeh.
    assert_eq!(token_session_id(&token).as_deref(), Ok("s"));
}

#[test]
fn new_session_ids() {
    let mut counter = 0usize;
    let id = new_session_id(
        |n| {
            counter += 1;
            counter % n
        },
        None,
    );
    assert_eq!(id.len(), SESSION_ID_LENGTH);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(id.starts_with("bcdefghij"));
    let signed = new_session_id(|_| 0, Some(FIXTURE_KEY));
    assert_eq!(signed.len(), 88);
    assert!(signed.starts_with(&"a".repeat(44)));
    assert!(check_session_id_signature(&signed, FIXTURE_KEY));
    // A misbehaving picker must not panic.
    let id = new_session_id(|_| usize::MAX, None);
    assert_eq!(id.len(), SESSION_ID_LENGTH);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn signature_rules() {
    let sid = sign_session_id("base", FIXTURE_KEY);
    let good = generate_token(&sid, 10, None, Some(FIXTURE_KEY)).expect("generate");
    assert!(check_token_signature(&good, Some(FIXTURE_KEY)));
    let (payload_b64, sig) = good.split_once('.').expect("signed");
    // No signature at all.
    assert!(!check_token_signature(payload_b64, Some(FIXTURE_KEY)));
    // Empty, truncated, extended signatures; a third segment.
    assert!(!check_token_signature(
        &format!("{payload_b64}."),
        Some(FIXTURE_KEY)
    ));
    assert!(!check_token_signature(
        &format!("{payload_b64}.{}", &sig[1..]),
        Some(FIXTURE_KEY)
    ));
    assert!(!check_token_signature(
        &format!("{good}A"),
        Some(FIXTURE_KEY)
    ));
    assert!(!check_token_signature(
        &format!("{good}.x"),
        Some(FIXTURE_KEY)
    ));
    // Signing off: anything goes, even garbage.
    assert!(check_token_signature("%%%.###", None));
    assert!(check_token_signature("", None));
    // Signing on: a correctly signed token whose payload is not a token is refused.
    let junk = URL_SAFE_NO_PAD.encode(b"not json");
    let junk_signed = format!(
        "{junk}.{}",
        sign_session_id(&junk, FIXTURE_KEY)
            .split_once('.')
            .expect("sig")
            .1
    );
    assert!(!check_token_signature(&junk_signed, Some(FIXTURE_KEY)));
    assert!(!check_token_signature("", Some(FIXTURE_KEY)));
}

// ---------------------------------------------------------------------------------------
// Decoding errors
// ---------------------------------------------------------------------------------------

#[test]
fn decode_errors() {
    assert_eq!(decode_token("%%%"), Err(TokenError::InvalidBase64));
    assert_eq!(
        decode_token("A"),
        Err(TokenError::InvalidBase64),
        "length 1 mod 4"
    );
    assert!(matches!(decode_token(""), Err(TokenError::NotJson(_))));
    assert!(matches!(
        decode_token(&raw_token("{")),
        Err(TokenError::NotJson(_))
    ));
    assert!(matches!(
        decode_token(&URL_SAFE_NO_PAD.encode([0xff, 0xfe])),
        Err(TokenError::NotJson(_))
    ));
    assert_eq!(
        decode_token(&raw_token("[1]")),
        Err(TokenError::NotAnObject)
    );
    assert_eq!(
        decode_token(&raw_token("{}")),
        Err(TokenError::MissingSessionId)
    );
    assert_eq!(
        decode_token(&raw_token(r#"{"session_id": 5}"#)),
        Err(TokenError::SessionIdNotString)
    );
    assert_eq!(
        decode_token(&raw_token(r#"{"session_id": "s", "__bk__zlib_": 5}"#)),
        Err(TokenError::ExtraNotString)
    );
    assert_eq!(
        decode_token(&raw_token(r#"{"session_id": "s", "__bk__zlib_": "!!"}"#)),
        Err(TokenError::ExtraInvalidBase64)
    );
    let not_zlib = URL_SAFE_NO_PAD.encode(b"plain text, not zlib");
    assert!(matches!(
        decode_token(&raw_token(&format!(
            r#"{{"session_id": "s", "__bk__zlib_": "{not_zlib}"}}"#
        ))),
        Err(TokenError::ExtraInvalidZlib(_))
    ));
    let payload = json!({"session_id": "s"});
    assert!(matches!(
        decode_token(&zlib_token(&payload, b"{nope")),
        Err(TokenError::ExtraNotJson(_))
    ));
    assert_eq!(
        decode_token(&zlib_token(&payload, b"[]")),
        Err(TokenError::ExtraNotAnObject)
    );
    // A zlib bomb is cut off.
    let mut big = Vec::with_capacity(MAX_EXTRA_PAYLOAD_BYTES + 10);
    big.extend_from_slice(b"{\"a\": \"");
    big.resize(MAX_EXTRA_PAYLOAD_BYTES + 2, b'x');
    big.extend_from_slice(b"\"}");
    assert_eq!(
        decode_token(&zlib_token(&payload, &big)),
        Err(TokenError::ExtraTooLarge {
            limit: MAX_EXTRA_PAYLOAD_BYTES
        })
    );
    // Every error has a message.
    assert!(TokenError::InvalidBase64.to_string().contains("base64"));
}

#[test]
fn claims_are_read_without_inflating_the_extra_payload() {
    // A bomb and a payload that is not even zlib: the claims decode alike, untouched.
    let payload = json!({"session_id": "s", "session_expiry": 1800000300});
    let mut big = Vec::with_capacity(MAX_EXTRA_PAYLOAD_BYTES + 10);
    big.extend_from_slice(b"{\"a\": \"");
    big.resize(MAX_EXTRA_PAYLOAD_BYTES + 2, b'x');
    big.extend_from_slice(b"\"}");
    let bomb = zlib_token(&payload, &big);
    let mut junk = payload.as_object().unwrap().clone();
    junk.insert(
        "__bk__zlib_".into(),
        Value::String("not zlib at all".into()),
    );
    let junk = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&junk).unwrap());
    for token in [bomb, junk] {
        let claims = decode_token_claims(&token).unwrap();
        assert_eq!(claims.session_id, "s");
        assert_eq!(claims.session_expiry, Some(1800000300));
        assert!(claims
            .extra
            .get("__bk__zlib_")
            .is_some_and(Value::is_string));
    }
    assert_eq!(
        decode_token_claims(&raw_token(r#"{"session_expiry": 1}"#)),
        Err(TokenError::MissingSessionId)
    );
}

#[test]
fn decode_is_lenient_like_python() {
    let plain = "eyJzZXNzaW9uX2lkIjogImRlZmF1bHQifQ";
    // Padding present, standard alphabet, trailing signature segments are all fine.
    for token in [format!("{plain}=="), format!("{plain}.anything.at.all")] {
        assert_eq!(
            decode_token(&token).expect("decode").session_id,
            "default",
            "{token}"
        );
    }
    let standard = STANDARD.encode(br#"{"session_id": "~~~~~~"}"#);
    assert!(
        standard.contains('+') || standard.contains('/'),
        "{standard}"
    );
    assert_eq!(
        decode_token(&standard).expect("decode").session_id,
        "~~~~~~"
    );
    // Unknown keys end up in `extra`, in order.
    let p = decode_token(&raw_token(r#"{"z": 1, "session_id": "s", "a": [2]}"#)).expect("decode");
    assert_eq!(Value::Object(p.extra), json!({"z": 1, "a": [2]}));
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn extra_strategy() -> impl Strategy<Value = Map<String, Value>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    proptest::collection::vec(
        (
            any::<String>().prop_filter("not session_id", |k| k != "session_id"),
            value,
        ),
        0..5,
    )
    .prop_map(|kv| kv.into_iter().collect())
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = decode_token(&s);
        let _ = token_session_id(&s);
        prop_assert!(check_token_signature(&s, None));
        let _ = check_token_signature(&s, Some(FIXTURE_KEY));
        let _ = check_session_id_signature(&s, FIXTURE_KEY);
    }

    #[test]
    fn never_panics_on_base64ish_strings(s in "[A-Za-z0-9_=+/.-]{0,200}") {
        let _ = decode_token(&s);
        let _ = check_token_signature(&s, Some(FIXTURE_KEY));
    }

    #[test]
    fn never_panics_on_arbitrary_payload_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_token(&URL_SAFE_NO_PAD.encode(&bytes));
        // The same bytes as a zlib stream, and compressed as the extra payload.
        let as_zlib = URL_SAFE_NO_PAD.encode(&bytes);
        let _ = decode_token(&raw_token(&format!(r#"{{"session_id": "s", "__bk__zlib_": "{as_zlib}"}}"#)));
        let _ = decode_token(&zlib_token(&json!({"session_id": "s"}), &bytes));
    }

    #[test]
    fn generate_then_decode_round_trips(
        id in any::<String>(),
        expiry in any::<i64>(),
        extra in extra_strategy(),
        signed in any::<bool>(),
    ) {
        // A signed id is `base.sig` split at the first '.', so its base has no '.'.
        let session_id = if signed { sign_session_id(&id.replace('.', ""), FIXTURE_KEY) } else { id };
        let secret = signed.then_some(FIXTURE_KEY);
        let token = generate_token(&session_id, expiry, Some(&extra), secret).expect("generate");
        prop_assert!(token.is_ascii());
        let payload = decode_token(&token).expect("decode");
        prop_assert_eq!(&payload.session_id, &session_id);
        prop_assert_eq!(payload.session_expiry, Some(expiry));
        prop_assert_eq!(&payload.extra, &extra);
        prop_assert_eq!(check_token_signature(&token, Some(FIXTURE_KEY)), signed);
        prop_assert!(check_token_signature(&token, None));
    }
}
