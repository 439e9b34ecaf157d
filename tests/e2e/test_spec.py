"""Dashboard specs (crates/plotwire-spec, docs/dashboard-spec.md) build documents that the
real Bokeh 3.9.2 loads: Python ``Document.from_json`` for every example in
``examples/specs``, and unmodified BokehJS in headless Chromium rendering each example
standalone (``Bokeh.embed.embed_items``) with no console errors and a view for every
plot and widget. No server is involved.

The DocJson comes from the example binary ``cargo run -p plotwire-spec --example build``
(``PLOTWIRE_SPEC_BUILD`` overrides its path; it is built when missing).
"""
from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest

from support import REPO_ROOT

SPECS = sorted((REPO_ROOT / "examples" / "specs").glob("*.json"))
BUILD_BIN = Path(os.environ.get("PLOTWIRE_SPEC_BUILD", str(REPO_ROOT / "target" / "debug" / "examples" / "build")))
BOKEH_JS = ["bokeh.min.js", "bokeh-widgets.min.js", "bokeh-tables.min.js"]
PLOT_EVENTS = {"rangesupdate", "lodend", "reset", "tap"}

# dtype a spec column type arrives as in Python (numpy), "list" for list columns
NUMPY_DTYPE = {"float64": "float64", "datetime": "float64", "float32": "float32", "int32": "int32",
               "int16": "int16", "int8": "int8", "uint32": "uint32", "uint16": "uint16",
               "uint8": "uint8", "bool": "bool", "string": "list", "image": "list"}


def _built_docs() -> dict[str, Any]:
    if not BUILD_BIN.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "plotwire-spec", "--example", "build"],
                       cwd=REPO_ROOT, check=True, timeout=900)
    out = subprocess.run([str(BUILD_BIN), *map(str, SPECS)], capture_output=True, check=True, timeout=60)
    docs = json.loads(out.stdout)
    return {Path(p).name: d for p, d in docs.items()} if len(SPECS) > 1 else {SPECS[0].name: docs}


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    assert len(SPECS) >= 5, f"expected the example specs in examples/specs, found {SPECS}"
    return _built_docs()


def _spec(name: str) -> dict[str, Any]:
    return json.loads((REPO_ROOT / "examples" / "specs" / name).read_text())


def test_every_kind_has_an_example() -> None:
    plot_kinds = {p["kind"] for s in SPECS for p in json.loads(s.read_text()).get("plots", {}).values()}
    widget_kinds = {w["kind"] for s in SPECS for w in json.loads(s.read_text()).get("widgets", {}).values()}
    assert plot_kinds == {"line", "multi_line", "scatter", "step", "area", "vbar", "image", "heatmap"}
    assert widget_kinds == {"slider", "range_slider", "button", "toggle", "select", "text_input",
                            "checkbox_group", "data_table"}


