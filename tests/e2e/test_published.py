"""Published documents end to end: a real bokeh 3.9.2 figure published over the REST API
(PUT /api/v1/documents/<name>), viewed by unmodified BokehJS 3.9.2 in several headless
Chromium pages and by the real ``bokeh.client.pull_session``. The rules under test are
those of docs/rest-api.md ("Views"):

- what a viewer does (pan, tap) stays in its view and reaches the producers as events
  tagged with that view's id (GET .../events, long-poll);
- what producers do (stream, set a property for all views) reaches every view; a property
  set for one view reaches only that view;
- a new view starts from the shared document, never from another view's state;
- a deleted document ends its open pages with the server's "This session has ended" Div.

A page's view id is the Bokeh session id in the token that BokehJS offers as the second
websocket subprotocol; the pages record it (WS_TOKEN_RECORDER) and the tests decode it.

Everything is on 127.0.0.1, every wait is bounded (support.wait_for/wait_value, Playwright
timeouts, long-polls of at most 2 s inside a bounded loop).
"""
from __future__ import annotations

import base64
import json
import math
import time
import urllib.error
import urllib.request
from typing import Any, Callable

import pytest

from support import LiveSession, free_port, run_bounded, unique_id, wait_for, wait_value

pytestmark = pytest.mark.plotwire_only

RENDER_TIMEOUT_MS = 20000
X0 = [float(i) for i in range(10)]
Y0 = [i * i / 10 for i in X0]
X_RANGE = (0.0, 10.0)

# ---------------------------------------------------------------------------
# in-page helpers
# ---------------------------------------------------------------------------

# Records the token of every websocket the page opens (BokehJS offers ["bokeh", token]),
# and how many frames of the message being received are still to come: a header frame
# announces its metadata, its content and two frames per buffer.
WS_TOKEN_RECORDER = """
(() => {
  const Orig = window.WebSocket;
  window.__e2e_tokens = [];
  class Recorded extends Orig {
    constructor(url, protocols) {
      super(url, protocols);
      window.__e2e_tokens.push(Array.isArray(protocols) ? protocols[1] : null);
      (window.__e2e_sockets = window.__e2e_sockets || []).push(this);
      this.__e2e_frames_left = 0;
      this.addEventListener("message", (event) => {
        if (this.__e2e_frames_left > 0) {
          this.__e2e_frames_left -= 1;
        } else if (typeof event.data === "string") {
          const header = JSON.parse(event.data);
          this.__e2e_frames_left = 2 + 2 * (header.num_buffers || 0);
        }
      });
    }
  }
  window.WebSocket = Recorded;
})();
"""

JS_HAS_DOC = ("() => window.Bokeh != null && Bokeh.documents.length > 0 && "
              "Bokeh.documents[0].get_model_by_name('src') != null")

JS_RANGE = """() => {
    const plot = Bokeh.documents[0].get_model_by_name("plot");
    return plot == null ? null : [plot.x_range.start, plot.x_range.end];
}"""

JS_COLUMNS = """() => {
    const docs = window.Bokeh && Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const src = docs[0].get_model_by_name("src");
    if (src == null) return null;
    const out = {};
    const data = src.data instanceof Map ? src.data : new Map(Object.entries(src.data));
    for (const [k, v] of data) out[k] = Array.from(v);
    return out;
}"""

JS_PROP = """([name, prop]) => {
    const docs = window.Bokeh && Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const m = docs[0].get_model_by_name(name);
    return m == null ? null : m[prop];
}"""

JS_SELECTED = """() => {
    const src = Bokeh.documents[0].get_model_by_name("src");
    return Array.from(src.selected.indices);
}"""

# Page coordinates of data point (x, y) in the plot's frame, from BokehJS's own scales.
JS_POINT_XY = """([x, y]) => {
    const plot = Bokeh.documents[0].get_model_by_name("plot");
    const view = Bokeh.index.find_one(plot);
    if (view == null) return null;
    const r = view.canvas_view.el.getBoundingClientRect();
    return [r.left + view.frame.x_scale.compute(x), r.top + view.frame.y_scale.compute(y)];
}"""

# The text of each root (null for roots without one), e.g. the ended notice's Div.
JS_ROOT_TEXTS = """() => {
    const docs = window.Bokeh && Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    return docs[0].roots().map(r => r.text === undefined ? null : String(r.text));
}"""


