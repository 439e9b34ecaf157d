//! The spec's public behaviour: parse errors name the field, every kind builds, and the
//! rules on references, limits and the grid hold.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use plotwire_spec::{build, build_json, parse, streamvis, NamedMap, SpecError};
use serde_json::{json, Value};

fn err(spec: Value) -> SpecError {
    match build_json(spec.to_string().as_bytes()) {
        Ok(_) => panic!("accepted: {spec}"),
        Err(e) => e,
    }
}

fn doc(spec: Value) -> plotwire_spec::BuiltDoc {
    build_json(spec.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every model rep of a DocJson, found by walking it.
fn models(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if m.get("type") == Some(&json!("object")) && m.contains_key("id") {
                out.push(v.clone());
            }
            m.values().for_each(|x| models(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| models(x, out)),
        _ => {}
    }
}

fn model<'a>(all: &'a [Value], id: &str) -> &'a Value {
    all.iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no model {id}"))
}

fn line_spec() -> Value {
    json!({"sources": {"s": {}}, "plots": {"p": {"kind": "line", "source": "s", "x": "x", "y": "y"}}})
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let e = parse(br#"{"plots": {"loss": {"kind": "line", "source": "s", "colr": "red"}}}"#)
        .unwrap_err();
    assert!(matches!(e, SpecError::Parse { .. }));
    assert!(e.to_string().starts_with("plots.loss"), "{e}");
    assert!(e.message().contains("unknown field `colr`"), "{e}");

    let e = parse(br#"{"titel": "x"}"#).unwrap_err();
    assert!(e.message().contains("unknown field `titel`"), "{e}");

    let e = parse(br#"{"plots": {"loss": {"kind": "pie", "source": "s"}}}"#).unwrap_err();
    assert_eq!(e.path(), "plots.loss.kind");
    assert!(e.message().contains("unknown variant `pie`"), "{e}");

    let e = parse(br#"{"plots": {"a": {"kind": "line", "source": "s", "x_range": {"follow": 5, "stop": 1}}}}"#)
        .unwrap_err();
    assert!(e.path().starts_with("plots.a.x_range"), "{e}");
    assert!(e.message().contains("unknown field `stop`"), "{e}");

    let e = parse(br#"{"widgets": {"w": {"kind": "slider", "start": "zero"}}}"#).unwrap_err();
    assert_eq!(e.path(), "widgets.w.start");

    let e = parse(br#"{"sources": {"s": {"columns": {"x": "float128"}}}}"#).unwrap_err();
    assert_eq!(e.path(), "sources.s.columns.x");

    let e = parse(br#"{"layout": {"grid": {"a": [0, 0, 1]}}}"#).unwrap_err();
    assert_eq!(e.path(), "layout.grid.a");
}

#[test]
fn repeated_keys_are_refused() {
    let e = parse(br#"{"sources": {"s": {}, "s": {}}}"#).unwrap_err();
    assert!(e.message().contains("\"s\" is given twice"), "{e}");
}

#[test]
fn a_field_of_another_kind_is_refused() {
    let mut s = line_spec();
    s["plots"]["p"]["marker"] = json!("square");
    let e = err(s);
    assert_eq!(e.path(), "plots.p.marker");
    assert!(
        e.message().contains("a line plot has no field \"marker\""),
        "{e}"
    );

    let e = err(json!({"widgets": {"b": {"kind": "button", "start": 1}}}));
    assert_eq!(e.path(), "widgets.b.start");
}

#[test]
fn references_are_checked() {
    let mut s = line_spec();
    s["plots"]["p"]["source"] = json!("nope");
    assert_eq!(err(s).path(), "plots.p.source");

    let e = err(json!({"sources": {"s": {"columns": {"x": "float64"}}},
                       "plots": {"p": {"kind": "line", "source": "s", "x": "x", "y": "yy"}}}));
    assert_eq!(e.path(), "plots.p.y.0");
    assert!(e.message().contains("declares no column \"yy\""), "{e}");

    let e = err(json!({"widgets": {"t": {"kind": "data_table", "source": "missing"}}}));
    assert_eq!(e.path(), "widgets.t.source");

    let mut s = line_spec();
    s["layout"] = json!({"grid": {"p": [0, 0, 1, 1], "ghost": [1, 0, 1, 1]}});
    assert_eq!(err(s).path(), "layout.grid.ghost");

    let mut s = line_spec();
    s["widgets"] = json!({"b": {"kind": "button"}});
    s["layout"] = json!({"grid": {"p": [0, 0, 1, 1]}});
    let e = err(s);
    assert!(e.message().contains("widgets.b is not placed"), "{e}");

    let e = err(json!({"sources": {"x": {}}, "widgets": {"x": {"kind": "button"}}}));
    assert_eq!(e.path(), "widgets.x");
    assert!(e.message().contains("already used in sources"), "{e}");
}

#[test]
fn grid_cells_must_be_in_range_and_apart() {
    let mut s = line_spec();
    s["plots"]["q"] = s["plots"]["p"].clone();
    s["layout"] = json!({"grid": {"p": [0, 0, 2, 2], "q": [1, 1, 1, 1]}});
    let e = err(s.clone());
    assert_eq!(e.path(), "layout.grid.q");
    assert!(e.message().contains("overlaps"), "{e}");

    s["layout"] = json!({"grid": {"p": [0, 0, 1, 1], "q": [0, 60, 1, 5]}});
    assert!(err(s.clone()).message().contains("past row or column 64"));
    s["layout"] = json!({"grid": {"p": [0, 0, 0, 1], "q": [1, 0, 1, 1]}});
    assert_eq!(err(s).path(), "layout.grid.p");
}

#[test]
fn limits_are_enforced() {
    let plots: serde_json::Map<String, Value> = (0..257)
        .map(|i| {
            (
                format!("p{i}"),
                json!({"kind": "line", "source": "s", "x": "x", "y": "y"}),
            )
        })
        .collect();
    let e = err(json!({"sources": {"s": {}}, "plots": plots}));
    assert_eq!(e.path(), "plots");

    let ys: Vec<String> = (0..65).map(|i| format!("y{i}")).collect();
    let e = err(
        json!({"sources": {"s": {}}, "plots": {"m": {"kind": "multi_line", "source": "s", "x": "x", "y": ys}}}),
    );
    assert_eq!(e.path(), "plots.m.y");

    let e = err(json!({"sources": {"bad name": {}}}));
    assert_eq!(e.path(), "sources.bad name");

    let mut s = line_spec();
    s["plots"]["p"]["width"] = json!(100_000);
    assert_eq!(err(s).path(), "plots.p.width");

    let big = vec![b' '; plotwire_spec::limits::MAX_SPEC_BYTES + 1];
    assert!(parse(&big).unwrap_err().message().contains("at most"));
}

#[test]
fn widget_values_are_checked() {
    let e = err(json!({"widgets": {"s": {"kind": "slider", "start": 0, "end": 1, "value": 2}}}));
    assert_eq!(e.path(), "widgets.s.value");
    let e = err(
        json!({"widgets": {"r": {"kind": "range_slider", "start": 0, "end": 10, "value": [5, 1]}}}),
    );
    assert_eq!(e.path(), "widgets.r.value");
    let e = err(json!({"widgets": {"m": {"kind": "select", "options": ["a"], "value": "b"}}}));
    assert_eq!(e.path(), "widgets.m.value");
    let e =
        err(json!({"widgets": {"c": {"kind": "checkbox_group", "labels": ["a"], "active": [1]}}}));
    assert_eq!(e.path(), "widgets.c.active");
    let e = err(json!({"widgets": {"t": {"kind": "toggle", "active": "yes"}}}));
    assert_eq!(e.path(), "widgets.t.active");
}

#[test]
fn every_plot_kind_builds_its_glyph() {
    let cases = [
        ("line", json!({"x": "x", "y": "y"}), "Line"),
        ("multi_line", json!({"x": "x", "y": ["a", "b"]}), "Line"),
        (
            "scatter",
            json!({"x": "x", "y": "y", "marker": "square"}),
            "Scatter",
        ),
        ("step", json!({"x": "x", "y": "y", "mode": "after"}), "Step"),
        ("area", json!({"x": "x", "y": "y"}), "VArea"),
        ("vbar", json!({"x": "x", "y": "y"}), "VBar"),
        ("image", json!({}), "Image"),
        ("heatmap", json!({"x": "x", "y": "y", "value": "v"}), "Rect"),
    ];
    for (kind, fields, glyph) in cases {
        let mut plot = fields.clone();
        plot["kind"] = json!(kind);
        plot["source"] = json!("s");
        let built = doc(json!({"sources": {"s": {}}, "plots": {"p": plot}}));
        let mut all = Vec::new();
        models(&built.doc, &mut all);
        let fig = model(&all, "plot:p");
        assert_eq!(fig["name"], "Figure");
        assert_eq!(fig["attributes"]["name"], "p");
        assert_eq!(
            fig["attributes"]["subscribed_events"],
            json!({"type": "set", "entries": ["rangesupdate", "lodend", "reset", "tap"]})
        );
        assert_eq!(model(&all, "plot:p:r0:glyph")["name"], glyph, "{kind}");
        assert_eq!(built.plots["p"], "plot:p");
        assert_eq!(built.plot_sources["p"], "s");
        if matches!(kind, "image" | "heatmap") {
            let mapper = model(&all, "plot:p:color_mapper");
            assert_eq!(
                mapper["attributes"]["palette"].as_array().map(Vec::len),
                Some(256)
            );
            assert_eq!(model(&all, "plot:p:color_bar")["name"], "ColorBar");
        }
    }
}

#[test]
fn every_widget_kind_builds() {
    let built = doc(json!({
        "sources": {"s": {"columns": {"a": "string", "b": "float64"}}},
        "widgets": {
            "slider": {"kind": "slider", "start": 0, "end": 2},
            "range": {"kind": "range_slider", "start": 0, "end": 2},
            "button": {"kind": "button"},
            "toggle": {"kind": "toggle", "active": true},
            "select": {"kind": "select", "options": ["x", "y"]},
            "text": {"kind": "text_input"},
            "checks": {"kind": "checkbox_group", "labels": ["p", "q"]},
            "table": {"kind": "data_table", "source": "s"}
        }
    }));
    let mut all = Vec::new();
    models(&built.doc, &mut all);
    let expect = [
        ("slider", "Slider"),
        ("range", "RangeSlider"),
        ("button", "Button"),
        ("toggle", "Toggle"),
        ("select", "Select"),
        ("text", "TextInput"),
        ("checks", "CheckboxGroup"),
        ("table", "DataTable"),
    ];
    for (name, kind) in expect {
        let id = &built.widgets[name];
        let m = model(&all, id);
        assert_eq!(m["name"], kind);
        assert_eq!(m["attributes"]["name"], name);
    }
    let button = model(&all, &built.widgets["button"]);
    assert_eq!(
        button["attributes"]["subscribed_events"],
        json!({"type": "set", "entries": ["button_click"]})
    );
    assert_eq!(
        model(&all, &built.widgets["range"])["attributes"]["value"],
        json!([0.0, 2.0])
    );
    assert_eq!(
        model(&all, &built.widgets["select"])["attributes"]["value"],
        "x"
    );
    let table = model(&all, &built.widgets["table"]);
    assert_eq!(table["attributes"]["source"]["id"], "source:s");
    assert_eq!(
        table["attributes"]["columns"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn sources_get_typed_empty_columns_and_names() {
    let built = doc(json!({
        "sources": {"s": {"columns": {"t": "int32", "label": "string"}, "max_rows": 50}, "spare": {}},
        "plots": {"p": {"kind": "scatter", "source": "s", "x": "t", "y": "t"}}
    }));
    let mut all = Vec::new();
    models(&built.doc, &mut all);
    let src = model(&all, "source:s");
    assert_eq!(src["attributes"]["name"], "s");
    let entries = &src["attributes"]["data"]["entries"];
    assert_eq!(entries[0][0], "t");
    assert_eq!(entries[0][1]["type"], "ndarray");
    assert_eq!(entries[0][1]["dtype"], "int32");
    assert_eq!(entries[0][1]["shape"], json!([0]));
    assert_eq!(entries[1], json!(["label", []]));
    assert_eq!(built.sources["s"].max_rows, Some(50));
    assert_eq!(built.sources["s"].id, "source:s");
    // a source no plot draws is still in the document
    assert_eq!(model(&all, "source:spare")["attributes"]["name"], "spare");
    assert_eq!(built.doc["version"], "3.9.2");
    assert_eq!(built.doc["config"]["name"], "DocumentConfig");
}

#[test]
fn each_model_is_written_in_full_exactly_once() {
    let text = std::fs::read("../../examples/specs/training-run.json").unwrap();
    let built = build_json(&text).unwrap();
    let mut all = Vec::new();
    models(&built.doc, &mut all);
    let mut ids: Vec<&str> = all.iter().filter_map(|m| m["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "a model written in full twice");
    // A line plot's x range is placed by the server for each view (level of detail).
    let acc = model(&all, "plot:accuracy:x_range");
    assert_eq!(acc["name"], "Range1d");
    assert_eq!(acc["attributes"], json!({"start": 0.0, "end": 1.0}));
    assert_eq!(
        model(&all, "plot:accuracy")["attributes"]["window_axis"],
        "x"
    );
    assert_eq!(model(&all, "plot:loss:y_scale")["name"], "LogScale");
    assert_eq!(model(&all, "plot:loss:y_axis")["name"], "LogAxis");
}

#[test]
fn streamvis_layout_makes_plots_before_data_and_keeps_ids_when_series_arrive() {
    let mut grid = NamedMap::default();
    grid.insert("top_left", [0, 0, 1, 1]);
    grid.insert("bottom", [1, 0, 1, 2]);
    let mut spec = streamvis::layout_spec(&grid).unwrap();
    let before = build(&spec).unwrap();
    assert_eq!(before.plots.len(), 2);
    assert_eq!(before.plot_sources["top_left"], "top_left.data");
    let mut all0 = Vec::new();
    models(&before.doc, &mut all0);
    let child = &model(&all0, "layout")["attributes"]["children"][1];
    assert_eq!(
        child.as_array().map(|c| c[1..].to_vec()),
        Some(vec![json!(1), json!(0), json!(1), json!(2)])
    );
    assert!(model(&all0, "plot:top_left")["attributes"]["renderers"]
        .as_array()
        .is_some_and(Vec::is_empty));

    streamvis::with_series(&mut spec, "top_left", 3).unwrap();
    let after = build(&spec).unwrap();
    let mut all1 = Vec::new();
    models(&after.doc, &mut all1);
    let ids = |all: &[Value]| {
        all.iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let (old, new) = (ids(&all0), ids(&all1));
    assert!(old.iter().all(|id| new.contains(id)), "an id changed");
    assert!(new.contains(&"plot:top_left:r2".to_owned()));
    let cols: Vec<&str> = after.sources["top_left.data"]
        .columns
        .iter()
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(cols, ["x", "y1", "y2", "y3"]);
    assert!(streamvis::with_series(&mut spec, "nope", 1).is_err());
    assert!(streamvis::with_series(&mut spec, "bottom", 65).is_err());
}

#[test]
fn a_source_that_opts_out_of_level_of_detail_keeps_a_following_data_range() {
    let spec = |lod: &str| {
        format!(
            r#"{{"sources": {{"s": {{"lod": {lod}}}}},
                "plots": {{"p": {{"kind": "line", "source": "s", "x": "t", "y": "v", "x_range": {{"follow": 100}}}},
                           "q": {{"kind": "scatter", "source": "s", "x": "t", "y": "v", "x_range": {{"follow": 100}}}}}}}}"#
        )
    };
    for (lod, line_range) in [
        ("false", "DataRange1d"),
        ("true", "Range1d"),
        ("null", "Range1d"),
    ] {
        let built = build_json(spec(lod).as_bytes()).unwrap();
        let mut all = Vec::new();
        models(&built.doc, &mut all);
        assert_eq!(
            model(&all, "plot:p:x_range")["name"],
            line_range,
            "lod {lod}"
        );
        // scatter is never downsampled: Bokeh's own following range
        let q = model(&all, "plot:q:x_range");
        assert_eq!(q["name"], "DataRange1d", "lod {lod}");
        assert_eq!(
            q["attributes"],
            json!({"follow": "end", "follow_interval": 100.0})
        );
    }
}

#[test]
fn lod_on_a_source_that_no_line_like_plot_draws_is_an_error() {
    let text = br#"{"sources": {"s": {"lod": true}},
        "plots": {"q": {"kind": "scatter", "source": "s", "x": "t", "y": "v"}}}"#;
    let err = build_json(text).unwrap_err().to_string();
    assert!(err.contains("sources.s.lod"), "{err}");
    let log_x = br#"{"sources": {"s": {"lod": true}},
        "plots": {"p": {"kind": "line", "source": "s", "x": "t", "y": "v", "x_axis": "log"}}}"#;
    assert!(build_json(log_x).is_err());
}
