use super::*;
use plotwire_protocol::codec::{Buffers, Encoder};
use plotwire_protocol::event::{decode_doc_message, decode_patch};

fn doc(roots: &str) -> Document {
    let content = format!(r#"{{"doc":{{"title":"t","roots":{roots}}}}}"#);
    let dj = decode_doc_message(content.as_bytes(), &Buffers::new()).unwrap();
    Document::from_doc_json(dj).unwrap()
}

fn stream(id: &str) -> Vec<DocumentEvent> {
    let content = format!(
        r#"{{"events":[{{"kind":"ColumnsStreamed","model":{{"id":"{id}"}},"attr":"data","data":{{"type":"map","entries":[["x",[1,2]]]}}}}]}}"#
    );
    decode_patch(content.as_bytes(), &Buffers::new()).unwrap()
}

fn pulled(d: &Document) -> String {
    let lookup = AllModels(d);
    let mut enc = Encoder::new(&lookup);
    d.encode_doc_json(&mut enc);
    String::from_utf8(enc.finish().0.to_vec()).unwrap()
}

#[test]
fn a_source_sent_without_data_gets_columns_that_are_pulled() {
    let mut d = doc(r#"[{"type":"object","name":"ColumnDataSource","id":"s"}]"#);
    d.apply(stream("s")).unwrap();
    assert!(pulled(&d).contains(r#""data":{"type":"map","entries":[["x",[1,2]]]}"#));
}

#[test]
fn inline_base64_ndarrays_stream_like_buffers() {
    let nd = |data: &str| {
        format!(
            r#"{{"type":"ndarray","array":{{"type":"bytes","data":{data}}},"shape":[2],"dtype":"float64","order":"little"}}"#
        )
    };
    // Python's inline form: standard base64 of gzip (here 5.0, 6.5).
    let inline = nd(r#""H4sIAAEAAAAC/2NgAAERBzDFIOUAAIvSndoQAAAA""#);
    let mut d = doc(&format!(
        r#"[{{"type":"object","name":"ColumnDataSource","id":"s","attributes":{{"data":{{"type":"map","entries":[["x",{inline}]]}}}}}}]"#
    ));
    let content = format!(
        r#"{{"events":[{{"kind":"ColumnsStreamed","model":{{"id":"s"}},"attr":"data","data":{{"type":"map","entries":[["x",{}]]}},"rollover":3}}]}}"#,
        nd(r#"{"id":"b"}"#)
    );
    let mut bufs = Buffers::new();
    bufs.insert(
        "b".into(),
        bytes::Bytes::from([7.0f64, 8.0].map(f64::to_le_bytes).concat()),
    );
    d.apply(decode_patch(content.as_bytes(), &bufs).unwrap())
        .unwrap();
    let col = d
        .model("s")
        .and_then(|m| m.columns.as_ref())
        .and_then(|c| c.get("x"))
        .unwrap();
    let values: Vec<f64> = (0..col.len()).filter_map(|i| col.get_f64(i)).collect();
    assert_eq!(values, [6.5, 7.0, 8.0]);
}

#[test]
fn models_that_are_not_sources_refuse_column_events() {
    let mut d = doc(r#"[{"type":"object","name":"Slider","id":"w","attributes":{"value":1}}]"#);
    let before = pulled(&d);
    assert!(matches!(
        d.apply(stream("w")),
        Err(ApplyError::NotAColumnSource(_))
    ));
    assert_eq!(pulled(&d), before);
}

fn patch(events: &str) -> Vec<DocumentEvent> {
    decode_patch(
        format!(r#"{{"events":[{events}]}}"#).as_bytes(),
        &Buffers::new(),
    )
    .unwrap()
}

#[test]
fn a_failed_batch_is_undone_whatever_it_touched() {
    let mut d = doc(
        r#"[{"type":"object","name":"Div","id":"r","attributes":{"child":{"type":"object","name":"Div","id":"c"}}}]"#,
    );
    let before = pulled(&d);
    let err = d.apply(patch(
        r#"{"kind":"TitleChanged","title":"new"},
           {"kind":"RootAdded","model":{"type":"object","name":"Div","id":"n"}},
           {"kind":"ModelChanged","model":{"id":"r"},"attr":"child","new":null},
           {"kind":"RootRemoved","model":{"id":"r"}},
           {"kind":"ModelChanged","model":{"id":"nope"},"attr":"x","new":1}"#,
    ));
    assert!(matches!(err, Err(ApplyError::UnknownModel(id)) if id == "nope"));
    assert_eq!(pulled(&d), before);
    assert_eq!(d.model_count(), 3, "config, r and c");
}

#[test]
fn unreachable_models_are_collected_once_the_batch_is_applied() {
    let mut d = doc(
        r#"[{"type":"object","name":"Div","id":"r","attributes":{"child":{"type":"object","name":"Div","id":"c"}}}]"#,
    );
    // The second event still finds `c`: collection waits for the end of the batch.
    d.apply(patch(
        r#"{"kind":"ModelChanged","model":{"id":"r"},"attr":"child","new":null},
           {"kind":"ModelChanged","model":{"id":"c"},"attr":"text","new":"late"}"#,
    ))
    .unwrap();
    assert!(d.model("c").is_none());
    // Events naming a collected model are dropped, as Bokeh does.
    let applied = d
        .apply(patch(
            r#"{"kind":"ModelChanged","model":{"id":"c"},"attr":"text","new":"x"}"#,
        ))
        .unwrap();
    assert!(applied.relay.is_empty());
}

#[test]
fn the_model_limit_refuses_pushes_and_patches_past_it() {
    let roots =
        r#"[{"type":"object","name":"Div","id":"a"},{"type":"object","name":"Div","id":"b"}]"#;
    let content = format!(r#"{{"doc":{{"title":"t","roots":{roots}}}}}"#);
    let dj = decode_doc_message(content.as_bytes(), &Buffers::new()).unwrap();
    assert!(matches!(
        Document::from_doc_json_limited(dj, 2),
        Err(ApplyError::TooManyModels { count: 2, limit: 2 })
            | Err(ApplyError::TooManyModels { count: 3, limit: 2 })
    ));
    let mut d = doc(roots);
    d.set_max_models(4);
    let before = pulled(&d);
    let err = d.apply(patch(
        r#"{"kind":"RootAdded","model":{"type":"object","name":"Div","id":"c"}},
           {"kind":"RootAdded","model":{"type":"object","name":"Div","id":"e"}}"#,
    ));
    assert!(matches!(
        err,
        Err(ApplyError::TooManyModels { count: 5, limit: 4 })
    ));
    assert_eq!(pulled(&d), before);
    d.apply(patch(
        r#"{"kind":"RootAdded","model":{"type":"object","name":"Div","id":"c"}}"#,
    ))
    .unwrap();
    assert_eq!(d.model_count(), 4);
}

#[test]
fn empty_list_kinds_are_listed_and_set_back_all_or_none() {
    let mut d = doc(
        r#"[{"type":"object","name":"ColumnDataSource","id":"s","attributes":{"data":{"type":"map","entries":[["a",["x"]],["b",[]]]}}}]"#,
    );
    d.apply(vec![DocumentEvent::ColumnsStreamed {
        model: "s".into(),
        attr: "data".into(),
        data: vec![
            ("a".into(), Value::List(Vec::new())),
            ("b".into(), Value::List(Vec::new())),
        ],
        rollover: Some(0),
    }])
    .unwrap();
    // `a` lost its rows and kept its kind; `b` never had one.
    let kinds = d.empty_list_kinds();
    assert_eq!(
        kinds,
        [("s".to_owned(), "a".to_owned(), "string".to_owned())]
    );

    let mut fresh = doc(
        r#"[{"type":"object","name":"ColumnDataSource","id":"s","attributes":{"data":{"type":"map","entries":[["a",[]],["b",[1]]]}}}]"#,
    );
    let bad = [
        ("s", "zz", "string"),
        ("nope", "a", "string"),
        ("s", "b", "string"),
        ("s", "a", "float32"),
    ];
    for (model, column, kind) in bad {
        let all = [
            ("s".to_owned(), "a".to_owned(), "int64".to_owned()),
            (model.to_owned(), column.to_owned(), kind.to_owned()),
        ];
        assert!(
            fresh.set_empty_list_kinds(&all).is_err(),
            "{model} {column} {kind}"
        );
        assert_eq!(fresh.empty_list_kinds(), [], "nothing set on an error");
    }
    fresh.set_empty_list_kinds(&kinds).unwrap();
    assert_eq!(fresh.empty_list_kinds(), kinds);
}

#[test]
fn data_model_definitions_are_kept_and_written_back() {
    let content = r#"{"doc":{"title":"t","roots":[{"type":"object","name":"Params","id":"m1","attributes":{"count":5}}],
        "defs":[{"type":"model","name":"Params","properties":[{"name":"count","kind":"Any","default":3}]}]}}"#;
    let dj = decode_doc_message(content.as_bytes(), &Buffers::new()).unwrap();
    assert!(dj.defs.is_some());
    let d = Document::from_doc_json(dj).unwrap();
    let text = pulled(&d);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json["defs"],
        serde_json::json!([{"type":"model","name":"Params","properties":[{"name":"count","kind":"Any","default":3}]}]),
        "{text}"
    );
    // And again from what was written (a snapshot read back, a pull pushed elsewhere).
    let again =
        decode_doc_message(format!(r#"{{"doc":{text}}}"#).as_bytes(), &Buffers::new()).unwrap();
    assert_eq!(pulled(&Document::from_doc_json(again).unwrap()), text);
}