class View:
    """One Chromium page on a published document, in its own browser context."""

    def __init__(self, context: Any, tag: str, log: list[str]) -> None:
        self.context = context
        self.tag = tag
        self.page = context.new_page()
        self.page_errors: list[str] = []
        self.page.on("console", lambda msg: log.append(f"{tag} [{msg.type}] {msg.text}"))
        self.page.on("pageerror", self._on_error)
        self._log = log

    def _on_error(self, err: Any) -> None:
        self._log.append(f"{self.tag} [pageerror] {err}")
        self.page_errors.append(str(err))

    def open(self, url: str) -> "View":
        self.page.goto(url, wait_until="load", timeout=RENDER_TIMEOUT_MS)
        self.page.wait_for_function(JS_HAS_DOC, timeout=RENDER_TIMEOUT_MS)
        self.page.locator("canvas").first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        return self

    @property
    def view_id(self) -> str:
        """The session id of the page's first websocket: its view id."""
        tokens = self.page.evaluate("() => window.__e2e_tokens || []")
        assert tokens and tokens[0], f"{self.tag}: no websocket token recorded"
        first = tokens[0].split(".")[0]
        return json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))["session_id"]

    def x_range(self) -> tuple[float, float]:
        r = self.page.evaluate(JS_RANGE)
        return (r[0], r[1]) if r else (None, None)

    def columns(self) -> dict | None:
        return self.page.evaluate(JS_COLUMNS)

    def prop(self, name: str, prop: str) -> Any:
        return self.page.evaluate(JS_PROP, [name, prop])

    def wait_rendered_text(self, text: str) -> None:
        """The text is on the page (rendered, not only in the model)."""
        self.page.get_by_text(text).first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)

    def settle(self, seconds: float) -> None:
        self.page.wait_for_timeout(int(seconds * 1000))


def new_view(browser: Any, contexts: list[Any], tag: str, log: list[str]) -> View:
    """A page in a browser context of its own (1000x800, the websocket token recorder),
    kept in ``contexts`` to be closed by its fixture."""
    ctx = browser.new_context(viewport={"width": 1000, "height": 800})
    ctx.set_default_timeout(15000)
    ctx.add_init_script(WS_TOKEN_RECORDER)
    contexts.append(ctx)
    return View(ctx, tag, log)


@pytest.fixture
def views(chromium, request):
    """``views(n)``: n pages, each in its own browser context, closed after the test; their
    console goes to the failure report."""
    contexts: list[Any] = []
    log: list[str] = []
    request.node._e2e_browser_log = log

    def make(tag: str) -> View:
        return new_view(chromium, contexts, tag, log)

    yield make
    for ctx in contexts:
        ctx.close()


# ---------------------------------------------------------------------------
# REST helpers
# ---------------------------------------------------------------------------

