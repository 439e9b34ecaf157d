#!/usr/bin/env python3
"""Level of detail in the browser: what a page of a long time series costs on the wire and
in time, served raw by ``bokeh serve`` 3.9.2 and downsampled by plotwire (docs/lod.md), in
headless Chromium.

    python bench/lod_page.py [--runs 5] [--probe-runs 10] [--plotwire target/release/plotwire]
                             [--points 10000000] [--big-points 100000000]
                             [--skip-bokeh] [--skip-big] [--timeout 180] [--json out.json]

Three configurations, one 900x320 ``line`` plot of a float64 random walk (x = arange(n),
y = cumsum of standard normals, seed 1):

1. ``bokeh 1e7``: ``bokeh serve bench/apps/lod_raw.py``, the whole series in a
   ColumnDataSource (two 80 MB binary buffers per page).
2. ``plotwire 1e7``: a dashboard spec (source ``s`` with float64 ``x``, ``y``; plot ``p``)
   published with the Python client and streamed in 1e6-row batches; the default
   ``--lod-threshold`` applies, so each page gets its downsampled copy.
3. ``plotwire 1e8``: the same with 1e8 points (1.6 GB in the server).

Each run opens the page in a fresh browser context (empty HTTP cache), twice: once with a CDP
session (``Network.enable``) for the wire figures, once without for the timings, because with
``Network.enable`` Chromium hands every websocket frame to the DevTools client (base64 for
binary frames), which adds seconds to bokeh's 160 MB page (in a trial, first render at 13 s
without it and 18-20 s with it) and would bias the comparison. Runs alternate between the
servers. One warm-up load per configuration is discarded. Both servers run side by side for
the 1e7 runs; bokeh is stopped before the 1e8 series is streamed.

Figures per page load (median and min over ``--runs``):

- ``ws_bytes``: websocket message payloads received by the page until it is quiet (1 s with
  no frame after the first render), from ``Network.webSocketFrameReceived``: text frames as
  UTF-8 bytes, binary frames as their decoded length (the base64 length minus padding, x3/4,
  exactly). Frame headers and TCP/IP are not counted. ``ws_reply_bytes`` is the
  PULL-DOC-REPLY alone (its header, metadata, content and buffer frames) and
  ``ws_after_reply_bytes`` what came later (for plotwire the copy refined for the frame width
  the page reported; OK replies).
- ``http_bytes``: ``encodedDataLength`` (headers plus body as sent, compressed where the
  server compressed) of every HTTP response of the page, ``Network.loadingFinished``;
  ``html_bytes`` the document alone.
- ``render_ms`` (no CDP): ``performance.now()`` (ms since navigation start) at the first
  animation frame where ``Bokeh.documents[0].is_idle`` holds (every root view has painted
  once) and source ``s`` holds rows. The same code runs on both servers; ``rows`` is how many
  rows the page held then (all n for bokeh, the downsampled copy for plotwire).
- ``reply_ms`` (no CDP): ms since navigation start when the last websocket message of the
  PULL-DOC-REPLY reached the page's JS (a listener on the page's WebSocket, registered before
  BokehJS's ``onmessage``).
- ``cdp_get_to_reply_ms``: the issue's "page GET to data sent", client side: from the
  ``Network.requestWillBeSent`` timestamp of the document to the ``webSocketFrameReceived``
  timestamp of the PULL-DOC-REPLY's last frame (same CDP clock).
  ``cdp_pull_ms``: from the ``webSocketFrameSent`` of the PULL-DOC-REQ header to that same
  frame: the server's share (receive, build the view's copy, encode, send) plus the
  renderer's: Chromium stamps websocket frames on the page's main thread, so a busy page
  stamps late. For bokeh both are inflated by the DevTools copy of the 80 MB frames; use
  ``reply_ms``.
- ``refined_ms`` (no CDP): ms since navigation start when the first copy after the
  PULL-DOC-REPLY's was applied to source ``s`` (a BokehJS document change event; plotwire
  sends one for the frame width the page reports after its first layout). The page also
  tells whether that copy equals the reply's (rows and the sums of x and y), and whether the
  first render drew the reply's copy or already the later one.
- ``warm_cdp_get_to_reply_ms`` (plotwire): ``cdp_get_to_reply_ms`` of a second load of the
  page in the same context, with the bundles in the HTTP cache.
- ``view_open`` (``--probe-runs``, no browser): the same first view opened from Python on
  loopback: GET the page over a new connection, parse its token, connect the websocket
  (until ACK), send PULL-DOC-REQ, read the whole PULL-DOC-REPLY (tornado's client). The total
  and each part: the server's "page GET to data sent" without a browser's script loading
  in between.
- ``rss``: VmRSS of each server process: plotwire after the data is streamed and after the
  runs, bokeh after its first session (the series made, one page served) and the largest
  reading after any run.

Prints a summary on stdout (logs on stderr), and with ``--json`` writes every figure. Exits 0,
or 1 when a measurement fails, 2 when a server does not start.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
RAW_APP = REPO_ROOT / "bench" / "apps" / "lod_raw.py"
PLOT_W, PLOT_H = 900, 320
SEED = 1
BATCH = 1_000_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUIET_S = 1.0  # the page is settled after this long without a websocket frame

# Installed before the page's scripts: counts every websocket message the page's JS gets
# and stamps the first render with data and the source's later data changes.
PAGE_RECORDER = """
(() => {
  const rec = {msgs: [], render_ms: null, rows: null, changes: []};
  window.__lodbench = rec;
  const Native = window.WebSocket;
  const enc = new TextEncoder();
  class Counting extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (ev) => {
        const t = performance.now();
        const d = ev.data;
        let bytes = 0, head = null;
        if (typeof d === "string") { bytes = enc.encode(d).length; if (d.length < 1000) head = d; }
        else if (d instanceof ArrayBuffer) bytes = d.byteLength;
        else if (d && d.size !== undefined) bytes = d.size;
        rec.msgs.push([t, bytes, head]);
      });
    }
  }
  window.WebSocket = Counting;
  const col = (src, name) => { const d = src.data; return d instanceof Map ? d.get(name) : d[name]; };
  const rows = (src) => { const x = col(src, "x"); return x == null ? 0 : x.length; };
  // rows, and sums of x and y: tells whether a later copy differs from the first
  const sig = (src) => {
    const x = col(src, "x"), y = col(src, "y");
    let sx = 0, sy = 0;
    if (x != null && x.length < 1000000) { for (const v of x) sx += v; for (const v of y) sy += v; }
    return [rows(src), sx, sy];
  };
  rec.sign = () => sig(Bokeh.documents[0].get_model_by_name("s"));
  const check = () => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (docs && docs.length > 0) {
      const doc = docs[0];
      const src = doc.get_model_by_name("s");
      if (src != null) {
        if (!rec.hooked) {
          rec.hooked = true;
          rec.first_sig = sig(src);  // the PULL-DOC-REPLY's copy
          doc.on_change((ev) => { if (ev.model === src) rec.changes.push([performance.now(), sig(src)]); });
        }
        if (rec.render_ms === null && doc.is_idle) {
          const n = rows(src);
          if (n > 0) { rec.render_ms = performance.now(); rec.rows = n; rec.sig = sig(src); }  // the copy drawn
        }
      }
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();
"""

PAGE_HTTP = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  let res = 0;
  for (const e of performance.getEntriesByType("resource")) res += e.transferSize || 0;
  return {html: nav ? nav.transferSize : null, resources: res};
}"""


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


class ServerFailed(BenchError):
    pass


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class Server:
    def __init__(self, kind: str, cmd: list[str], port: int, ready_path: str, log_path: Path) -> None:
        self.kind, self.cmd, self.port, self.ready_path, self.log_path = kind, cmd, port, ready_path, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float) -> "Server":
        log(f"{self.kind}: $ {shlex.join(self.cmd)} (log {self.log_path})")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=str(REPO_ROOT), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"{self.kind} exited with code {self.proc.returncode} while starting: "
                                   f"{shlex.join(self.cmd)}\n--- log tail ---\n{self.log_tail()}")
            if http_status(self.base_url + self.ready_path, timeout=2.0) == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise ServerFailed(f"{self.kind} did not answer {self.ready_path} with 200 within {timeout:.0f} s: "
                           f"{shlex.join(self.cmd)}\n--- log tail ---\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mib(self) -> float | None:
        if not self.alive():
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"<no log: {exc}>"

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def start_plotwire(binary: str, logs: Path) -> Server:
    if not Path(binary).exists():
        raise ServerFailed(f"plotwire binary not found at {binary}: cargo build --release -p plotwire")
    port = free_port()
    cmd = [binary, "serve", "--address", "127.0.0.1", "--port", str(port), "--data-dir", "none"]
    return Server("plotwire", cmd, port, "/healthz", logs / "plotwire.log").start(timeout=30)


def start_bokeh(points: int, logs: Path) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "bokeh", "serve", str(RAW_APP), "--address", "127.0.0.1", "--port", str(port),
           "--allow-websocket-origin", f"127.0.0.1:{port}", "--args", "--points", str(points)]
    return Server("bokeh", cmd, port, f"/{RAW_APP.stem}/metadata", logs / "bokeh.log").start(timeout=60)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

