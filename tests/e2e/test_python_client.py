"""The Python client (clients/python, ``pip install ./clients/python``) against the real
server, over loopback: publishing bokeh objects, every body format round-tripping
bit-exact, ``since`` cursors, typed errors that change nothing, retries that apply a
write once, a server restart ridden out, viewer events from Chromium reaching
``on_change``/``on_click`` tagged with the page's view, per-view ``set``, and the
streamvis README example (examples/streamvis_readme.py) rendered in Chromium.

Every wait is bounded (support.wait_for / wait_value, the client's RetryPolicy).
"""
from __future__ import annotations

import math
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from support import REPO_ROOT, CallbackRecorder, unique_id, wait_for, wait_value

from plotwire import Client, ClientError, NotFoundError, RetryPolicy
from plotwire import _encoding

pytestmark = pytest.mark.plotwire_only

RENDER_TIMEOUT_MS = 20000
SPECIALS = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 0.1, -2.5, 1e-300]


def doc_name(prefix: str) -> str:
    return "e2e/" + unique_id(prefix)


def float_bits(values) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def bokeh_doc(title: str = "client doc", x=None, y=None):
    """column(figure(line + scatter of CDS "src" with float columns x, y), Slider "lr", Button "stop")."""
    from bokeh.document import Document
    from bokeh.layouts import column
    from bokeh.models import Button, ColumnDataSource, Slider
    from bokeh.plotting import figure

    doc = Document()
    doc.title = title
    src = ColumnDataSource(data={"x": np.asarray(x if x is not None else [0.0, 1.0, 2.0], dtype=np.float64),
                                 "y": np.asarray(y if y is not None else [0.0, 1.0, 4.0], dtype=np.float64)},
                           name="src")
    plot = figure(title="published figure", width=500, height=300, name="plot")
    plot.line("x", "y", source=src, name="line")
    plot.scatter("x", "y", source=src, size=8, name="scatter")
    doc.add_root(column(plot, Slider(start=0, end=0.1, value=0.01, step=0.001, title="lr", name="lr"),
                        Button(label="Stop", name="stop"), name="layout"))
    return doc


@pytest.fixture
def client(server):
    with Client(server.base_url, doc_name("client")) as c:
        yield c


# ---------------------------------------------------------------------------
# publish, write, read back
# ---------------------------------------------------------------------------

