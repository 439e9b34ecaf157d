//! Model graphs far deeper than any JSON nesting: a chain of models where each one
//! references the next. The wire form is shallow (every model is a root, JSON depth 2),
//! but writing the document nests each model inside the one before it. Encoding must not
//! recurse on the native stack, or one message would overflow it and abort the process
//! (issue 6, hole 1).

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use plotwire_document::{AllModels, Document, NewModels};
use plotwire_protocol::codec::{Buffers, Encoder};
use plotwire_protocol::event::{decode_doc_message, decode_patch, encode_patch};

/// Models in the chain: deep enough that a recursive encoder overflows a 2 MiB stack.
const CHAIN: usize = 30_000;

/// A PUSH-DOC content whose `CHAIN` roots each reference the next one.
fn chain_doc() -> String {
    let mut roots = String::new();
    for i in 0..CHAIN {
        if i > 0 {
            roots.push(',');
        }
        let next = if i + 1 < CHAIN {
            format!(r#"{{"id":"m{}"}}"#, i + 1)
        } else {
            "null".to_owned()
        };
        roots.push_str(&format!(
            r#"{{"type":"object","name":"Div","id":"m{i}","attributes":{{"text":"{i}","child":{next}}}}}"#
        ));
    }
    format!(r#"{{"doc":{{"title":"chain","roots":[{roots}]}}}}"#)
}

fn pulled(d: &Document) -> String {
    let lookup = AllModels(d);
    let mut enc = Encoder::new(&lookup);
    d.encode_doc_json(&mut enc);
    String::from_utf8(enc.finish().0.to_vec()).unwrap()
}

/// Runs `f` on a thread with the 2 MiB stack of a tokio worker.
fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_pushed_chain_of_30000_models_encodes_without_recursion() {
    let out = on_worker_stack(|| {
        let dj = decode_doc_message(chain_doc().as_bytes(), &Buffers::new()).unwrap();
        let d = Document::from_doc_json(dj).unwrap();
        pulled(&d)
    });
    // Every model is written in full exactly once, nested in the one before it, inside
    // the first root; the other roots are then bare references.
    assert_eq!(
        out.matches(r#""type":"object","name":"Div""#).count(),
        CHAIN
    );
    assert!(out.contains(&format!(r#"{},{{"id":"m1"}}"#, "}".repeat(2 * CHAIN))));
    assert!(out.ends_with(&format!(r#"{{"id":"m{}"}}]}}"#, CHAIN - 1)));
    let last = format!(
        r#""id":"m{}","attributes":{{"text":"{}","child":null}}"#,
        CHAIN - 1,
        CHAIN - 1
    );
    assert!(out.contains(&last));
}

#[test]
fn a_chain_built_by_one_event_patches_encodes_without_recursion() {
    let out = on_worker_stack(|| {
        let dj = decode_doc_message(
            br#"{"doc":{"roots":[{"type":"object","name":"Div","id":"m0"}]}}"#,
            &Buffers::new(),
        )
        .unwrap();
        let mut d = Document::from_doc_json(dj).unwrap();
        let mut last_relay = String::new();
        for i in 0..CHAIN {
            let patch = format!(
                r#"{{"events":[{{"kind":"ModelChanged","model":{{"id":"m{i}"}},"attr":"child","new":{{"type":"object","name":"Div","id":"m{}"}}}}]}}"#,
                i + 1
            );
            let applied = d
                .apply(decode_patch(patch.as_bytes(), &Buffers::new()).unwrap())
                .unwrap();
            if i + 1 == CHAIN {
                let lookup = NewModels(&applied.new_models);
                let mut enc = Encoder::new(&lookup);
                encode_patch(&mut enc, &applied.relay);
                last_relay = String::from_utf8(enc.finish().0.to_vec()).unwrap();
            }
        }
        assert!(last_relay.contains(&format!(r#""id":"m{CHAIN}""#)));
        pulled(&d)
    });
    assert_eq!(
        out.matches(r#""type":"object","name":"Div""#).count(),
        CHAIN + 1
    );
}