def rest(server, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """(status, parsed JSON or None) of a REST call; HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{server.base_url}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def ok(result: tuple[int, Any], *expected: int) -> Any:
    status, body = result
    assert status in (expected or (200,)), f"HTTP {status}: {body}"
    return body


class Events:
    """The document's viewer events, read with the long-poll endpoint from ``since=0``."""

    def __init__(self, server, name: str) -> None:
        self.server = server
        self.name = name
        self.next = 0
        self.items: list[dict] = []

    def poll(self, wait: int = 1) -> None:
        got = ok(rest(self.server, "GET", f"/api/v1/documents/{self.name}/events?since={self.next}&timeout={wait}",
                      timeout=wait + 10))
        self.items.extend(got["events"])
        self.next = got["next"]

    def drain(self) -> None:
        """Reads everything logged so far (bounded)."""
        for _ in range(50):
            before = len(self.items)
            self.poll(wait=1)
            if len(self.items) == before:
                return

    def find(self, pred: Callable[[dict], bool]) -> list[dict]:
        return [e for e in self.items if pred(e)]

    def wait(self, pred: Callable[[dict], bool], desc: str, timeout: float = 15.0, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        # a long-poll answers at once while there are events, else after 1 s: the cap
        # only guards against a server that answers empty polls at once
        for _ in range(int(timeout * 20) + 10):
            found = self.find(pred)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                break
            self.poll(wait=1)
        kinds = [(e.get("kind"), e.get("event") or e.get("attr"), (e.get("model") or {}).get("name"), e.get("view"))
                 for e in self.items[-40:]]
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {desc}; last events: {kinds}")


def change_of(view: str, model: str, attr: str) -> Callable[[dict], bool]:
    return lambda e: (e.get("kind") == "change" and e.get("view") == view and e.get("attr") == attr
                      and (e.get("model") or {}).get("name") == model)


def event_of(view: str, name: str) -> Callable[[dict], bool]:
    return lambda e: e.get("kind") == "event" and e.get("view") == view and e.get("event") == name


# ---------------------------------------------------------------------------
# the published document
# ---------------------------------------------------------------------------

def build_layout(y_range: str = "data") -> Any:
    """column(figure "plot" (line + scatter of CDS "src"; x_range Range1d "xr" 0..10,
    y_range a DataRange1d "yr"; tools pan, wheel zoom (active), tap on the scatter, reset),
    Div "note")."""
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, DataRange1d, Div, Range1d, TapTool
    from bokeh.plotting import figure

    src = ColumnDataSource(data={"x": list(X0), "y": list(Y0)}, name="src")
    yr = DataRange1d(name="yr") if y_range == "data" else Range1d(-1, 11, name="yr")
    plot = figure(title="published figure", width=600, height=350, name="plot",
                  x_range=Range1d(*X_RANGE, name="xr"), y_range=yr, tools="pan,wheel_zoom,reset",
                  active_scroll="wheel_zoom")
    plot.line("x", "y", source=src, name="line")
    dots = plot.scatter("x", "y", source=src, size=20, name="dots")
    plot.add_tools(TapTool(renderers=[dots]))
    return column(plot, Div(text="initial note", name="note"), name="layout")


def doc_json() -> dict:
    from bokeh.document import Document

    doc = Document()
    doc.title = "published e2e"
    doc.add_root(build_layout())
    return doc.to_json(deferred=False)


def publish(server, prefix: str, body: Any = None) -> str:
    name = f"e2e/{unique_id(prefix)}"
    got = ok(rest(server, "PUT", f"/api/v1/documents/{name}", body if body is not None else doc_json()), 201)
    assert got["url"].rstrip("/").endswith(f"/d/{name}"), got
    return name


def page_url(server, name: str) -> str:
    return f"{server.base_url}/d/{name}/"


def source_data(server, name: str) -> dict:
    return ok(rest(server, "GET", f"/api/v1/documents/{name}/sources/src"))["data"]


def drag_left(view: View, pixels: int) -> None:
    """A real mouse drag on the plot canvas (the PanTool is the active drag)."""
    canvas = view.page.locator("canvas").first
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100, box
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    mouse = view.page.mouse
    mouse.move(cx, cy)
    mouse.down()
    mouse.move(cx - pixels / 2, cy, steps=5)
    mouse.move(cx - pixels, cy, steps=5)
    mouse.up()


# ---------------------------------------------------------------------------
# 1, 2, 4: pan in one page; stream to both; events tagged with the view; a new view
# ---------------------------------------------------------------------------

def test_pan_stays_in_its_view_data_reaches_every_view_and_events_name_the_view(server, views):
    name = publish(server, "pan")
    events = Events(server, name)
    one = views("one").open(page_url(server, name))
    two = views("two").open(page_url(server, name))
    v1, v2 = one.view_id, two.view_id
    assert v1 != v2
    for v in (v1, v2):
        events.wait(lambda e, v=v: e.get("kind") == "view" and e.get("event") == "open" and e.get("view") == v,
                    desc=f"the view open event of {v}")
    assert one.x_range() == X_RANGE and two.x_range() == X_RANGE

    drag_left(one, 150)
    # dragging the view to the left moves the visible x range to the right, width kept
    start1, end1 = wait_value(one.x_range, lambda r: r[0] is not None and r[0] > X_RANGE[0] + 1.0,
                              timeout=10, desc="page one's x range after the pan")
    assert abs((end1 - start1) - (X_RANGE[1] - X_RANGE[0])) < 1e-6

    # the producers hear the pan from view one: the range's start/end and a rangesupdate
    events.wait(lambda e: change_of(v1, "xr", "start")(e) and e["value"] == start1, desc="xr.start change of view one")
    events.wait(lambda e: change_of(v1, "xr", "end")(e) and e["value"] == end1, desc="xr.end change of view one")
    ru = events.wait(lambda e: event_of(v1, "rangesupdate")(e), desc="rangesupdate of view one")[-1]
    assert ru["model"]["name"] == "plot" and ru["model"]["type"] == "Figure", ru
    assert ru["values"]["x0"] == start1 and ru["values"]["x1"] == end1, ru
    assert ru["doc"] == name
    xr_changes = events.find(lambda e: e.get("kind") == "change" and (e.get("model") or {}).get("name") == "xr")
    assert {e["view"] for e in xr_changes} == {v1}, "only view one changed the x range"

    # view two's range did not follow (the server has had the pan for a while now)
    two.settle(1.0)
    assert two.x_range() == X_RANGE, "a pan in one view moved another view's range"
    assert one.x_range() == (start1, end1)

    # a REST stream reaches both views, with the same content
    got = ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream",
                  {"x": [10.0, 11.0, 12.5], "y": [10.0, 12.1, -0.0]}))
    assert got["rows"] == 13
    want = {"x": X0 + [10.0, 11.0, 12.5], "y": Y0 + [10.0, 12.1, 0.0]}
    for view in (one, two):
        wait_value(view.columns, lambda c: c == want, timeout=10, desc=f"page {view.tag}'s streamed data")
    assert source_data(server, name) == want
    # streaming moves no Range1d, in either view
    assert one.x_range() == (start1, end1) and two.x_range() == X_RANGE

    # 4: a view opened now starts from the shared document, not from view one's pan
    three = views("three").open(page_url(server, name))
    assert three.view_id not in (v1, v2)
    assert three.x_range() == X_RANGE, "a new view got another view's range"
    wait_value(three.columns, lambda c: c == want, timeout=10, desc="page three's data")
    three.settle(0.5)
    assert one.x_range() == (start1, end1), "opening another view reset view one's range"
    for view in (one, two, three):
        assert not view.page_errors, view.page_errors