def test_publish_a_bokeh_document_then_stream_patch_replace_clear(client):
    published = client.publish(bokeh_doc())
    assert published.created and published.name == client.name
    assert published.url.rstrip("/").endswith(f"/d/{client.name}")
    assert client.publish(bokeh_doc()).created is False

    first = client.data("src")
    assert first.reset and first.rows == 3 and first.data == {"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 4.0]}

    w = client.stream("src", {"x": np.array([3.0, 4.0]), "y": np.array([9.0, 16.0])})
    assert w.rows == 5 and w.seq > published.seq
    new = client.data("src", since=first.next)
    assert not new.reset and new.data == {"x": [3.0, 4.0], "y": [9.0, 16.0]}

    w = client.stream("src", {"x": [5.0], "y": [25.0]}, rollover=4)
    assert w.rows == 4
    assert client.data("src").data["x"] == [2.0, 3.0, 4.0, 5.0]

    seq = client.patch("src", {"y": [(0, -1.0)]})
    assert seq > w.seq
    after_patch = client.data("src", since=client.data("src").next)
    assert client.data("src").data["y"] == [-1.0, 9.0, 16.0, 25.0]
    assert after_patch.rows == 0

    assert client.replace("src", {"x": [10.0], "y": [20.0]}).rows == 1
    assert client.data("src").data == {"x": [10.0], "y": [20.0]}
    client.clear_source("src")
    assert client.data("src").rows == 0
    assert client.info()["sources"]["src"]["rows"] == 0


def test_publish_a_bokeh_model_as_json_item(client):
    doc = bokeh_doc(title="kept title")
    plot = doc.get_model_by_name("plot")
    doc.remove_root(doc.roots[0])
    doc.add_root(plot)
    client.publish(plot)
    assert doc.title == "kept title"
    assert client.info()["title"] == "kept title"
    assert client.data("src").data["y"] == [0.0, 1.0, 4.0]


def read_all(client, source):
    return client.data(source).data


@pytest.mark.parametrize("fmt", ["raw", "json", "arrow", "pandas"])
def test_every_body_format_round_trips_bit_exact(client, fmt, monkeypatch):
    client.publish(bokeh_doc(x=[], y=[]))
    values = SPECIALS
    x = np.arange(len(values), dtype=np.float64)
    if fmt == "raw":
        body = {"x": x, "y": np.array(values)}
    elif fmt == "json":
        monkeypatch.setitem(_encoding._modules, "numpy", None)
        body = {"x": x.tolist(), "y": list(values)}
    elif fmt == "arrow":
        import pyarrow as pa
        body = pa.table({"x": x, "y": pa.array(values, pa.float64())})
    else:
        import pandas as pd
        body = pd.DataFrame({"x": x, "y": values})
    content_type, _ = _encoding.encode_columns(body)
    assert content_type == {"raw": _encoding.RAW_COLUMNS, "json": _encoding.JSON}.get(fmt, _encoding.ARROW_STREAM)
    client.stream("src", body)
    got = read_all(client, "src")
    assert float_bits(got["x"]) == float_bits(x.tolist())
    assert float_bits(got["y"]) == float_bits(values), got["y"]


def test_int_columns_and_dtype_rules(client):
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource

    doc = Document()
    doc.add_root(ColumnDataSource(data={"i": np.array([1, 2], dtype=np.int32),
                                        "f": np.array([0.5, 1.5])}, name="typed"))
    client.publish(doc)
    client.stream("typed", {"i": np.array([3], dtype=np.int32), "f": np.array([7], dtype=np.int64)})
    assert client.data("typed").data == {"i": [1, 2, 3], "f": [0.5, 1.5, 7.0]}
    before = client.data("typed")
    with pytest.raises(ClientError) as info:
        client.stream("typed", {"i": np.array([1.5]), "f": np.array([1.0])})
    assert info.value.status // 100 == 4 and info.value.field and "i" in info.value.field
    with pytest.raises(ClientError) as info:
        client.stream("typed", {"i": [4, 5], "f": [1.0]})
    assert info.value.status // 100 == 4 and info.value.error
    with pytest.raises(NotFoundError):
        client.stream("no-such-source", {"i": [1]})
    after = client.data("typed")
    assert after.data == before.data and after.next == before.next


def test_missing_document_is_not_found(server):
    with Client(server.base_url, doc_name("missing")) as c:
        with pytest.raises(NotFoundError) as info:
            c.stream("src", {"x": [1.0]})
        assert info.value.status == 404


def test_since_cursor_poller_gets_every_row_exactly_once(client):
    """Issue 7's figures: a poller reading every 100 ms during a stream of 10,000 batches."""
    client.publish(bokeh_doc(x=[], y=[]))
    batches, per_batch = 10_000, 3
    stop = threading.Event()
    seen: list[float] = []
    errors: list[BaseException] = []
    polls: list[int] = []

    def poll() -> None:
        with Client(client.address.url(""), client.name) as reader:
            cursor = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    got = reader.data("src", since=cursor)
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)
                    return
                if got.reset:
                    seen.clear()
                seen.extend(got.data.get("x", []))
                cursor = got.next
                polls.append(got.rows)
                if stop.is_set() and got.rows == 0:
                    return
                time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    for b in range(batches):
        xs = np.arange(b * per_batch, (b + 1) * per_batch, dtype=np.float64)
        client.stream("src", {"x": xs, "y": xs})
    stop.set()
    poller.join(60)
    assert not poller.is_alive() and not errors, errors
    assert seen == [float(i) for i in range(batches * per_batch)]
    assert sum(1 for n in polls if n > 0) >= 10, f"the poller read during the stream: {len(polls)} polls"


# ---------------------------------------------------------------------------
# retries
# ---------------------------------------------------------------------------

