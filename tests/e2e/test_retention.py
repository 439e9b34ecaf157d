"""Per-document retention end to end (docs/storage.md, "Retention"): a real bokeh 3.9.2
figure published with ``?max_age=3s`` and viewed by unmodified BokehJS 3.9.2 in headless
Chromium. The server's trims must shorten the page's columns exactly as they shorten the
document, for list columns (a stream of no rows with a rollover, then the empty data) and
for typed-array columns (the new data: BokehJS's ``stream_to`` cannot shorten a typed
array). ``max_rows`` caps what the page holds as it caps the document.

Everything is on 127.0.0.1; every wait is bounded (support.wait_value, Playwright timeouts).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from support import unique_id, wait_value
from test_published import X0, Y0, build_layout, ok, rest, views  # noqa: F401  (views is a fixture)

pytestmark = pytest.mark.plotwire_only


def doc_json(typed: bool) -> dict:
    """The published figure of test_published; with ``typed``, its source holds numpy
    arrays (typed arrays in BokehJS)."""
    from bokeh.document import Document

    layout = build_layout(y_range="fixed")
    doc = Document()
    doc.title = "retention e2e"
    doc.add_root(layout)
    if typed:
        src = doc.get_model_by_name("src")
        src.data = {"x": np.array(X0), "y": np.array(Y0)}
    return doc.to_json(deferred=False)


def publish(server, query: str, typed: bool) -> str:
    name = f"e2e/{unique_id('retention')}"
    got = ok(rest(server, "PUT", f"/api/v1/documents/{name}?{query}", doc_json(typed)), 201)
    assert got["url"].rstrip("/").endswith(f"/d/{name}"), got
    return name


def stream(server, name: str, xs: list[float]) -> None:
    ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream", {"x": xs, "y": xs}))


def read_x(server, name: str) -> list[float]:
    return ok(rest(server, "GET", f"/api/v1/documents/{name}/sources/src"))["data"]["x"]


@pytest.mark.parametrize("typed", [False, True], ids=["lists", "typed-arrays"])
def test_max_age_trims_reach_bokehjs(server, views, typed):
    name = publish(server, "max_age=3s", typed)
    view = views("retention").open(f"{server.base_url}/d/{name}/")
    first = time.monotonic()
    stream(server, name, [100.0, 101.0, 102.0])
    wait_value(lambda: view.columns()["x"], lambda x: x[-1] == 102.0, timeout=10, desc="the first rows")
    # Two seconds apart (trims are at least 1 s apart), so that a trim takes the published
    # rows and the first batch before the second batch ages out.
    time.sleep(max(0.0, 2.0 - (time.monotonic() - first)))
    stream(server, name, [200.0, 201.0])
    # The page keeps the young rows only, with every column as long as the document's.
    cols = wait_value(view.columns, lambda c: c["x"] == [200.0, 201.0], timeout=10,
                      desc="the page after the first trims")
    assert cols["y"] == [200.0, 201.0], cols
    assert time.monotonic() - first >= 3.0, "trimmed early"
    assert read_x(server, name) == [200.0, 201.0]
    # Then nothing is left, in the page as in the document.
    cols = wait_value(view.columns, lambda c: c["x"] == [], timeout=10, desc="the emptied page")
    assert cols["y"] == [], cols
    assert read_x(server, name) == []
    assert not view.page_errors, view.page_errors


def test_the_python_client_publishes_with_a_retention(server):
    from plotwire import Client

    from bokeh.document import Document

    name = f"e2e/{unique_id('retention-client')}"
    with Client(server.base_url, name) as client:
        doc = Document()
        doc.add_root(build_layout(y_range="fixed"))
        client.publish(doc, max_rows=len(X0))
        new = [1000.0 + i for i in range(5)]
        client.stream("src", {"x": new, "y": [0.0] * 5})
        assert read_x(server, name) == list(X0[5:]) + new
        with pytest.raises(Exception, match="max_age"):
            client.publish(doc, max_age="3 weeks")


@pytest.mark.parametrize("typed", [False, True], ids=["lists", "typed-arrays"])
def test_max_rows_caps_what_bokehjs_holds(server, views, typed):
    name = publish(server, "max_rows=12", typed)
    view = views("max-rows").open(f"{server.base_url}/d/{name}/")
    for b in range(3):
        stream(server, name, [float(1000 + b * 5 + i) for i in range(5)])
    want = [float(1000 + i) for i in range(3, 15)]
    cols = wait_value(view.columns, lambda c: c["x"] == want, timeout=10, desc="the capped page")
    assert len(cols["y"]) == 12, cols
    assert read_x(server, name) == want
    assert not view.page_errors, view.page_errors
