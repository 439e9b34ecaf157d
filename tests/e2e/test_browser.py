"""Unmodified BokehJS 3.9.2 (headless system Chromium) against the server, with a Python
``bokeh.client`` producer whose callbacks run in a background thread.

The producer pushes column(figure(line + scatter on "src"), Slider "slider", Button
"button") with ``slider.on_change`` and ``button.on_event(ButtonClick)`` registered.
"""
from __future__ import annotations


import pytest

from support import (
    INITIAL_X,
    CallbackRecorder,
    build_plot_doc,
    free_port,
    pull_snapshot,
    unique_id,
    wait_for,
    wait_value,
)

RENDER_TIMEOUT_MS = 20000

# JS helpers evaluated in the page ------------------------------------------------------

JS_MODEL_PROP = """([name, prop]) => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const m = docs[0].get_model_by_name(name);
    return m == null ? null : m[prop];
}"""

JS_COLUMN = """([name, col]) => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const src = docs[0].get_model_by_name(name);
    if (src == null) return null;
    const data = src.data;
    const c = data instanceof Map ? data.get(col) : data[col];
    return c == null ? null : Array.from(c);
}"""

JS_SET = """([name, prop, value]) => {
    const m = window.Bokeh.documents[0].get_model_by_name(name);
    m[prop] = value;
    return m[prop];
}"""

JS_RANGE = """() => {
    const plot = window.Bokeh.documents[0].get_model_by_name("plot");
    return [plot.x_range.start, plot.x_range.end];
}"""


class Producer:
    """A pushed document with recorded Python callbacks, live in a background thread.

    Event subscriptions (``on_event``) must exist before the push, so that the pushed
    ``subscribed_events`` make BokehJS publish those events.
    """

    def __init__(self, clients, server, prefix: str, tap_recorder: CallbackRecorder | None = None) -> None:
        self.sid = unique_id(prefix)
        self.url = server.app_url()
        self.slider_changes = CallbackRecorder()
        self.button_clicks = CallbackRecorder()
        plot_events = {}
        if tap_recorder is not None:
            from bokeh.events import Tap
            plot_events[Tap] = tap_recorder
        doc = build_plot_doc(slider_cb=lambda attr, old, new: self.slider_changes((attr, old, new)),
                             button_cb=self.button_clicks, plot_events=plot_events)
        self.live = clients.push(doc, self.url, self.sid, name="producer")

    def wait(self, recorder: CallbackRecorder, check, desc: str, timeout: float = 10.0) -> list:
        """Wait for a producer callback; a failure also reports errors of the client loop."""
        try:
            return recorder.wait(check, timeout=timeout, desc=desc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; producer patch errors: {self.live.patch_errors!r}; "
                                 f"client loop running: {self.live.running}") from None


def make_producer(clients, server, prefix: str, tap_recorder: CallbackRecorder | None = None) -> Producer:
    return Producer(clients, server, prefix, tap_recorder)


def open_page(bp, url: str) -> None:
    """Load a page and wait until BokehJS has rendered a canvas and has the document."""
    bp.page.goto(url, wait_until="load", timeout=RENDER_TIMEOUT_MS)
    bp.page.locator("canvas").first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
    bp.page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].get_model_by_name('src') != null",
        timeout=RENDER_TIMEOUT_MS)


def page_column(bp, col: str):
    return bp.page.evaluate(JS_COLUMN, ["src", col])


def settle(bp, seconds: float = 1.0) -> None:
    """Give the page time to log late errors (bounded)."""
    bp.page.wait_for_timeout(int(seconds * 1000))


# ---------------------------------------------------------------------------

def test_page_renders_pushed_document(server, clients, browser_page):
    producer = make_producer(clients, server, "browser-render")
    open_page(browser_page, server.page_url(producer.sid))
    assert page_column(browser_page, "x") == INITIAL_X
    assert browser_page.page.evaluate(JS_MODEL_PROP, ["button", "label"]) == "Click me"
    assert browser_page.page.evaluate(JS_MODEL_PROP, ["slider", "value"]) == 1
    # use_for_title: the page title follows the document title
    wait_for(lambda: browser_page.page.title() == "pushed doc", timeout=10, desc="page title")
    assert browser_page.page.locator("canvas").count() >= 1
    wait_for(lambda: browser_page.page.locator("button", has_text="Click me").count() == 1, timeout=10,
             desc="the Button widget")
    settle(browser_page)
    browser_page.assert_no_errors()