JS_Y_RANGE = """() => {
    const plot = Bokeh.documents[0].get_model_by_name("plot");
    return plot == null ? null : [plot.y_range.start, plot.y_range.end];
}"""


def wheel_zoom_in(view: View, clicks: int) -> None:
    """Real wheel events over the middle of the plot (WheelZoomTool, both dimensions)."""
    box = view.page.locator("canvas").first.bounding_box()
    assert box is not None, "the plot's canvas"
    view.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(clicks):
        view.page.mouse.wheel(0, -100)
        view.page.wait_for_timeout(30)


def test_a_wheel_zoom_on_a_data_range_stays_in_its_view_and_the_others_keep_fitting(server, views):
    """The y range is a DataRange1d, which BokehJS fits to the data in every view and sends
    up (start/end) until the user zooms it. A wheel zoom in view one: its ranges change,
    the producers get its rangesupdate (at LOD end), and view two's ranges do not move.
    Then a stream out of view one's zoomed window: view two's DataRange1d fits it, view
    one keeps its zoom, and neither view's fit reaches the other."""
    name = publish(server, "wheel")
    events = Events(server, name)
    one = views("one").open(page_url(server, name))
    two = views("two").open(page_url(server, name))
    v1 = one.view_id
    y_fit = wait_value(lambda: two.page.evaluate(JS_Y_RANGE), lambda r: r is not None and r[1] is not None
                       and r[1] >= max(Y0), timeout=10, desc="page two's fitted y range")
    y_one = one.page.evaluate(JS_Y_RANGE)

    wheel_zoom_in(one, 3)
    zoomed_x = wait_value(one.x_range, lambda r: r[0] is not None and r[1] - r[0] < X_RANGE[1] - X_RANGE[0] - 0.5,
                          timeout=10, desc="page one's zoomed x range")
    zoomed_y = wait_value(lambda: one.page.evaluate(JS_Y_RANGE), lambda r: r[1] - r[0] < y_one[1] - y_one[0] - 0.1,
                          timeout=10, desc="page one's zoomed y range")
    ru = events.wait(lambda e: event_of(v1, "rangesupdate")(e) and e["values"]["x0"] == one.x_range()[0],
                     desc="view one's rangesupdate after the wheel")[-1]
    zoomed_x, zoomed_y = one.x_range(), one.page.evaluate(JS_Y_RANGE)
    assert (ru["values"]["x0"], ru["values"]["x1"]) == zoomed_x, ru
    assert (ru["values"]["y0"], ru["values"]["y1"]) == tuple(zoomed_y), ru
    two.settle(0.5)
    assert two.x_range() == X_RANGE, "a wheel zoom in one view moved another view's x range"
    assert two.page.evaluate(JS_Y_RANGE) == y_fit, "a wheel zoom in one view moved another view's y range"

    ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream", {"x": [5.0], "y": [100.0]}))
    refit = wait_value(lambda: two.page.evaluate(JS_Y_RANGE), lambda r: r[1] >= 100.0, timeout=10,
                       desc="page two's DataRange1d fitting the streamed point")
    wait_value(one.columns, lambda c: c is not None and c["y"][-1] == 100.0, timeout=10, desc="page one's stream")
    one.settle(1.0)
    assert one.page.evaluate(JS_Y_RANGE) == zoomed_y, "view two's fit (or the stream) moved view one's zoomed y range"
    assert one.x_range() == zoomed_x
    assert two.page.evaluate(JS_Y_RANGE) == refit
    for view in (one, two):
        assert not view.page_errors, view.page_errors


# ---------------------------------------------------------------------------
# 2: a tap selects in its view only and reaches the producers tagged with the view
# ---------------------------------------------------------------------------

def test_tap_selects_in_its_view_and_reports_selection_and_tap(server, views):
    name = publish(server, "tap")
    events = Events(server, name)
    one = views("one").open(page_url(server, name))
    two = views("two").open(page_url(server, name))
    v2 = two.view_id
    index = 2
    # the y DataRange1d fits the data after the first render; wait until the point's
    # position is stable before clicking it
    xy = wait_value(lambda: two.page.evaluate(JS_POINT_XY, [X0[index], Y0[index]]),
                    lambda p: p is not None and not any(map(math.isnan, p)), desc="the tapped point's position")
    two.settle(0.5)
    xy = two.page.evaluate(JS_POINT_XY, [X0[index], Y0[index]])
    two.page.mouse.click(xy[0], xy[1])

    wait_value(lambda: two.page.evaluate(JS_SELECTED), lambda s: s == [index], timeout=10,
               desc="page two's selection after the tap")
    sel = events.wait(lambda e: e.get("kind") == "change" and e.get("view") == v2 and e.get("attr") == "indices"
                      and (e.get("model") or {}).get("type") == "Selection", desc="the Selection change of view two")
    assert sel[-1]["value"] == [index], sel[-1]
    assert (sel[-1].get("source") or {}).get("name") == "src", f"the event names the selected source: {sel[-1]}"
    tap = events.wait(event_of(v2, "tap"), desc="the tap event of view two")[-1]
    assert tap["model"]["name"] == "plot", tap
    assert abs(tap["values"]["x"] - X0[index]) < 0.2 and abs(tap["values"]["y"] - Y0[index]) < 0.5, tap

    # the selection stays in view two
    one.settle(1.0)
    assert one.page.evaluate(JS_SELECTED) == [], "a tap in one view selected in another"
    events.drain()
    assert not events.find(lambda e: e.get("view") == one.view_id and e.get("attr") == "indices")
    for view in (one, two):
        assert not view.page_errors, view.page_errors


