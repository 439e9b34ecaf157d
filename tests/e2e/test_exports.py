"""Standalone pages that stay live, and json_item embeds (docs/exports.md), end to end.

`plotwire export` (the real binary) writes one HTML file with BokehJS 3.9.2 inlined; real
headless Chromium opens it from a plain static file server on another port, or from
``file://``, and so does a page saved by ``bokeh.io.save`` (examples/bokeh_save_ajax.py). The page must show the embedded sample at once, grow while a producer
streams, keep its data while plotwire is down with at most one console error a minute,
and catch up with every row exactly once when plotwire is back. ``json_item``s are
embedded by the example page ``examples/embed/index.html`` served from another origin.

Everything is on 127.0.0.1; every wait is bounded (support.wait_value, Playwright
timeouts).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support import PLOTWIRE_BIN, REPO_ROOT, free_port, unique_id, wait_value

pytestmark = pytest.mark.plotwire_only

SPEC = {
    "title": "Exported",
    "sources": {"train": {"columns": {"step": "int32", "loss": "float64"}}},
    "plots": {
        "loss": {"kind": "line", "source": "train", "x": "step", "y": "loss"},
        "points": {"kind": "scatter", "source": "train", "x": "step", "y": "loss"},
    },
    "layout": {"grid": {"loss": [0, 0, 1, 1], "points": [0, 1, 1, 1]}},
}

# The rows of source "train" in the page, or None before the document is there.
JS_ROWS = """() => {
    const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
    const src = doc && doc.get_model_by_name("train");
    return src == null ? null : [src.type, Array.from(src.data.step), Array.from(src.data.loss)];
}"""

# The step columns of the "train" source of every embedded document.
JS_EMBEDDED = """() => {
    const docs = (window.Bokeh && Bokeh.documents) || [];
    return docs.map((d) => {
        const s = d.get_model_by_name("train");
        return s == null ? null : Array.from(s.data.step);
    });
}"""


def call(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def stream(server, name: str, first: int, count: int) -> None:
    steps = list(range(first, first + count))
    call("POST", f"{server.base_url}/api/v1/documents/{name}/sources/train/stream",
         {"step": steps, "loss": [s / 10 for s in steps]})


def publish(server, rows: int) -> str:
    name = f"exports/{unique_id('doc')}"
    call("PUT", f"{server.base_url}/api/v1/documents/{name}", SPEC)
    if rows:
        stream(server, name, 0, rows)
    return name


def export(server, name: str, out: Path, *args: str) -> str:
    done = subprocess.run([str(PLOTWIRE_BIN), "export", "--url", server.base_url, name, str(out), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr, done.stderr
    return out.read_text()


def rows_in(page: Any, count: int, timeout: float) -> list:
    return wait_value(lambda: page.evaluate(JS_ROWS), lambda v: v is not None and len(v[1]) >= count,
                      timeout=timeout, desc=f"{count} rows in the page")


def assert_exactly(rows: list, count: int) -> None:
    assert rows[1] == list(range(count)), f"steps {rows[1][:5]}...{rows[1][-5:]} ({len(rows[1])})"
    assert rows[2] == pytest.approx([s / 10 for s in range(count)])


def network_errors(page) -> list[str]:
    return [e for e in page.console_errors if "Failed to load resource" in e or "ERR_" in e]


def test_an_exported_page_on_another_origin_grows_waits_for_a_restart_and_catches_up(
        server_factory, browser_page, embed_http_server, tmp_path):
    srv = server_factory()
    name = publish(srv, 100)
    html = export(srv, name, tmp_path / "page.html", "--interval", "300")
    assert "<script src" not in html, "BokehJS is inlined"
    port = embed_http_server(html, free_port())
    page = browser_page.page
    page.goto(f"http://127.0.0.1:{port}/")
    first = wait_value(lambda: page.evaluate(JS_ROWS), lambda v: v is not None, timeout=20,
                       desc="the embedded document")
    assert first[0] == "AjaxDataSource"
    assert_exactly(first, 100)

    stream(srv, name, 100, 50)
    assert_exactly(rows_in(page, 150, 10), 150)

    srv.stop()
    down_at = time.monotonic()
    time.sleep(8)
    kept = page.evaluate(JS_ROWS)
    assert_exactly(kept, 150)
    assert len(network_errors(browser_page)) <= 1, browser_page.console_errors
    assert any("asks again every 60 s" in line for line in browser_page.log), browser_page.log[-5:]

    srv.start()
    stream(srv, name, 150, 30)
    caught_up = rows_in(page, 180, 75)
    outage = time.monotonic() - down_at
    assert_exactly(caught_up, 180)
    time.sleep(1)
    assert_exactly(page.evaluate(JS_ROWS), 180)
    # One failed request per retry (60 s): the outage plus the wait cover at most two.
    assert len(network_errors(browser_page)) <= 1 + int(outage // 60), browser_page.console_errors
    assert any("answers again" in line for line in browser_page.log)
    assert not browser_page.page_errors


def test_an_exported_file_url_page_follows_appends_and_a_replace(server, browser_page, tmp_path):
    name = publish(server, 20)
    out = tmp_path / "offline.html"
    export(server, name, out, "--interval", "200", "--max-size", "1000")
    page = browser_page.page
    page.goto(out.as_uri())
    assert_exactly(rows_in(page, 20, 20), 20)
    stream(server, name, 20, 5)
    assert_exactly(rows_in(page, 25, 10), 25)
    # A replace is not an append: the page starts over with the new content.
    call("PUT", f"{server.base_url}/api/v1/documents/{name}/sources/train",
         {"step": [0, 1, 2], "loss": [0.0, 0.1, 0.2]})
    replaced = wait_value(lambda: page.evaluate(JS_ROWS), lambda v: v is not None and len(v[1]) == 3,
                          timeout=10, desc="the replaced content")
    assert_exactly(replaced, 3)
    stream(server, name, 3, 2)
    assert_exactly(rows_in(page, 5, 10), 5)
    browser_page.assert_no_errors()


def test_an_sse_export_resumes_after_a_restart_with_every_row_once(
        server_factory, browser_page, embed_http_server, tmp_path):
    srv = server_factory()
    name = publish(srv, 10)
    html = export(srv, name, tmp_path / "sse.html", "--live", "sse", "--retry", "1500")
    port = embed_http_server(html, free_port())
    page = browser_page.page
    page.goto(f"http://127.0.0.1:{port}/")
    first = rows_in(page, 10, 20)
    assert first[0] == "ServerSentDataSource"
    assert_exactly(first, 10)
    stream(srv, name, 10, 10)
    assert_exactly(rows_in(page, 20, 10), 20)

    srv.stop()
    time.sleep(3)
    assert_exactly(page.evaluate(JS_ROWS), 20)
    srv.start()
    stream(srv, name, 20, 15)
    assert_exactly(rows_in(page, 35, 30), 35)
    stream(srv, name, 35, 5)
    assert_exactly(rows_in(page, 40, 10), 40)
    time.sleep(0.5)
    assert_exactly(page.evaluate(JS_ROWS), 40)
    assert not browser_page.page_errors


def test_json_items_embed_in_a_page_on_another_origin_and_stay_live(server, browser_page, embed_http_server):
    name = publish(server, 30)
    html = (REPO_ROOT / "examples" / "embed" / "index.html").read_text()
    port = embed_http_server(html, free_port())
    page = browser_page.page
    page.goto(f"http://127.0.0.1:{port}/?server={server.base_url}&doc={name}&plots=loss,points&interval=300")
    embedded = wait_value(lambda: page.evaluate(JS_EMBEDDED),
                          lambda v: len(v) == 2 and all(s is not None and len(s) == 30 for s in v),
                          timeout=20, desc="two embedded plots")
    assert embedded == [list(range(30))] * 2
    # Each item is one plot, drawn in the host page's own div.
    drawn = page.evaluate("""() => Array.from(document.querySelectorAll('#plots > div'))
        .map((d) => d.firstElementChild == null ? 0 : d.firstElementChild.getBoundingClientRect().width)""")
    assert len(drawn) == 2 and all(w > 100 for w in drawn), drawn
    stream(server, name, 30, 12)
    grown = wait_value(lambda: page.evaluate(JS_EMBEDDED),
                       lambda v: all(s is not None and len(s) == 42 for s in v),
                       timeout=10, desc="both plots grown")
    assert grown == [list(range(42))] * 2
    browser_page.assert_no_errors()


def test_bad_export_options_get_a_json_error_naming_the_option(server):
    name = publish(server, 1)
    for query, field in [("live=websocket", "live"), ("interval=5", "interval"),
                         ("public_url=javascript:alert(1)", "public_url"), ("max_size=0", "max_size"),
                         ("root=nope", "root")]:
        req = urllib.request.Request(f"{server.base_url}/api/v1/documents/{name}/json_item?{query}")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert 400 <= err.value.code < 500, query
        body = json.loads(err.value.read())
        assert body.get("field") == field, (query, body)


def test_a_page_saved_by_bokeh_with_ajax_sources_reads_plotwire(server, browser_page, tmp_path):
    name = publish(server, 12)
    out = tmp_path / "mine.html"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "bokeh_save_ajax.py"),
                           "--url", server.base_url, "--doc", name, "--interval", "200", "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = browser_page.page
    page.goto(out.as_uri())
    js = """(which) => {
        const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
        const s = doc && doc.get_model_by_name(which);
        return s == null ? null : Array.from(s.data.step || []);
    }"""

    def both(n: int) -> list:
        return wait_value(lambda: [page.evaluate(js, "new_rows"), page.evaluate(js, "whole")],
                          lambda v: all(s is not None and len(s) == n for s in v),
                          timeout=15, desc=f"{n} rows in both sources")

    assert both(12) == [list(range(12))] * 2
    stream(server, name, 12, 8)
    assert both(20) == [list(range(20))] * 2
    time.sleep(0.6)
    assert [page.evaluate(js, "new_rows"), page.evaluate(js, "whole")] == [list(range(20))] * 2
    browser_page.assert_no_errors()