def test_streamed_data_and_title_reach_page(server, clients, browser_page):
    producer = make_producer(clients, server, "browser-stream")
    open_page(browser_page, server.page_url(producer.sid))
    live = producer.live

    live.call(lambda: live.doc.get_model_by_name("src").stream(dict(x=[5, 6], y=[25, 36])))
    wait_value(lambda: page_column(browser_page, "x"), lambda v: v == [0, 1, 2, 3, 4, 5, 6], timeout=10,
               desc="streamed x in the page")
    live.call(lambda: live.doc.get_model_by_name("src").stream(dict(x=[7, 8, 9], y=[49, 64, 81]), rollover=8))
    wait_value(lambda: page_column(browser_page, "x"), lambda v: v == [2, 3, 4, 5, 6, 7, 8, 9], timeout=10,
               desc="x after a stream with rollover=8")
    live.call(lambda: live.doc.get_model_by_name("src").patch(dict(y=[(0, 42)])))
    wait_value(lambda: page_column(browser_page, "y"), lambda v: v is not None and v[0] == 42, timeout=10,
               desc="patched y[0] in the page")
    live.call(lambda: setattr(live.doc, "title", "title changed by producer"))
    wait_for(lambda: browser_page.page.title() == "title changed by producer", timeout=10, desc="page title")
    settle(browser_page)
    browser_page.assert_no_errors()


def test_slider_set_in_page_fires_producer_on_change(server, clients, browser_page):
    """Verified against bokeh serve 3.9.2 too: the browser's ModelChanged(slider.value) is
    relayed to the push client, whose document runs its on_change callback."""
    producer = make_producer(clients, server, "browser-slider")
    open_page(browser_page, server.page_url(producer.sid))
    assert browser_page.page.evaluate(JS_SET, ["slider", "value", 7]) == 7
    producer.wait(producer.slider_changes, lambda items: ("value", 1, 7) in items,
                  desc="producer's slider.on_change('value') with 1 -> 7")
    assert producer.live.get(lambda d: d.get_model_by_name("slider").value) == 7
    assert pull_snapshot(producer.url, producer.sid, lambda d: d.get_model_by_name("slider").value) == 7
    settle(browser_page, 0.5)
    browser_page.assert_no_errors()


@pytest.mark.plotwire_only
def test_button_click_in_page_fires_producer_on_event(server, clients, browser_page):
    """A real click on the Button: BokehJS sends MessageSent(button_click) (the button is
    subscribed because the producer called on_event before pushing). plotwire delivers UI
    events to bokeh.client producers; bokeh serve 3.9.2 only gives them to server-side
    app code, so under Bokeh the producer never sees the click (verified)."""
    producer = make_producer(clients, server, "browser-button")
    open_page(browser_page, server.page_url(producer.sid))
    button = browser_page.page.locator("button", has_text="Click me")
    button.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    button.click()
    # precondition: the browser did publish the event (this part holds under Bokeh too)
    wait_for(lambda: any('"button_click"' in f for f in browser_page.sent_text_frames()), timeout=10,
             desc="BokehJS to send MessageSent(button_click)")
    clicks = producer.wait(producer.button_clicks, lambda items: len(items) >= 1,
                           desc="producer's ButtonClick callback")
    assert len(clicks) == 1
    assert type(clicks[0]).__name__ == "ButtonClick"
    assert clicks[0].model is producer.live.doc.get_model_by_name("button")
    button.click()
    producer.wait(producer.button_clicks, lambda items: len(items) == 2, desc="a second ButtonClick")
    settle(browser_page, 0.5)
    browser_page.assert_no_errors()