def label(kind: str, points: int) -> str:
    mantissa, exp = f"{points:.0e}".split("e")
    return f"{kind} {mantissa}e{int(exp)}"


def lod_spec() -> dict[str, Any]:
    return {"title": "lod bench",
            "sources": {"s": {"columns": {"x": "float64", "y": "float64"}}},
            "plots": {"p": {"kind": "line", "source": "s", "x": "x", "y": "y", "width": PLOT_W, "height": PLOT_H}}}


def publish(server: Server, points: int) -> str:
    """Publishes the spec and streams the random walk in 1e6-row batches; returns the page
    URL. 1e7 points are made in one call, as bench/apps/lod_raw.py makes them (the same
    series); larger series batch by batch, so the bench never holds them whole."""
    from plotwire import Client  # noqa: PLC0415

    name = f"bench/lod-{points}-{uuid.uuid4().hex[:8]}"
    client = Client(server.base_url, name, timeout=120)
    client.publish(lod_spec())
    rng = np.random.default_rng(SEED)
    t0 = time.monotonic()
    if points <= 10_000_000:
        x = np.arange(points, dtype=np.float64)
        y = np.cumsum(rng.standard_normal(points))
        for a in range(0, points, BATCH):
            client.stream("s", {"x": x[a:a + BATCH], "y": y[a:a + BATCH]})
    else:
        last = 0.0
        for a in range(0, points, BATCH):
            b = min(a + BATCH, points)
            y = np.cumsum(rng.standard_normal(b - a)) + last
            last = float(y[-1])
            client.stream("s", {"x": np.arange(a, b, dtype=np.float64), "y": y})
    log(f"plotwire: {points:,} points published as {name} in {time.monotonic() - t0:.1f} s")
    client.close()
    return f"{server.base_url}/d/{name}/"