class DropFirstResponses:
    """A loopback TCP proxy that forwards requests to the server but, for the first
    ``drops`` responses, closes the client's connection instead of passing the answer
    on: the server applied the write, the client saw a network failure."""

    def __init__(self, upstream_port: int, drops: int) -> None:
        self.upstream_port = upstream_port
        self.drops = drops
        self.dropped = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        for _ in range(10_000):
            if self.closed.is_set():
                return
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            threading.Thread(target=self._pump, args=(conn, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, is_response: bool) -> None:
        try:
            src.settimeout(30)
            for _ in range(100_000):
                data = src.recv(65536)
                if not data:
                    break
                if is_response:
                    with self.lock:
                        drop = self.dropped < self.drops
                        if drop:
                            self.dropped += 1
                    if drop:
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def test_a_write_whose_answer_was_lost_is_retried_and_applied_once(server, client):
    client.publish(bokeh_doc(x=[], y=[]))
    proxy = DropFirstResponses(server.port, drops=2)
    try:
        with Client(f"127.0.0.1:{proxy.port}", client.name,
                    retry=RetryPolicy(attempts=5, initial_delay=0.05, deadline=20)) as flaky:
            result = flaky.stream("src", {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([1.0, 2.0, 3.0])})
            assert proxy.dropped == 2
            assert result.rows == 3
            flaky.stream("src", {"x": np.array([4.0]), "y": np.array([4.0])})
    finally:
        proxy.close()
    assert client.data("src").data["x"] == [1.0, 2.0, 3.0, 4.0]


def test_a_server_restart_is_ridden_out(server_factory):
    srv = server_factory()
    port = srv.port
    with Client(f"127.0.0.1:{port}", doc_name("restart"),
                retry=RetryPolicy(attempts=40, initial_delay=0.1, max_delay=0.5, deadline=60)) as c:
        c.publish(bokeh_doc())
        srv.stop()
        restarted: list = []
        starter = threading.Timer(1.0, lambda: restarted.append(server_factory(port=port)))
        starter.start()
        try:
            published = c.publish(bokeh_doc(title="after restart"))
        finally:
            starter.join(60)
        assert restarted, "the second server did not start"
        assert published.created
        c.stream("src", {"x": [3.0], "y": [9.0]})
        assert c.data("src").data["x"] == [0.0, 1.0, 2.0, 3.0]


# ---------------------------------------------------------------------------
# viewer events and per-view set, with Chromium
# ---------------------------------------------------------------------------

JS_PROP = """([name, prop]) => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const m = docs[0].get_model_by_name(name);
    return m == null ? null : m[prop];
}"""

JS_SET = """([name, prop, value]) => {
    const m = window.Bokeh.documents[0].get_model_by_name(name);
    m[prop] = value;
    return m[prop];
}"""


def open_page(page, url: str, model: str) -> None:
    page.goto(url, wait_until="load", timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function(
        f"() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].get_model_by_name('{model}') != null",
        timeout=RENDER_TIMEOUT_MS)


@pytest.fixture
def two_pages(chromium, request):
    """Two pages in separate browser contexts; their console goes to the failure report."""
    contexts, pages, log = [], [], []
    request.node._e2e_browser_log = log
    for tag in ("A", "B"):
        ctx = chromium.new_context(viewport={"width": 1000, "height": 800})
        ctx.set_default_timeout(15000)
        page = ctx.new_page()
        page.on("console", lambda msg, tag=tag: log.append(f"{tag} [{msg.type}] {msg.text}"))
        page.on("pageerror", lambda err, tag=tag: log.append(f"{tag} [pageerror] {err}"))
        contexts.append(ctx)
        pages.append(page)
    yield pages
    for ctx in contexts:
        ctx.close()


def test_slider_and_button_reach_callbacks_tagged_with_the_view_and_set_per_view(client, two_pages):
    client.publish(bokeh_doc())
    views = CallbackRecorder()
    changes = CallbackRecorder()
    clicks = CallbackRecorder()
    client.on_event(views, kind="view")
    client.on_change("lr", changes, attr="value")
    client.on_click("stop", clicks)
    page_a, page_b = two_pages

    open_page(page_a, client.url, "lr")
    opened = views.wait(lambda items: any(e.event == "open" for e in items), desc="view open of page A")
    view_a = [e.view for e in opened if e.event == "open"][0]
    open_page(page_b, client.url, "lr")
    opened = views.wait(lambda items: len({e.view for e in items if e.event == "open"}) >= 2,
                        desc="view open of page B")
    view_b = [e.view for e in opened if e.event == "open" and e.view != view_a][0]
    assert view_a and view_b and view_a != view_b

    assert page_b.evaluate(JS_SET, ["lr", "value", 0.05]) == 0.05
    got = changes.wait(lambda items: any(e.value == 0.05 for e in items), desc="the slider change")
    change = [e for e in got if e.value == 0.05][0]
    assert (change.view, change.model_name, change.model_type, change.attr, change.doc) == (
        view_b, "lr", "Slider", "value", client.name)
    assert page_a.evaluate(JS_PROP, ["lr", "value"]) == 0.01, "a viewer's change stays in its view"

    button = page_a.locator("button", has_text="Stop")
    button.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
    button.click()
    click = clicks.wait(lambda items: len(items) >= 1, desc="the button click")[0]
    assert (click.view, click.kind, click.event, click.model_name) == (view_a, "event", "button_click", "stop")

    client.set("lr", "value", 0.07)
    for page in (page_a, page_b):
        wait_value(lambda page=page: page.evaluate(JS_PROP, ["lr", "value"]), lambda v: v == 0.07,
                   desc="the value set for every view")
    client.set("lr", "value", 0.03, view=view_b)
    wait_value(lambda: page_b.evaluate(JS_PROP, ["lr", "value"]), lambda v: v == 0.03,
               desc="the value set for view B only")
    page_a.wait_for_timeout(500)
    assert page_a.evaluate(JS_PROP, ["lr", "value"]) == 0.07
    seqs = [e.seq for e in views.snapshot() + changes.snapshot() + clicks.snapshot()]
    assert len(seqs) == len(set(seqs)), "no event was delivered twice"


# ---------------------------------------------------------------------------
# the streamvis README example
# ---------------------------------------------------------------------------

JS_BOX = """([name]) => {
    const m = Bokeh.documents[0].get_model_by_name(name);
    if (m == null) return null;
    const v = Bokeh.index.find_one(m);
    if (v == null) return null;
    const r = v.el.getBoundingClientRect();
    return [r.left, r.top, r.width, r.height];
}"""

JS_DATA = """([name]) => {
    const p = Bokeh.documents[0].get_model_by_name(name);
    if (p == null || p.renderers == null) return null;
    let n = 0, first = null;
    for (const r of p.renderers) {
        const ds = r.data_source;
        if (ds == null || ds.data == null) continue;
        const data = ds.data instanceof Map ? ds.data : new Map(Object.entries(ds.data));
        for (const [, col] of data) {
            for (const v of col) {
                if (v != null && typeof v === "object" && v.length !== undefined) n += v.length; else n += 1;
                if (first === null && typeof v === "number") first = v;
            }
        }
    }
    return [n, first];
}"""


def test_streamvis_readme_example_renders_in_the_grid_and_grows(server, browser_page):
    name = unique_id("streamvis")
    script = REPO_ROOT / "examples" / "streamvis_readme.py"
    proc = subprocess.Popen([sys.executable, str(script), f"127.0.0.1:{server.port}", name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT))
    try:
        page = browser_page.page
        url = f"{server.base_url}/d/{name}/"
        with Client(server.base_url, name) as reader:
            wait_for(reader.info, timeout=15, ignore_errors=True, desc="the example's document to exist")
        open_page(page, url, "low_right_plot")
        boxes = {p: wait_value(lambda p=p: page.evaluate(JS_BOX, [p]), lambda b: b is not None and b[2] > 50,
                               desc=f"{p} on the page")
                 for p in ("top_plot", "low_left_plot", "low_right_plot")}
        top, left, right = boxes["top_plot"], boxes["low_left_plot"], boxes["low_right_plot"]
        assert top[1] + top[3] <= left[1] + 1 and top[1] + top[3] <= right[1] + 1, boxes
        assert abs(left[1] - right[1]) < 2 and left[0] + left[2] <= right[0] + 1, boxes
        assert abs(top[0] - left[0]) < 2 and top[2] > 1.5 * left[2], boxes
        assert left[3] > 1.5 * top[3], boxes

        lines0 = wait_value(lambda: page.evaluate(JS_DATA, ["top_plot"]), lambda d: d is not None and d[0] > 0,
                            timeout=15, desc="tandem lines data")
        wait_value(lambda: page.evaluate(JS_DATA, ["top_plot"]), lambda d: d[0] >= lines0[0] + 8, timeout=15,
                   desc="tandem lines to grow")
        scatter0 = wait_value(lambda: page.evaluate(JS_DATA, ["low_left_plot"]),
                              lambda d: d is not None and d[0] >= 2000, timeout=15, desc="1000 scatter points")
        wait_value(lambda: page.evaluate(JS_DATA, ["low_left_plot"]), lambda d: d[1] != scatter0[1], timeout=15,
                   desc="the scatter points to move")
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate(timeout=10)[0]
    assert b"Traceback" not in out, out.decode(errors="replace")