# ---------------------------------------------------------------------------
# 3: bokeh.client.pull_session of a published document
# ---------------------------------------------------------------------------

def test_bokeh_client_pull_session_receives_the_document_then_its_updates(server):
    from bokeh.client import pull_session
    from bokeh.embed import json_item

    name = publish(server, "pull", json_item(build_layout(y_range="fixed")))
    ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream", {"x": [10.0], "y": [10.0]}))
    url = f"{server.base_url}/d/{name}"
    session = run_bounded(lambda: pull_session(url=url), 30, f"pull_session(url={url!r})")
    assert session.connected, f"{session.error_reason} {session.error_detail}"

    def data(doc: Any) -> dict:
        src = doc.get_model_by_name("src")
        return {k: (v.tolist() if hasattr(v, "tolist") else list(v)) for k, v in src.data.items()}

    # The pull is a view like a page: its session id is its view id.
    events = Events(server, name)
    events.wait(lambda e: e.get("kind") == "view" and e.get("event") == "open" and e.get("view") == session.id,
                desc="the pull's view open event")
    assert data(session.document) == {"x": X0 + [10.0], "y": Y0 + [10.0]}
    assert session.document.get_model_by_name("note").text == "initial note"

    # bokeh 3.9.2's ClientSession applies the server's PATCH-DOCs to session.document only
    # while its IOLoop runs, and the only ways to run it are the private, test-only
    # `_loop_until_closed()` (whose receive loop nests one coroutine per message) or
    # `_connection._loop_until(pred)`. support.LiveSession runs that loop in a thread and
    # restarts it every 50 messages to unwind the nesting; reads of the document then go
    # through `live.get`, which runs on the loop's thread.
    live = LiveSession(session, "puller").start()
    try:
        ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream", {"x": [11.0, 12.0], "y": [1.5, -2.0]}))
        want = {"x": X0 + [10.0, 11.0, 12.0], "y": Y0 + [10.0, 1.5, -2.0]}
        live.wait_doc(data, lambda d: d == want, timeout=10, desc="the streamed rows in the pulled document")
        ok(rest(server, "PUT", f"/api/v1/documents/{name}/models/note/text", {"value": "set for everyone"}))
        live.wait_doc(lambda d: d.get_model_by_name("note").text, lambda t: t == "set for everyone",
                      timeout=10, desc="the producer's property change in the pulled document")
        ok(rest(server, "PUT", f"/api/v1/documents/{name}/models/note/text",
                {"value": "set for the puller", "view": session.id}))
        live.wait_doc(lambda d: d.get_model_by_name("note").text, lambda t: t == "set for the puller",
                      timeout=10, desc="the property set for the pull's view")
        assert not live.patch_errors, live.patch_errors
    finally:
        assert live.close(), "the pulled session did not close cleanly"


# ---------------------------------------------------------------------------
# 5: deleting the document ends its open pages
# ---------------------------------------------------------------------------

def test_deleting_the_document_shows_the_ended_notice_in_open_pages(server, views):
    name = publish(server, "delete")
    one = views("one").open(page_url(server, name))
    two = views("two").open(page_url(server, name))
    assert one.columns() == {"x": X0, "y": Y0}

    assert rest(server, "DELETE", f"/api/v1/documents/{name}") == (204, None)
    assert rest(server, "GET", f"/api/v1/documents/{name}")[0] == 404
    for view in (one, two):
        texts = wait_value(lambda view=view: view.page.evaluate(JS_ROOT_TEXTS),
                           lambda t: t is not None and any(x and "This session has ended" in x for x in t),
                           timeout=20, interval=0.25, desc=f"page {view.tag} to say that the document ended")
        assert len(texts) == 1, f"only the notice is left, got roots {texts}"
        assert view.columns() is None, "the plot and its data are gone"
        view.wait_rendered_text("This session has ended")
        assert not view.page_errors, view.page_errors
    assert rest(server, "GET", f"/d/{name}/")[0] == 404