# ---------------------------------------------------------------------------
# one page load
# ---------------------------------------------------------------------------

def b64_len(payload: str) -> int:
    return len(payload) * 3 // 4 - payload[-2:].count("=") if payload else 0


def parse_head(text: str | None) -> dict[str, Any] | None:
    if not text or not text.startswith("{") or "msgtype" not in text:
        return None
    try:
        head = json.loads(text)
    except ValueError:
        return None
    return head if isinstance(head, dict) and "msgtype" in head else None


def messages(frames: list[tuple[float, int, str | None]]) -> list[dict[str, Any]]:
    """Groups received frames ``(t, bytes, head_text)`` into Bokeh protocol messages: a header,
    metadata, content, then a buffer header and a binary frame per buffer."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(frames):
        head = parse_head(frames[i][2])
        if head is None:
            out.append({"msgtype": "?", "bytes": frames[i][1], "t_first": frames[i][0], "t_last": frames[i][0]})
            i += 1
            continue
        span = frames[i:i + 3 + 2 * int(head.get("num_buffers") or 0)]
        out.append({"msgtype": head["msgtype"], "bytes": sum(f[1] for f in span), "t_first": span[0][0],
                    "t_last": span[-1][0], "frames": len(span)})
        i += len(span)
    return out


def wait_until(page: Any, desc: str, timeout_s: float, predicate: Callable[[], bool], step_ms: int = 100) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {desc}")
        page.wait_for_timeout(step_ms)


def wait_render(page: Any, url: str, timeout_s: float) -> None:
    try:
        page.wait_for_function("() => window.__lodbench && window.__lodbench.render_ms !== null",
                               timeout=timeout_s * 1000, polling=100)
    except Exception as exc:  # noqa: BLE001
        raise BenchError(f"{url}: no render with data within {timeout_s:.0f} s ({exc.__class__.__name__})") from None


def settle(page: Any, count: Callable[[], int], timeout_s: float) -> None:
    """Waits until no websocket frame arrived for QUIET_S (bounded by timeout_s)."""
    deadline = time.monotonic() + timeout_s
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(200)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_S:
            return
    log(f"  (websocket not quiet after {timeout_s:.0f} s; counting what arrived)")


def load_plain(browser: Any, url: str, timeout_s: float) -> dict[str, Any]:
    """A page load without CDP: the render, reply and refinement times."""
    ctx = browser.new_context(viewport={"width": 1000, "height": 800})
    try:
        ctx.add_init_script(PAGE_RECORDER)
        page = ctx.new_page()
        page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        wait_render(page, url, timeout_s)
        settle(page, lambda: page.evaluate("() => window.__lodbench.msgs.length"), min(timeout_s, 30))
        page.evaluate("() => { const r = window.__lodbench; r.final = r.sign(); }")
        rec = page.evaluate("() => window.__lodbench")
        http = page.evaluate(PAGE_HTTP)
    finally:
        ctx.close()
    msgs = messages([tuple(m) for m in rec["msgs"]])
    reply = next((m for m in msgs if m["msgtype"] == "PULL-DOC-REPLY"), None)
    if reply is None:
        raise BenchError(f"{url}: no PULL-DOC-REPLY reached the page")
    changes = [c for c in rec["changes"] if c[0] > reply["t_last"]]
    return {"render_ms": rec["render_ms"], "rows": rec["rows"], "reply_ms": reply["t_last"],
            "refined_ms": changes[0][0] if changes else None, "refined_rows": changes[0][1][0] if changes else None,
            "copies_after_reply": len(changes),
            "copies_same_as_first": sum(1 for c in changes if c[1] == rec["first_sig"]),
            "final_same_as_first": int(rec["final"] == rec["first_sig"]),
            "rendered_first_copy": int(rec["sig"] == rec["first_sig"]),
            "page_ws_bytes": sum(m["bytes"] for m in msgs), "page_http_bytes": (http["html"] or 0) + http["resources"]}


class CdpRecorder:
    def __init__(self, ctx: Any, page: Any) -> None:
        self.doc_t: float | None = None
        self.pull_t: float | None = None
        self.frames: list[tuple[float, int, str | None]] = []
        self.http: dict[str, dict[str, Any]] = {}
        self.extensions: str | None = None
        self.cdp = ctx.new_cdp_session(page)
        self.cdp.on("Network.requestWillBeSent", self._request)
        self.cdp.on("Network.loadingFinished", self._finished)
        self.cdp.on("Network.webSocketFrameReceived", self._received)
        self.cdp.on("Network.webSocketFrameSent", self._sent)
        self.cdp.on("Network.webSocketHandshakeResponseReceived", self._handshake)
        self.cdp.send("Network.enable")

    def _request(self, e: dict[str, Any]) -> None:
        url = e["request"]["url"]
        if url.startswith("data:"):
            return
        self.http.setdefault(e["requestId"], {"url": url, "type": e.get("type"), "bytes": 0})
        if e.get("type") == "Document" and self.doc_t is None:
            self.doc_t = e["timestamp"]

    def _finished(self, e: dict[str, Any]) -> None:
        if e["requestId"] in self.http:
            self.http[e["requestId"]]["bytes"] = e["encodedDataLength"]

    def _received(self, e: dict[str, Any]) -> None:
        r = e["response"]
        payload = r.get("payloadData", "")
        if r.get("opcode") == 2:
            self.frames.append((e["timestamp"], b64_len(payload), None))
        else:
            self.frames.append((e["timestamp"], len(payload.encode()), payload if len(payload) < 1000 else None))

    def _sent(self, e: dict[str, Any]) -> None:
        payload = e["response"].get("payloadData", "")
        if self.pull_t is None and '"PULL-DOC-REQ"' in payload[:200]:
            self.pull_t = e["timestamp"]

    def _handshake(self, e: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in e["response"].get("headers", {}).items()}
        self.extensions = headers.get("sec-websocket-extensions")

    def figures(self, url: str) -> dict[str, Any]:
        msgs = messages(self.frames)
        reply_at = next((i for i, m in enumerate(msgs) if m["msgtype"] == "PULL-DOC-REPLY"), None)
        if reply_at is None or self.doc_t is None or self.pull_t is None:
            raise BenchError(f"{url}: CDP saw no document request, PULL-DOC-REQ or PULL-DOC-REPLY")
        reply = msgs[reply_at]
        by_type: dict[str, int] = {}
        for m in msgs:
            by_type[m["msgtype"]] = by_type.get(m["msgtype"], 0) + m["bytes"]
        html = sum(h["bytes"] for h in self.http.values() if h["type"] == "Document")
        return {"ws_bytes": sum(m["bytes"] for m in msgs), "ws_reply_bytes": reply["bytes"],
                "ws_after_reply_bytes": sum(m["bytes"] for m in msgs[reply_at + 1:]),
                "ws_bytes_by_msgtype": by_type, "ws_frames": len(self.frames),
                "ws_extensions": self.extensions,
                "http_bytes": sum(h["bytes"] for h in self.http.values()), "html_bytes": html,
                "http_requests": len(self.http),
                "cdp_get_to_reply_ms": (reply["t_last"] - self.doc_t) * 1000,
                "cdp_get_to_reply_first_ms": (reply["t_first"] - self.doc_t) * 1000,
                "cdp_pull_ms": (reply["t_last"] - self.pull_t) * 1000}


def cdp_navigate(ctx: Any, url: str, timeout_s: float) -> tuple[Any, CdpRecorder]:
    page = ctx.new_page()
    rec = CdpRecorder(ctx, page)
    page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
    wait_render(page, url, timeout_s)
    settle(page, lambda: len(rec.frames), min(timeout_s, 30))
    return page, rec


def load_cdp(browser: Any, url: str, timeout_s: float, warm: bool) -> dict[str, Any]:
    """A page load with CDP Network events: the wire figures; with ``warm``, a second load
    in the same context (bundles cached) too."""
    ctx = browser.new_context(viewport={"width": 1000, "height": 800})
    try:
        ctx.add_init_script(PAGE_RECORDER)
        page, rec = cdp_navigate(ctx, url, timeout_s)
        out = rec.figures(url)
        page.close()
        if warm:
            page, rec = cdp_navigate(ctx, url, timeout_s)
            again = rec.figures(url)
            out["warm_cdp_get_to_reply_ms"] = again["cdp_get_to_reply_ms"]
            out["warm_http_bytes"] = again["http_bytes"]
    finally:
        ctx.close()
    return out


# ---------------------------------------------------------------------------
# the same first view without a browser
# ---------------------------------------------------------------------------

def page_token(html: str) -> str:
    at = html.find('"token":')
    if at < 0:
        raise BenchError("the page carries no token")
    rest = html[at + 8:].lstrip()
    return rest[1:rest.index('"', 1)]


async def _view_open(page_url: str, timeout_s: float) -> dict[str, float]:
    from tornado.httpclient import HTTPRequest  # noqa: PLC0415
    from tornado.websocket import websocket_connect  # noqa: PLC0415

    origin = page_url.split("/", 3)[:3]
    t0 = time.perf_counter()
    with urllib.request.urlopen(page_url, timeout=timeout_s) as resp:  # a new connection, as a fresh tab
        html = resp.read().decode()
    t1 = time.perf_counter()
    ws_url = "ws" + page_url[4:].split("?")[0].rstrip("/") + "/ws"
    conn = await asyncio.wait_for(websocket_connect(
        HTTPRequest(ws_url, headers={"Origin": "/".join(origin)}, connect_timeout=timeout_s),
        subprotocols=["bokeh", page_token(html)], max_message_size=1 << 31), timeout_s)
    try:
        async def read() -> Any:
            msg = await asyncio.wait_for(conn.read_message(), timeout_s)
            if msg is None:
                raise BenchError(f"{ws_url}: closed by the server")
            return msg

        ack = [await read() for _ in range(3)]
        if '"ACK"' not in ack[0].replace(" ", ""):
            raise BenchError(f"{ws_url}: no ACK but {ack[0][:200]}")
        t2 = time.perf_counter()
        for part in (json.dumps({"msgid": uuid.uuid4().hex, "msgtype": "PULL-DOC-REQ"}), "{}", "{}"):
            await conn.write_message(part)
        head = json.loads(await read())
        if head.get("msgtype") != "PULL-DOC-REPLY":
            raise BenchError(f"{ws_url}: {head} instead of a PULL-DOC-REPLY")
        got = len(json.dumps(head))
        for _ in range(2 + 2 * int(head.get("num_buffers") or 0)):
            got += len(await read())
        t3 = time.perf_counter()
    finally:
        conn.close()
    return {"total_ms": (t3 - t0) * 1000, "page_ms": (t1 - t0) * 1000, "connect_ms": (t2 - t1) * 1000,
            "pull_ms": (t3 - t2) * 1000, "reply_bytes": got}


def view_open(page_url: str, runs: int, timeout_s: float) -> dict[str, Any]:
    """``runs`` times what a browser does to open the page, from Python on loopback with no
    browser in between: GET the page (new connection), parse its token, connect the websocket
    (ACK), PULL-DOC-REQ, until the whole PULL-DOC-REPLY is read. One warm-up first."""
    # Playwright's sync API runs an event loop on this thread: the opens get a thread of their own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        def one() -> dict[str, float]:
            return pool.submit(asyncio.run, _view_open(page_url, timeout_s)).result(timeout=timeout_s * 4)

        one()
        got = [one() for _ in range(runs)]
    return {k: stats([g[k] for g in got]) for k in got[0]}


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------

def stats(values: list[Any]) -> dict[str, Any] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": round(statistics.median(vals), 1), "min": round(min(vals), 1), "max": round(max(vals), 1),
            "n": len(vals)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float)) and not isinstance(runs[0][k], bool)]
    keys += [k for k in ("refined_ms", "refined_rows", "warm_cdp_get_to_reply_ms", "warm_http_bytes")
             if k not in keys and any(r.get(k) is not None for r in runs)]
    return {k: stats([r.get(k) for r in runs]) for k in keys}


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.1f} kB"
    return f"{n:.0f} B"


def report(result: dict[str, Any]) -> str:
    ms0 = lambda v: f"{v:.0f} ms"  # noqa: E731
    ms1 = lambda v: f"{v:.1f} ms"  # noqa: E731
    count = lambda v: f"{v:,.0f}"  # noqa: E731
    rows = [("ws_bytes", "ws bytes received (first view, settled)", fmt_bytes),
            ("ws_reply_bytes", "  of which the PULL-DOC-REPLY", fmt_bytes),
            ("ws_after_reply_bytes", "  after it (copies for the real width, OKs)", fmt_bytes),
            ("page_ws_bytes", "  ws bytes seen by the page's JS (check)", fmt_bytes),
            ("http_bytes", "HTTP bytes (page, bundles, favicon)", fmt_bytes),
            ("html_bytes", "  of which the HTML page", fmt_bytes),
            ("render_ms", "first render with data, ms since nav start", ms0),
            ("rows", "  rows in the page then", count),
            ("reply_ms", "PULL-DOC-REPLY in the page's JS, since nav", ms0),
            ("cdp_get_to_reply_ms", "CDP: document request -> reply's last frame", ms1),
            ("cdp_pull_ms", "CDP: PULL-DOC-REQ sent -> reply's last frame", ms1),
            ("warm_cdp_get_to_reply_ms", "CDP, bundles cached: request -> reply", ms1),
            ("refined_ms", "first later copy applied, since nav", ms0),
            ("refined_rows", "  rows in that copy", count),
            ("copies_after_reply", "  copies after the reply", count),
            ("copies_same_as_first", "  of which identical to the first", count),
            ("final_same_as_first", "  settled copy identical to the first (0/1)", count),
            ("rendered_first_copy", "  first render drew the reply's copy (0/1)", count)]
    probe_rows = [("total_ms", "no browser: GET -> whole PULL-DOC-REPLY", ms1),
                  ("page_ms", "  GET of the page (new connection)", ms1),
                  ("connect_ms", "  websocket connect -> ACK", ms1),
                  ("pull_ms", "  PULL-DOC-REQ -> whole reply", ms1),
                  ("reply_bytes", "  reply bytes", fmt_bytes)]
    lines = [f"median / min over the runs; {result['machine']}"]
    for name, conf in result["configs"].items():
        lines.append(f"== {name} ({conf['points']:,} points, {conf['runs']} runs)")
        for table, keys in ((conf["summary"], rows), (conf.get("view_open") or {}, probe_rows)):
            for key, label_, fmt in keys:
                if table.get(key):
                    lines.append(f"  {label_:<50} {fmt(table[key]['median']):>12} / {fmt(table[key]['min'])}")
        if conf.get("ws_extensions"):
            lines.append(f"  websocket extensions: {conf['ws_extensions']}")
        lines.append(f"  server RSS, MiB: {conf['rss_mib']}")
    for title, key in (("plotwire / bokeh (medians)", "ratios"), ("first view of the big series vs the issue's targets "
                                                                   "(medians)", "targets")):
        if result.get(key):
            lines.append(f"== {title}")
            lines.extend(f"  {k:<50} {v}" for k, v in result[key].items())
    return "\n".join(lines)


def measure(browser: Any, kinds: dict[str, tuple[Server, str]], runs: int, timeout_s: float,
            probe_runs: int) -> dict[str, dict[str, Any]]:
    """A warm-up load per page, then ``runs`` rounds, alternating between the pages: a CDP
    load (plus a warm one for plotwire) and a plain load each. Then the browser-less opens."""
    out: dict[str, dict[str, Any]] = {k: {"runs_raw": [], "rss_max_after_a_run": 0.0} for k in kinds}
    for kind, (server, url) in kinds.items():
        log(f"{kind}: warm-up load of {url}")
        first = load_plain(browser, url, timeout_s)
        log(f"  rendered at {first['render_ms']:.0f} ms with {first['rows']:,} rows")
        out[kind]["rss_after_warmup"] = server.rss_mib()
    for i in range(runs):
        for kind, (server, url) in kinds.items():
            wire = load_cdp(browser, url, timeout_s, warm=server.kind == "plotwire")
            out[kind]["ws_extensions"] = wire.pop("ws_extensions")
            by_type = wire.pop("ws_bytes_by_msgtype")
            plain = load_plain(browser, url, timeout_s)
            out[kind]["runs_raw"].append({**wire, **plain, "ws_bytes_by_msgtype": by_type})
            out[kind]["rss_max_after_a_run"] = max(out[kind]["rss_max_after_a_run"], server.rss_mib() or 0.0)
            warm = f", warm {wire['warm_cdp_get_to_reply_ms']:.0f} ms" if "warm_cdp_get_to_reply_ms" in wire else ""
            log(f"run {i + 1}/{runs} {kind}: render {plain['render_ms']:.0f} ms ({plain['rows']:,} rows), "
                f"ws {fmt_bytes(wire['ws_bytes'])} {by_type}, http {fmt_bytes(wire['http_bytes'])}, "
                f"get->reply {wire['cdp_get_to_reply_ms']:.0f} ms (pull {wire['cdp_pull_ms']:.1f} ms{warm}); "
                f"later copies {plain['copies_after_reply']} ({plain['copies_same_as_first']} identical)")
    for kind, (server, url) in kinds.items():
        if probe_runs > 0:
            log(f"{kind}: {probe_runs} browser-less opens")
            out[kind]["view_open"] = view_open(url, probe_runs, timeout_s)
        out[kind]["summary"] = summarize([{k: v for k, v in r.items() if k != "ws_bytes_by_msgtype"}
                                          for r in out[kind]["runs_raw"]])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plotwire", default=str(REPO_ROOT / "target" / "release" / "plotwire"))
    ap.add_argument("--runs", type=int, default=5, help="measured page loads per configuration and pass (default 5)")
    ap.add_argument("--probe-runs", type=int, default=10, help="browser-less opens per configuration (default 10)")
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--big-points", type=int, default=100_000_000)
    ap.add_argument("--skip-bokeh", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--chromium", default=os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per page load (default 180)")
    ap.add_argument("--json", help="write every figure to this file")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    logs = Path(tempfile.mkdtemp(prefix="lod-page-"))
    servers: list[Server] = []
    result: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start",
                              "configs": {}}
    small, big = label("plotwire", args.points), label("plotwire", args.big_points)
    try:
        plotwire = start_plotwire(args.plotwire, logs)
        servers.append(plotwire)
        rss = {"plotwire": {"empty": plotwire.rss_mib()}}
        kinds = {small: (plotwire, publish(plotwire, args.points))}
        rss["plotwire"]["streamed"] = plotwire.rss_mib()
        if not args.skip_bokeh:
            bokeh = start_bokeh(args.points, logs)
            servers.append(bokeh)
            rss["bokeh"] = {"empty": bokeh.rss_mib()}
            kinds[label("bokeh", args.points)] = (bokeh, f"{bokeh.base_url}/{RAW_APP.stem}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                got = measure(browser, kinds, args.runs, args.timeout, args.probe_runs)
                for name, (server, url) in kinds.items():
                    g = got[name]
                    if server.kind == "bokeh":
                        rss["bokeh"]["after its first session"] = g["rss_after_warmup"]
                        server.stop()  # the big series runs alone
                    rss[server.kind]["max after a run"] = g["rss_max_after_a_run"]
                    rows = g["summary"]["rows"]["min"]
                    if server.kind == "bokeh" and rows != args.points:
                        raise BenchError(f"bokeh's page held {rows:,} rows, not {args.points:,}")
                    if server.kind == "plotwire" and rows >= args.points:
                        raise BenchError("plotwire's page held every row: level of detail did not apply")
                    result["configs"][name] = {"points": args.points, "runs": args.runs, "url": url,
                                               "summary": g["summary"], "view_open": g.get("view_open"),
                                               "ws_extensions": g.get("ws_extensions"), "rss_mib": rss[server.kind],
                                               "runs_raw": g["runs_raw"]}
                if not args.skip_bokeh:
                    p, b = got[small]["summary"], got[label("bokeh", args.points)]["summary"]
                    result["ratios"] = {f"{k} at {args.points:,}": round(p[k]["median"] / b[k]["median"], 5)
                                        for k in ("ws_bytes", "http_bytes", "render_ms", "reply_ms")}
                if not args.skip_big:
                    big_url = publish(plotwire, args.big_points)
                    rss_big = {"both series streamed": plotwire.rss_mib()}
                    g = measure(browser, {big: (plotwire, big_url)}, args.runs, args.timeout, args.probe_runs)[big]
                    rss_big["max after a run"] = g["rss_max_after_a_run"]
                    s = g["summary"]
                    if s["rows"]["max"] >= args.big_points:
                        raise BenchError("plotwire's page held every row of the big series")
                    result["configs"][big] = {"points": args.big_points, "runs": args.runs, "url": big_url,
                                              "summary": s, "view_open": g.get("view_open"), "rss_mib": rss_big,
                                              "runs_raw": g["runs_raw"]}
                    ws, t = s["ws_bytes"]["median"], s["cdp_get_to_reply_ms"]["median"]
                    targets = {
                        "ws bytes, first view settled (<= 100 kB)":
                            f"{fmt_bytes(ws)} ({'PASS' if ws <= 100_000 else 'MISS'})",
                        "  PULL-DOC-REPLY alone": fmt_bytes(s["ws_reply_bytes"]["median"]),
                        "browser: document request -> reply (<= 50 ms)":
                            f"{t:.1f} ms ({'PASS' if t <= 50 else 'MISS'})",
                        "  same, bundles cached": f"{s['warm_cdp_get_to_reply_ms']['median']:.1f} ms",
                        "  PULL-DOC-REQ sent -> reply": f"{s['cdp_pull_ms']['median']:.1f} ms"}
                    if g.get("view_open"):
                        v = g["view_open"]["total_ms"]["median"]
                        targets["no browser: GET -> whole reply (<= 50 ms)"] = f"{v:.1f} ms ({'PASS' if v <= 50 else 'MISS'})"
                    result["targets"] = targets
            finally:
                browser.close()
    except ServerFailed as exc:
        log(f"error: a server failed to start: {exc}")
        return 2
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        for server in servers:
            server.stop()
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