@pytest.mark.plotwire_only
def test_tap_on_plot_fires_producer_on_event(server, clients, browser_page):
    """Tap events reach a producer that subscribed with plot.on_event(Tap) (plotwire only)."""
    taps = CallbackRecorder()
    producer = make_producer(clients, server, "browser-tap", tap_recorder=taps)
    open_page(browser_page, server.page_url(producer.sid))
    box = _plot_canvas_box(browser_page)
    browser_page.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_for(lambda: any('"name":"tap"' in f for f in browser_page.sent_text_frames()), timeout=10,
             desc="BokehJS to send MessageSent(tap)")
    got = producer.wait(taps, lambda items: len(items) >= 1, desc="producer's Tap callback")
    assert type(got[0]).__name__ == "Tap"
    assert got[0].x is not None and got[0].y is not None
    settle(browser_page, 0.5)
    browser_page.assert_no_errors()


def _plot_canvas_box(bp) -> dict:
    canvas = bp.page.locator("canvas").first
    canvas.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100, box
    return box


def test_mouse_drag_pan_changes_producer_ranges(server, clients, browser_page):
    producer = make_producer(clients, server, "browser-pan")
    live = producer.live
    open_page(browser_page, server.page_url(producer.sid))

    def producer_range():
        return live.get(lambda d: (d.get_model_by_name("plot").x_range.start, d.get_model_by_name("plot").x_range.end))

    # after the first render BokehJS sends the auto-ranged start/end; wait until the
    # producer agrees with the page
    def in_sync():
        page_r = tuple(browser_page.page.evaluate(JS_RANGE))
        prod_r = producer_range()
        return page_r if None not in page_r and page_r == prod_r else None

    start0, end0 = wait_for(in_sync, timeout=15, desc="producer's x_range to match the page's auto range")
    span = end0 - start0
    assert span > 0

    box = _plot_canvas_box(browser_page)
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    mouse = browser_page.page.mouse
    mouse.move(cx, cy)
    mouse.down()
    mouse.move(cx - 50, cy, steps=5)
    mouse.move(cx - 120, cy, steps=5)
    mouse.up()

    # dragging the view to the left moves the visible x range to the right
    start1, end1 = wait_value(producer_range, lambda r: r[0] is not None and r[0] > start0 + 0.05 * span,
                              timeout=10, desc="producer's x_range after the pan")
    wait_for(lambda: in_sync() is not None, timeout=10, desc="producer and page ranges to agree after the pan")
    start1, end1 = producer_range()
    assert start1 > start0 + 0.05 * span
    assert abs((end1 - start1) - span) < 1e-6 * span, "a pan keeps the range's width"
    fresh = pull_snapshot(producer.url, producer.sid,
                          lambda d: (d.get_model_by_name("plot").x_range.start, d.get_model_by_name("plot").x_range.end))
    assert fresh == (start1, end1)
    settle(browser_page, 0.5)
    browser_page.assert_no_errors()


# ---------------------------------------------------------------------------
# autoload.js embedding from another origin
# ---------------------------------------------------------------------------

def test_autoload_embed_from_other_origin(server_factory, clients, browser_page, embed_http_server):
    from bokeh.embed import server_session

    embed_port = free_port()
    srv = server_factory(["--allow-websocket-origin", f"127.0.0.1:{embed_port}"])
    producer = make_producer(clients, srv, "browser-embed")
    tag = server_session(session_id=producer.sid, url=srv.app_url())
    assert "autoload.js" in tag
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>embedding page</title>"
            "<link rel='icon' href='data:,'></head><body><h1>embedded plot</h1>"
            f"{tag}</body></html>")
    embed_http_server(html, embed_port)

    open_page(browser_page, f"http://127.0.0.1:{embed_port}/")
    assert page_column(browser_page, "x") == INITIAL_X
    # the embedded document is live: a stream from the producer shows up
    live = producer.live
    live.call(lambda: live.doc.get_model_by_name("src").stream(dict(x=[5], y=[25])))
    wait_value(lambda: page_column(browser_page, "x"), lambda v: v == [0, 1, 2, 3, 4, 5], timeout=10,
               desc="streamed x in the embedded document")
    # use_for_title is false for autoload: the embedding page keeps its title
    assert browser_page.page.title() == "embedding page"
    settle(browser_page)
    browser_page.assert_no_errors()