# ---------------------------------------------------------------------------
# 6: a producer's property change for every view and for one view
# ---------------------------------------------------------------------------

def test_a_property_set_for_every_view_and_for_one_view(server, views):
    name = publish(server, "set")
    events = Events(server, name)
    one = views("one").open(page_url(server, name))
    two = views("two").open(page_url(server, name))
    v2 = two.view_id

    seq0 = ok(rest(server, "GET", f"/api/v1/documents/{name}"))["seq"]
    got = ok(rest(server, "PUT", f"/api/v1/documents/{name}/models/note/text", {"value": "note for everyone"}))
    assert got["seq"] > seq0
    for view in (one, two):
        wait_value(lambda view=view: view.prop("note", "text"), lambda t: t == "note for everyone", timeout=10,
                   desc=f"page {view.tag}'s Div text")
        view.wait_rendered_text("note for everyone")

    ok(rest(server, "PUT", f"/api/v1/documents/{name}/models/note/text", {"value": "note for two", "view": v2}))
    wait_value(lambda: two.prop("note", "text"), lambda t: t == "note for two", timeout=10, desc="page two's Div text")
    two.wait_rendered_text("note for two")
    one.settle(1.0)
    assert one.prop("note", "text") == "note for everyone", "a property set for one view reached another"

    # the plot title (a Title model, addressed by its id), for every view
    title_id = one.page.evaluate("() => Bokeh.documents[0].get_model_by_name('plot').title.id")
    ok(rest(server, "PUT", f"/api/v1/documents/{name}/models/{title_id}/text", {"value": "new title"}))
    for view in (one, two):
        wait_value(lambda view=view: view.page.evaluate(
            "() => Bokeh.documents[0].get_model_by_name('plot').title.text"),
            lambda t: t == "new title", timeout=10, desc=f"page {view.tag}'s plot title")

    # a new view has the shared value, not view two's
    three = views("three").open(page_url(server, name))
    assert three.prop("note", "text") == "note for everyone"
    # and setting for every view clears view two's own value
    ok(rest(server, "PUT", f"/api/v1/documents/{name}/models/note/text", {"value": "last"}))
    for view in (one, two, three):
        wait_value(lambda view=view: view.prop("note", "text"), lambda t: t == "last", timeout=10,
                   desc=f"page {view.tag}'s Div text after the last set")
    # a producer's change is not a viewer event
    events.drain()
    assert not events.find(lambda e: e.get("kind") == "change" and (e.get("model") or {}).get("name") == "note")
    for view in (one, two, three):
        assert not view.page_errors, view.page_errors


# ---------------------------------------------------------------------------
# a view that reconnects keeps its own state; a replaced document reaches open pages
# ---------------------------------------------------------------------------

# Closes the page's socket between two messages. BokehJS 3.9.2 keeps one Receiver per
# ClientConnection across reconnects, so a socket closed by the page in the middle of a
# message (a late OK to a pan) leaves the rest of it to be filled from the next socket's
# ACK: "First message was not an ACK", then every later message misread. A real network
# drop can do the same; the test is about the server's side of a reconnect, so it drops
# at a message boundary (polling for one for at most 5 s).
JS_DROP_SOCKET = """async () => {
    const ws = window.__e2e_sockets[window.__e2e_sockets.length - 1];
    for (let i = 0; i < 1000 && ws.__e2e_frames_left > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (ws.__e2e_frames_left > 0) throw new Error("the socket never reached a message boundary");
    ws.close(4000, "dropped by the test");
    return window.__e2e_sockets.length;
}"""


def test_a_reconnecting_view_keeps_its_own_range_and_gets_what_it_missed(server, views):
    """BokehJS reconnects with the same token after its socket drops, so it is the same
    view: its re-pull carries the view's own range (its overlay) and the rows streamed
    while it was away, and no new view is opened."""
    name = publish(server, "reconnect")
    events = Events(server, name)
    one = views("one").open(page_url(server, name))
    two = views("two").open(page_url(server, name))
    v1 = one.view_id
    drag_left(one, 150)
    panned = wait_value(one.x_range, lambda r: r[0] is not None and r[0] > X_RANGE[0] + 1.0,
                        timeout=10, desc="page one's x range after the pan")
    events.wait(lambda e: change_of(v1, "xr", "end")(e) and e["value"] == panned[1], desc="view one's pan")

    sockets = one.page.evaluate(JS_DROP_SOCKET)
    ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream", {"x": [20.0], "y": [-1.0]}))
    wait_for(lambda: one.page.evaluate("() => window.__e2e_sockets.length") > sockets, timeout=15,
             desc="BokehJS to reconnect page one")
    want = {"x": X0 + [20.0], "y": Y0 + [-1.0]}
    wait_value(one.columns, lambda c: c == want, timeout=15, desc="page one's data after the reconnect")
    tokens = one.page.evaluate("() => window.__e2e_tokens")
    assert len(set(tokens)) == 1, "BokehJS reconnected with its page's token"
    assert one.x_range() == panned, "the reconnected view lost its own range"
    assert two.x_range() == X_RANGE
    wait_value(two.columns, lambda c: c == want, timeout=10, desc="page two's data")
    events.drain()
    opened = [e["view"] for e in events.find(lambda e: e.get("kind") == "view" and e.get("event") == "open")]
    assert sorted(opened) == sorted([v1, two.view_id]), f"a reconnect is not a new view: {opened}"
    for view in (one, two):
        assert not view.page_errors, view.page_errors


