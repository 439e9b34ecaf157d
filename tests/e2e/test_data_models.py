"""Documents that use a bokeh ``DataModel`` subclass: their DocJson carries ``defs``, the
definitions BokehJS 3.9.2 registers before it builds the models. Without them the page
fails ("Model 'Params' does not exist") and shows nothing. Both ways in are checked in
headless Chromium: a document published over REST with the Python client, and a
``bokeh.client`` push session (PUSH-DOC), each opened by unmodified BokehJS.

Everything is on 127.0.0.1; every wait is bounded (Playwright timeouts, support helpers).
"""
from __future__ import annotations

import json
import urllib.request

import pytest

from support import unique_id
from test_published import views  # noqa: F401  (a fixture)

JS_PARAMS = """() => {
    const doc = Bokeh.documents[0];
    const m = doc.get_model_by_name("params");
    return m == null ? null : [m.type, m.count, m.label];
}"""


def data_model_doc():
    """A figure whose tags hold a model of a ``DataModel`` subclass defined here."""
    from bokeh.core.properties import Int, String
    from bokeh.document import Document
    from bokeh.model import DataModel
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    class Params(DataModel):
        count = Int(default=3)
        label = String(default="hi")

    doc = Document()
    plot = figure(width=300, height=200)
    # Named "src", as the page helper waits for (test_published.JS_HAS_DOC).
    plot.line("x", "y", source=ColumnDataSource(data={"x": [1, 2, 3], "y": [1, 4, 9]}, name="src"))
    plot.tags = [Params(count=5, label="plotwire", name="params")]
    doc.add_root(plot)
    assert doc.to_json(deferred=False).get("defs"), "bokeh wrote no defs"
    return doc


def model_type(doc) -> str:
    """The data model's type name as bokeh wrote it (qualified by where it is defined)."""
    (definition,) = doc.to_json(deferred=False)["defs"]
    return definition["name"]


@pytest.mark.plotwire_only
def test_a_published_document_with_a_data_model_renders(server, views):
    from plotwire import Client

    name = f"e2e/{unique_id('data-model')}"
    doc = data_model_doc()
    with Client(server.base_url, name) as client:
        client.publish(doc)
    with urllib.request.urlopen(f"{server.base_url}/api/v1/documents/{name}/doc", timeout=10) as r:
        stored = json.load(r)
    assert [d["name"] for d in stored.get("defs", [])] == [model_type(doc)], stored.get("defs")
    view = views("data-model").open(f"{server.base_url}/d/{name}/")
    assert view.page.evaluate(JS_PARAMS) == [model_type(doc), 5, "plotwire"]
    assert not view.page_errors, view.page_errors


def test_a_pushed_session_with_a_data_model_renders(server, clients, views):
    doc = data_model_doc()
    sid = unique_id("data-model-push")
    clients.push(doc, server.app_url(), sid)
    view = views("data-model-push").open(server.page_url(sid))
    assert view.page.evaluate(JS_PARAMS) == [model_type(doc), 5, "plotwire"]
    assert not view.page_errors, view.page_errors
