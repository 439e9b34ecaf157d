"""Level of detail end to end (docs/lod.md): a long time series published from a spec and
streamed over REST reaches each unmodified BokehJS 3.9.2 page downsampled to what that page
shows, a real wheel zoom makes the page hold finer data for its new range, another page
keeps its own data, the downsampled drawing matches the raw drawing pixel column by pixel
column, a selection reaches the producers as rows of the full source, and the live edge
keeps up with a producer while ten pages watch.

Everything runs on 127.0.0.1 with headless Chromium; every wait is bounded
(support.wait_for / wait_value, Playwright timeouts).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from plotwire import Client, RetryPolicy
from support import unique_id, wait_for, wait_value
from test_published import Events, View, ok, rest, views  # noqa: F401  (views is a fixture)

pytestmark = pytest.mark.plotwire_only

RENDER_TIMEOUT_MS = 20000
PLOT_W, PLOT_H = 900, 320

# The page's copy of source "s": its length and first/last x; the plot's frame width and
# x range.
JS_STATE = """() => {
    const docs = window.Bokeh && Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const src = docs[0].get_model_by_name("s");
    const plot = docs[0].get_model_by_name("p");
    if (src == null || plot == null) return null;
    const data = src.data instanceof Map ? src.data : new Map(Object.entries(src.data));
    const x = data.get("x"), y = data.get("y");
    const extreme = (v, better) => {
        let best = NaN;
        for (const e of v) if (!Number.isNaN(e) && (Number.isNaN(best) || better(e, best))) best = e;
        return best;
    };
    if (x == null || x.length == 0) return {rows: 0, inner_width: plot.inner_width ?? null};
    let inside = 0;
    for (const v of x) if (v >= plot.x_range.start && v <= plot.x_range.end) inside += 1;
    return {rows: x.length, first: x[0], last: x[x.length - 1], inside,
            inner_width: plot.inner_width ?? null, start: plot.x_range.start, end: plot.x_range.end,
            y_min: extreme(y, (a, b) => a < b), y_max: extreme(y, (a, b) => a > b)};
}"""

# Records when the page's x range last moved and when the source's data last changed
# (performance.now(), ms), from BokehJS's own document change events.
JS_RECORD_CHANGES = """() => {
    const doc = Bokeh.documents[0];
    const plot = doc.get_model_by_name("p");
    const src = doc.get_model_by_name("s");
    window.__lod = {range: [], data: []};
    doc.on_change((ev) => {
        const t = performance.now();
        if (ev.model === plot.x_range) window.__lod.range.push(t);
        if (ev.model === src && (ev.attr === "data" || ev.kind === "ColumnDataChanged" || ev.constructor.name.includes("Column")))
            window.__lod.data.push(t);
    });
}"""


def spec(lod: bool | None = None, y_range: tuple[float, float] | None = None,
         tools: list[str] | None = None, x_range: tuple[float, float] | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"columns": {"x": "float64", "y": "float64"}}
    if lod is not None:
        source["lod"] = lod
    plot: dict[str, Any] = {"kind": "line", "source": "s", "x": "x", "y": "y",
                            "width": PLOT_W, "height": PLOT_H}
    if y_range is not None:
        plot["y_range"] = {"start": y_range[0], "end": y_range[1]}
    if tools is not None:
        plot["tools"] = tools
    if x_range is not None:
        plot["x_range"] = {"start": x_range[0], "end": x_range[1]}
    return {"title": "lod e2e", "sources": {"s": source}, "plots": {"p": plot}}


def random_walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.standard_normal(n))


def publish_series(server, prefix: str, n: int, body: dict[str, Any], seed: int = 1,
                   batch: int = 1_000_000) -> tuple[Client, str, np.ndarray, np.ndarray]:
    name = f"e2e/{unique_id(prefix)}"
    client = Client(server.base_url, name, timeout=120)
    client.publish(body)
    x = np.arange(n, dtype=np.float64)
    y = random_walk(n, seed)
    for a in range(0, n, batch):
        client.stream("s", {"x": x[a:a + batch], "y": y[a:a + batch]})
    return client, name, x, y


def page_url(server, name: str) -> str:
    return f"{server.base_url}/d/{name}/"


def open_page(views, tag: str, url: str) -> View:
    view = views(tag)
    view.page.goto(url, wait_until="load", timeout=RENDER_TIMEOUT_MS)
    view.page.wait_for_function("() => window.Bokeh != null && Bokeh.documents.length > 0 && "
                                "Bokeh.documents[0].get_model_by_name('s') != null", timeout=RENDER_TIMEOUT_MS)
    view.page.locator("canvas").first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    return view


def state(view: View) -> dict[str, Any] | None:
    return view.page.evaluate(JS_STATE)


def settled(view: View, timeout: float = 20.0) -> dict[str, Any]:
    """The page's state once BokehJS has reported its frame width and the server's copy
    for that width has arrived (two equal readings 300 ms apart)."""
    last: list[Any] = [None]

    def stable() -> Any:
        now = state(view)
        ok_now = now is not None and now.get("inner_width") and now["rows"] > 0 and now == last[0]
        last[0] = now
        if not ok_now:
            view.page.wait_for_timeout(300)
        return now if ok_now else None

    return wait_for(stable, timeout=timeout, desc=f"page {view.tag}'s settled downsampled copy")


def wheel_zoom_in(view: View, clicks: int = 6) -> None:
    """Turns the wheel zoom on with its toolbar button, as a viewer does, then zooms in
    with real wheel events over the middle of the plot."""
    view.page.locator(".bk-tool-icon-wheel-zoom").first.click()
    wait_for(lambda: view.page.evaluate(
        "() => Bokeh.documents[0].get_model_by_name('p').toolbar.active_scroll != null"),
        timeout=5, desc="the wheel zoom turned on")
    canvas = view.page.locator("canvas").first
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200, box
    view.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    for _ in range(clicks):
        view.page.mouse.wheel(0, -240)
        view.page.wait_for_timeout(30)


# ---------------------------------------------------------------------------

def test_a_long_series_reaches_each_view_downsampled_and_a_zoom_refines_only_that_view(server, views):
    n = 10_000_000
    _, name, _, y = publish_series(server, "lod-big", n, spec(tools=["pan", "wheel_zoom", "reset"]))
    one = open_page(views, "one", page_url(server, name))
    two = open_page(views, "two", page_url(server, name))
    first = settled(one)
    width = first["inner_width"]
    assert 100 < width <= PLOT_W, first
    # fewer than 4 points per pixel column of one series, the whole series' extent and
    # its true extremes
    assert first["rows"] < 4 * width, first
    assert first["rows"] > width, first
    assert (first["first"], first["last"]) == (0.0, n - 1.0), first
    assert (first["start"], first["end"]) == (0.0, n - 1.0), first
    assert (first["y_min"], first["y_max"]) == (float(y.min()), float(y.max())), first
    assert settled(two)["rows"] == first["rows"]

    # a real wheel zoom over the plot: page one gets finer data for its new range
    one.page.evaluate(JS_RECORD_CHANGES)
    wheel_zoom_in(one)
    zoomed = wait_value(lambda: state(one),
                        lambda s: s is not None and s["end"] - s["start"] < 0.8 * n and s["inside"] > 0.8 * s["rows"] * 0.5,
                        timeout=10, desc="page one's refined copy for its zoomed range")
    zoomed = settled(one)
    span = zoomed["end"] - zoomed["start"]
    assert span < 0.8 * n, zoomed
    # the copy covers the new range at the same density, plus margins past its edges
    assert zoomed["inside"] > 2 * width * 0.8, zoomed
    assert zoomed["rows"] < 4 * width * 1.25 + 8, zoomed
    assert zoomed["first"] < zoomed["start"] and zoomed["last"] > zoomed["end"], "margins past both edges"
    times = one.page.evaluate("() => window.__lod")
    assert times["range"] and times["data"], times
    gesture_end = max(times["range"])
    refined = [t for t in times["data"] if t >= gesture_end]
    assert refined, f"no data change after the last range change: {times}"
    latency = refined[0] - gesture_end
    print(f"LOD refinement latency after the gesture's last range change: {latency:.0f} ms")
    assert latency <= 200, f"refined data arrived {latency:.0f} ms after the gesture ended"

    # page two kept its own, unzoomed view and data
    other = state(two)
    assert (other["start"], other["end"]) == (0.0, n - 1.0), other
    assert other["rows"] == first["rows"] and (other["first"], other["last"]) == (0.0, n - 1.0), other
    assert not one.page_errors and not two.page_errors, (one.page_errors, two.page_errors)


def _plot_pixels(view: View) -> np.ndarray:
    from PIL import Image

    canvas = view.page.locator("canvas").first
    png = canvas.screenshot(timeout=RENDER_TIMEOUT_MS)
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)


def test_the_downsampled_drawing_matches_the_raw_drawing_column_by_column(server, views):
    """Screenshots of one plot drawn from the raw 1e6 rows (lod off) and from the
    downsampled copy (lod on): same ranges, same size. The diff method: a pixel is ink when
    its grey level is below 250 of 255. Anti-aliasing changes how dark a line is (a thousand
    overlapping segments per pixel column are darker than M4's three or four), never where
    it is, and M4 promises where: the same pixels are inked in every column, give or take a
    few at the ends of a column's vertical run."""
    n = 1_000_000
    y = random_walk(n, seed=7)
    y_range = (float(y.min()) - 1, float(y.max()) + 1)
    pages = {}
    for lod in (False, True):
        _, name, _, _ = publish_series(server, f"lod-visual-{lod}", n, spec(lod=lod, y_range=y_range, x_range=(0.0, n - 1.0)),
                                     seed=7)
        view = open_page(views, f"lod={lod}", page_url(server, name))
        got = settled(view, timeout=60)
        assert (got["start"], got["end"]) == (0.0, n - 1.0), got
        pages[lod] = (view, got)
    raw_view, raw_state = pages[False]
    lod_view, lod_state = pages[True]
    assert raw_state["rows"] == n and lod_state["rows"] < 4 * lod_state["inner_width"], (raw_state, lod_state)
    raw_view.settle(0.5)
    lod_view.settle(0.5)
    a, b = _plot_pixels(raw_view), _plot_pixels(lod_view)
    assert a.shape == b.shape, (a.shape, b.shape)
    ink_a, ink_b = a < 250, b < 250
    differs = ink_a != ink_b
    per_column = differs.sum(axis=0)
    print(f"visual check: {int(differs.sum())} pixels inked in one drawing only, of {int(ink_a.sum())} inked; "
          f"worst column {int(per_column.max())} pixels; columns with any: {int((per_column > 0).sum())} "
          f"of {a.shape[1]}")
    assert ink_a.sum() > 10 * a.shape[1], "the raw drawing shows a line"
    assert per_column.max() <= 3, f"columns differ by up to {per_column.max()} pixels"


# Page coordinates of row i of the page's copy, from BokehJS's own scales.
JS_ROW_XY = """(i) => {
    const doc = Bokeh.documents[0];
    const plot = doc.get_model_by_name("p");
    const d = doc.get_model_by_name("s").data;
    const data = d instanceof Map ? d : new Map(Object.entries(d));
    const view = Bokeh.index.find_one(plot);
    const r = view.canvas_view.el.getBoundingClientRect();
    return [r.left + view.frame.x_scale.compute(data.get("x")[i]),
            r.top + view.frame.y_scale.compute(data.get("y")[i])];
}"""


JS_COLUMN_AT = """(i) => {
    const d = Bokeh.documents[0].get_model_by_name("s").data;
    const data = d instanceof Map ? d : new Map(Object.entries(d));
    return [data.get("x")[i], data.get("y")[i]];
}"""


def test_a_tap_on_the_downsampled_line_reaches_producers_as_a_row_of_the_full_source(server, views):
    n = 300_000
    _, name, x, y = publish_series(server, "lod-tap", n, spec(lod=True, tools=["tap"]))
    page = open_page(views, "tap", page_url(server, name))
    got = settled(page)
    events = Events(server, name)
    # a real click on the line, at a row of the copy in the middle of the plot
    local_row = got["rows"] // 2
    px, py = page.page.evaluate(JS_ROW_XY, local_row)
    page.page.mouse.click(px, py)
    change = events.wait(lambda e: e.get("kind") == "change" and e.get("attr") == "line_indices"
                         and e.get("view") == page.view_id and e.get("value"), desc="the tap's selection event")[-1]
    local = page.page.evaluate("() => Array.from(Bokeh.documents[0].get_model_by_name('s').selected.line_indices)")
    assert len(local) == 1 and abs(local[0] - local_row) <= 1, (local, local_row)
    assert change["source"]["name"] == "s", change
    rows = change["value"]
    assert len(rows) == 1, rows
    # the producers get the row of the full source that the page's segment starts at
    copy = page.page.evaluate(JS_COLUMN_AT, local[0])
    assert rows[0] > got["rows"], "the index was not mapped to the full source"
    assert [float(x[rows[0]]), float(y[rows[0]])] == copy


@pytest.fixture
def far_views(chromium, tmp_path):
    """Like ``views``, in a Chromium of its own that runs on the machine's last CPU only,
    leaving the others to the server and the producer: in production the viewers'
    browsers are on other machines. (Ten renderers and the compositor, which Chromium
    runs at a raised priority, would otherwise take every core of a two-core machine.)"""
    from conftest import CHROMIUM, CHROMIUM_ARGS
    from test_published import new_view

    wrapper = tmp_path / "chromium-nice"
    last_cpu = (os.cpu_count() or 1) - 1
    wrapper.write_text(f'#!/bin/sh\nexec taskset -c {last_cpu} "{CHROMIUM}" "$@"\n')
    wrapper.chmod(0o755)
    browser = chromium.browser_type.launch(executable_path=str(wrapper), args=CHROMIUM_ARGS, headless=True)
    contexts: list[Any] = []
    log: list[str] = []

    def make(tag: str) -> View:
        return new_view(browser, contexts, tag, log)

    yield make
    for ctx in contexts:
        ctx.close()
    browser.close()


PRODUCER = """
import json, sys, time
import numpy as np
from plotwire import Client, RetryPolicy
url, name, start, batch, batches = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
client = Client(url, name, timeout=60, retry=RetryPolicy(attempts=1))
rng = np.random.default_rng(4)
calls = []
t0 = time.monotonic()
for k in range(batches):
    xs = np.arange(start + k * batch, start + (k + 1) * batch, dtype=np.float64)
    c0 = time.monotonic()
    client.stream("s", {"x": xs, "y": rng.standard_normal(batch)})
    calls.append(time.monotonic() - c0)
    behind = t0 + (k + 1) / 50 - time.monotonic()
    if behind > 0:
        time.sleep(behind)
print(json.dumps({"sent": batches, "elapsed": time.monotonic() - t0, "calls": calls}))
"""


def test_the_live_edge_keeps_up_with_fifty_batches_a_second_and_ten_views(server, far_views):
    body = spec(lod=True)
    # 400-px plots: ten headless software renderers on one core draw a 1600-point line
    # ten times a second each; at 900 px they fall behind (the browsers' limit, not the
    # server's: the server's work grows with the width too, and it is measured below).
    body["plots"]["p"].update({"x_range": {"follow": 20_000}, "width": 400, "height": 200})
    name = f"e2e/{unique_id('lod-live')}"
    # no retries: a slow answer must show as one
    client = Client(server.base_url, name, timeout=60, retry=RetryPolicy(attempts=1))
    client.publish(body)
    rng = np.random.default_rng(3)
    client.stream("s", {"x": np.arange(200_000, dtype=np.float64), "y": rng.standard_normal(200_000)})
    pages = [open_page(far_views, f"live{i}", page_url(server, name)) for i in range(10)]
    for p in pages:
        settled(p, timeout=60)
    batch, start, batches = 1000, 200_000, 150
    # The producer is a process of its own, as producers are: it streams 50 batches a
    # second (3 s), each call waiting for its answer, and reports how long each took.
    out = subprocess.run([sys.executable, "-c", PRODUCER, server.base_url, name, str(start), str(batch),
                          str(batches)], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout)
    sent, elapsed, calls = report["sent"], report["elapsed"], sorted(report["calls"])
    last_x = float(start + sent * batch - 1)
    calls.sort()
    print(f"live edge: {sent} batches in {elapsed:.2f} s ({sent / elapsed:.1f}/s) with 10 views; "
          f"stream call p50 {calls[len(calls) // 2] * 1000:.1f} ms, p99 {calls[int(len(calls) * 0.99)] * 1000:.1f} ms, "
          f"max {calls[-1] * 1000:.1f} ms")
    assert sent / elapsed >= 45, "the producer could not stream 50 batches a second"
    assert calls[int(len(calls) * 0.99)] < 0.1, "a stream call waited on the views"
    for p in pages:
        s = wait_value(lambda p=p: state(p), lambda s: s is not None and s["last"] == last_x,
                       timeout=5, desc=f"page {p.tag} at the live edge")
        assert (s["start"], s["end"]) == (last_x - 20_000, last_x), s
        assert s["rows"] < 4 * s["inner_width"] * 1.25 + 8, s


def test_after_a_restart_an_open_page_gets_its_downsampled_copy_again(server_factory, views, tmp_path):
    """The server is killed (SIGKILL) with a page open and restarted on the same data dir:
    the document comes back from the store, its aggregates are rebuilt from the restored
    columns, and the page, which re-pulls by itself, holds a downsampled copy again, which
    keeps following the rows streamed after the restart."""
    data_dir = str(tmp_path / "data")
    srv = server_factory(["--data-dir", data_dir])
    n = 400_000
    client, name, _, y = publish_series(srv, "lod-restart", n, spec(), batch=200_000)
    page = open_page(views, "restart", page_url(srv, name))
    before = settled(page)
    assert before["rows"] < 4 * before["inner_width"] and before["last"] == n - 1.0, before
    assert srv.proc is not None
    srv.proc.kill()
    srv.proc.wait(10)
    srv.stop()
    again = server_factory(["--data-dir", data_dir], port=srv.port)
    wait_value(lambda: ok(rest(again, "GET", f"/api/v1/documents/{name}"))["views"], lambda v: v >= 1,
               timeout=30, desc="the page to reconnect to the new server")
    more = Client(again.base_url, name, timeout=60)
    more.stream("s", {"x": np.arange(n, n + 1000, dtype=np.float64), "y": np.zeros(1000)})
    after = wait_value(lambda: state(page), lambda s: s is not None and s.get("last") == n + 999.0,
                       timeout=30, desc="the page's copy after the restart and one more stream")
    assert after["rows"] < 4 * after["inner_width"], after
    assert (after["start"], after["end"]) == (0.0, n + 999.0), after
    assert after["y_min"] == min(float(y.min()), 0.0) and after["y_max"] == max(float(y.max()), 0.0), after