def test_a_server_document_embed_is_a_view_of_its_own(server_factory, views, embed_http_server):
    """bokeh.embed.server_document(url=<published URL>) on a page of another origin renders
    the published document through /d/<name>/autoload.js: it is a view like a page load
    (its own view id, announced to producers), it gets the producer's streams, and a page
    of the same document beside it is another view."""
    from bokeh.embed import server_document

    embed_port = free_port()
    srv = server_factory(["--allow-websocket-origin", f"127.0.0.1:{embed_port}"])
    name = publish(srv, "embed")
    events = Events(srv, name)
    tag = server_document(url=f"{srv.base_url}/d/{name}")
    assert f"/d/{name}/autoload.js" in tag
    embed_http_server("<!DOCTYPE html><html><head><meta charset='utf-8'><title>host page</title>"
                      "<link rel='icon' href='data:,'></head><body><h1>embedded</h1>"
                      f"{tag}</body></html>", embed_port)
    embed = views("embed").open(f"http://127.0.0.1:{embed_port}/")
    page = views("page").open(page_url(srv, name))
    assert embed.columns() == {"x": X0, "y": Y0}
    assert embed.view_id != page.view_id
    ok(rest(srv, "POST", f"/api/v1/documents/{name}/sources/src/stream", {"x": [30.0], "y": [3.0]}))
    want = {"x": X0 + [30.0], "y": Y0 + [3.0]}
    for view in (embed, page):
        wait_value(view.columns, lambda c: c == want, timeout=10, desc=f"the stream in {view.tag}")
    events.wait(lambda e: e.get("kind") == "view" and e.get("event") == "open" and e["view"] == embed.view_id,
                desc="the embed's view announced to producers")
    assert embed.page.title() == "host page", "an autoload embed leaves the host page's title alone"
    for view in (embed, page):
        assert not view.page_errors, view.page_errors


def test_a_standalone_page_polls_and_streams_a_published_source(server, views, embed_http_server):
    """A standalone page (bokeh.embed.file_html) on another origin reads a published
    source with BokehJS's own web data sources: an AjaxDataSource in its default set-up
    (an empty POST with Content-Type: application/json, preflighted) asking for the bare
    columns in replace mode, and a ServerSentDataSource appending what the data stream
    sends. Both follow REST streams; the SSE page gets every row exactly once."""
    from bokeh.embed import file_html
    from bokeh.models import AjaxDataSource, ServerSentDataSource
    from bokeh.plotting import figure
    from bokeh.resources import CDN

    name = publish(server, "websrc")
    url = f"{server.base_url}/api/v1/documents/{name}/sources/src"
    ajax = AjaxDataSource(data_url=f"{url}?format=columns", polling_interval=200, mode="replace",
                          data=dict(x=[], y=[]), name="ajax")
    sse = ServerSentDataSource(data_url=url, mode="append", max_size=1000, data=dict(x=[], y=[]), name="sse")
    plot = figure(width=400, height=300, name="plot")
    plot.line("x", "y", source=ajax)
    plot.scatter("x", "y", source=sse)
    html = file_html(plot, CDN, "web data sources")
    # CDN resources point at cdn.bokeh.org; the page loads the same 3.9.2 bundle from plotwire.
    html = html.replace(CDN.js_files[0], f"{server.base_url}/static/js/bokeh.min.js")
    port = free_port()
    embed_http_server(html, port)
    view = views("standalone")
    page = view.page
    page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=RENDER_TIMEOUT_MS)

    def columns(source: str) -> dict | None:
        return page.evaluate("""(name) => {
            const src = window.Bokeh && Bokeh.documents.length && Bokeh.documents[0].get_model_by_name(name);
            if (!src) return null;
            const data = src.data instanceof Map ? src.data : new Map(Object.entries(src.data));
            const out = {};
            for (const [k, v] of data) out[k] = Array.from(v);
            return out;
        }""", source)

    initial = {"x": X0, "y": Y0}
    wait_value(lambda: columns("ajax"), lambda c: c == initial, timeout=10, desc="the AjaxDataSource's first poll")
    wait_value(lambda: columns("sse"), lambda c: c == initial, timeout=10, desc="the ServerSentDataSource's first message")
    want = {"x": list(X0), "y": list(Y0)}
    for batch in range(5):
        rows = {"x": [20.0 + batch], "y": [float(-batch)]}
        ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream", rows))
        want = {k: want[k] + rows[k] for k in want}
        wait_value(lambda: columns("sse"), lambda c, w=want: c == w, timeout=10, desc=f"batch {batch} over SSE")
    wait_value(lambda: columns("ajax"), lambda c: c == want, timeout=10, desc="the AjaxDataSource after the streams")
    page.wait_for_timeout(600)
    assert columns("sse") == want, "a row arrived twice over SSE"
    assert not view.page_errors, view.page_errors