@pytest.mark.parametrize("spec_file", [s.name for s in SPECS])
def test_python_bokeh_loads_the_document(built: dict[str, Any], spec_file: str) -> None:
    from bokeh.document import Document
    from bokeh.core.validation import check_integrity

    spec = _spec(spec_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "reference already known", version mismatch
        doc = Document.from_json(built[spec_file])
    assert doc.title == spec.get("title", "plotwire")
    issues = check_integrity(list(doc.models))
    assert not issues.error, [(i.code, i.name, i.text) for i in issues.error]

    for name, plot in spec.get("plots", {}).items():
        fig = doc.select_one({"name": name})
        assert fig is not None and fig.__view_model__ == "Figure", name
        assert set(fig.subscribed_events) == PLOT_EVENTS, name
        src = fig.renderers[0].data_source
        assert src.name == plot["source"]
        n_series = len(plot["y"]) if plot["kind"] == "multi_line" else 1
        assert len(fig.renderers) == n_series, name
    for name, widget in spec.get("widgets", {}).items():
        model = doc.select_one({"name": name})
        assert model is not None, name
        if widget["kind"] in ("button", "toggle"):
            assert set(model.subscribed_events) == {"button_click"}, name
    for name, source in spec.get("sources", {}).items():
        cds = doc.select_one({"name": name})
        assert type(cds).__name__ == "ColumnDataSource", name
        for col, dtype in source.get("columns", {}).items():
            value = cds.data[col]
            assert len(value) == 0, (name, col)
            got = "list" if isinstance(value, list) else str(value.dtype)
            assert got == NUMPY_DTYPE[dtype], (name, col, got)


def test_follow_range_and_fixed_range(built: dict[str, Any]) -> None:
    from bokeh.document import Document

    doc = Document.from_json(built["training-run.json"])
    acc = doc.select_one({"name": "accuracy"})
    # a line plot's x range is placed by the server for each view (level of detail,
    # docs/lod.md): a Range1d, and the y range fits what the x range shows
    assert type(acc.x_range).__name__ == "Range1d"
    assert acc.window_axis == "x"
    assert type(acc.y_range).__name__ == "Range1d" and (acc.y_range.start, acc.y_range.end) == (0, 1)
    loss = doc.select_one({"name": "loss"})
    assert type(loss.y_scale).__name__ == "LogScale"
    assert [item.label["value"] for item in loss.legend[0].items] == ["loss", "val_loss"]


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8">{scripts}</head>
<body><div id="root"></div>
<script>
window.__embedded = Bokeh.embed.embed_items({docs}, [{{"docid": "d", "roots": {{"{root}": "root"}}, "root_ids": ["{root}"]}}])
  .then(() => {{ window.__embed_done = true; }}, (e) => {{ console.error("embed failed: " + e); }});
</script></body></html>
"""

JS_VIEWS = """(names) => {
    const doc = Bokeh.documents[0];
    const out = {};
    for (const name of names) {
        const m = doc.get_model_by_name(name);
        const v = m == null ? null : Bokeh.index.find_one(m);
        out[name] = m == null ? null : {type: m.type, view: v != null,
            events: m.subscribed_events ? [...m.subscribed_events].sort() : null,
            rendered: v != null && v.el != null && v.el.isConnected};
    }
    return out;
}"""


@pytest.mark.parametrize("spec_file", [s.name for s in SPECS])
def test_bokehjs_renders_the_document(built: dict[str, Any], browser_page: Any, tmp_path: Path,
                                      spec_file: str) -> None:
    import bokeh

    static = Path(bokeh.__file__).parent / "server" / "static" / "js"
    scripts = "".join(f'<script src="{(static / js).as_uri()}"></script>' for js in BOKEH_JS)
    doc = built[spec_file]
    page_file = tmp_path / "page.html"
    page_file.write_text(PAGE.format(scripts=scripts, docs=json.dumps({"d": doc}), root=doc["roots"][0]["id"]))

    page = browser_page.page
    page.goto(page_file.as_uri())
    page.wait_for_function("() => window.__embed_done === true", timeout=20000)
    spec = _spec(spec_file)
    names = list(spec.get("plots", {})) + list(spec.get("widgets", {}))
    page.wait_for_function(f"() => Object.values(({JS_VIEWS})({json.dumps(names)}))"
                           ".every((v) => v != null && v.rendered)", timeout=20000)
    views = page.evaluate(JS_VIEWS, names)
    for name in spec.get("plots", {}):
        assert views[name]["type"] == "Figure", (name, views[name])
        assert views[name]["events"] == sorted(PLOT_EVENTS), name
    kinds = {"slider": "Slider", "range_slider": "RangeSlider", "button": "Button", "toggle": "Toggle",
             "select": "Select", "text_input": "TextInput", "checkbox_group": "CheckboxGroup",
             "data_table": "DataTable"}
    for name, widget in spec.get("widgets", {}).items():
        assert views[name]["type"] == kinds[widget["kind"]], (name, views[name])
    # a canvas for each plot
    canvases = page.evaluate("""(names) => names.map((n) => {
        const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name(n));
        return v.canvas_view != null && v.canvas_view.bbox.width > 0;
    })""", list(spec.get("plots", {})))
    assert all(canvases), canvases
    page.wait_for_timeout(300)
    browser_page.assert_no_errors()
    # an empty plot has no data to fit its ranges to: BokehJS says so, as for any empty figure
    empty_data = ("could not set initial ranges", "data value for log axis, DataRange1d using value")
    warnings_seen = [line for line in browser_page.log
                     if "[warning]" in line and not any(text in line for text in empty_data)]
    assert not warnings_seen, browser_page.log