def test_replacing_the_document_reaches_open_pages(server, views):
    """PUT of a changed document under the same name (200), with the same model ids: open
    pages re-pull it, and a view's own state of the old document (its pan) is gone."""
    from bokeh.document import Document

    doc = Document()
    doc.title = "first"
    layout = build_layout()
    doc.add_root(layout)
    name = publish(server, "replace", doc.to_json(deferred=False))
    one = views("one").open(page_url(server, name))
    drag_left(one, 150)
    panned = wait_value(one.x_range, lambda r: r[0] is not None and r[0] > X_RANGE[0] + 1.0, timeout=10,
                        desc="page one's x range after the pan")
    events = Events(server, name)
    events.wait(lambda e: change_of(one.view_id, "xr", "end")(e) and e["value"] == panned[1], desc="view one's pan")
    # Let the pan's tail (LOD end, 0.3-0.5 s after the last step) go out first: BokehJS
    # 3.9.2 sends a document change made while it reconnects on the socket that is still
    # CONNECTING, which throws in the page ("Still in CONNECTING state").
    one.settle(1.0)

    doc.title = "replaced"
    layout.children[1].text = "replaced note"
    doc.get_model_by_name("src").data = {"x": [100.0, 101.0], "y": [1.0, 2.0]}
    ok(rest(server, "PUT", f"/api/v1/documents/{name}", doc.to_json(deferred=False)), 200)

    wait_value(lambda: one.prop("note", "text"), lambda t: t == "replaced note", timeout=20,
               desc="page one's note after the replace")
    wait_value(one.columns, lambda c: c == {"x": [100.0, 101.0], "y": [1.0, 2.0]}, timeout=10,
               desc="page one's data after the replace")
    assert one.x_range() == X_RANGE, "the view's state of the old document was kept"
    wait_for(lambda: one.page.title() == "replaced", timeout=10, desc="the page title")
    two = views("two").open(page_url(server, name))
    assert two.prop("note", "text") == "replaced note"
    ok(rest(server, "POST", f"/api/v1/documents/{name}/sources/src/stream", {"x": [102.0], "y": [3.0]}))
    for view in (one, two):
        wait_value(view.columns, lambda c: c == {"x": [100.0, 101.0, 102.0], "y": [1.0, 2.0, 3.0]},
                   timeout=10, desc=f"page {view.tag}'s data after a stream into the new document")
        assert not view.page_errors, view.page_errors


def test_a_restart_brings_the_document_back_to_an_open_page(server_factory, views, tmp_path):
    """The server is killed (SIGKILL) with a page open and a new one starts on the same
    port and data dir (issue 9): the page reconnects by itself (BokehJS retries), re-pulls
    the document and shows every row that was acknowledged; rows streamed after the
    restart reach it too."""
    data_dir = str(tmp_path / "data")
    srv = server_factory(["--data-dir", data_dir])
    name = publish(srv, "restart")
    rows = {"x": [float(i) for i in range(100, 200)], "y": [float(i % 7) for i in range(100)]}
    ok(rest(srv, "POST", f"/api/v1/documents/{name}/sources/src/stream", rows))
    want = {"x": list(X0) + rows["x"], "y": list(Y0) + rows["y"]}
    page = views("restart").open(page_url(srv, name))
    wait_value(page.columns, lambda c: c == want, timeout=10, desc="the page's data before the kill")

    assert srv.proc is not None
    srv.proc.kill()
    srv.proc.wait(10)
    srv.stop()
    again = server_factory(["--data-dir", data_dir], port=srv.port)
    assert ok(rest(again, "GET", f"/api/v1/documents/{name}/sources/src"))["data"] == want
    more = {"x": [200.0, 201.0], "y": [1.0, 2.0]}
    # The page may still be reconnecting: stream once it is back, so that the rows reach
    # it either in its re-pull or as a stream.
    wait_value(lambda: ok(rest(again, "GET", f"/api/v1/documents/{name}"))["views"], lambda v: v >= 1,
               timeout=30, desc="the page to reconnect to the new server")
    ok(rest(again, "POST", f"/api/v1/documents/{name}/sources/src/stream", more))
    full = {"x": want["x"] + more["x"], "y": want["y"] + more["y"]}
    wait_value(page.columns, lambda c: c == full, timeout=20,
               desc="the page's data after the restart and one more stream")
