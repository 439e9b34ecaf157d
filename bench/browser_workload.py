#!/usr/bin/env python3
"""Browser workload of the plotwire benchmark suite: unmodified BokehJS 3.9.2 in headless
Chromium plus an unmodified ``bokeh.client`` producer, against one running server.

    python bench/browser_workload.py --url http://127.0.0.1:PORT --app NAME [--quick]
                                     [--chromium /usr/bin/chromium]

prints ONE JSON object on stdout (all logging goes to stderr):

    {"ok": bool, "error": str|null,
     "points_visible_ms":   {"p50": .., "p99": .., "max": .., "n": ..},
     "slider_roundtrip_ms": {"p50": .., "p99": .., "max": .., "n": ..},
     "checked_points": int}

and exits 0 when ok, 1 otherwise. The server must already run; for ``bokeh serve`` it must
serve an (empty) app called NAME. plotwire serves any app path.

What is measured
----------------
1. A producer (``bokeh.client.push_session`` to ``{url}/{app}``, fresh session id) pushes a
   figure with a line on a ColumnDataSource "src" (float64 columns seq, t, y, initially empty)
   and a Slider "slider". Its IOLoop runs in a background thread (``LiveSession`` from
   tests/e2e/support.py, which unwinds bokeh.client's per-message recursion).
2. Headless system Chromium opens ``{url}/{app}/?bokeh-session-id=<id>`` and waits until the
   document is rendered (``Bokeh.documents[0].is_idle`` and a canvas).
3. points_visible_ms: the producer streams ``--batches`` batches of ``--batch-size`` points
   every ``--interval-ms``. Every point of batch k has seq == k. Per batch: time from the
   producer's ``src.stream()`` call to the moment the batch is in ``src.data`` of
   ``Bokeh.documents[0]``. A listener installed in the page on the source's ``streaming``
   signal (and ``properties.data.change``; a 50 ms poll is only a safety net) stamps each new
   seq with ``performance.now()``. Page time is related to Python's ``time.perf_counter``
   through ONE offset, measured by round trips (``page.evaluate("performance.now()")``,
   keeping the sample with the smallest round trip; error <= half that round trip, usually
   well under 1 ms, and Chromium's 0.1 ms timer coarsening). Both clocks are CLOCK_MONOTONIC
   on Linux, so there is no wall-clock game; the offset is measured again at the end and the
   drift is logged. At the end every batch must have arrived exactly once and in order, and
   the page's seq/t/y columns must equal what was sent, bit for bit (checked_points).
4. slider_roundtrip_ms: the page sets ``slider.value = v`` on the BokehJS model (distinct v
   each time) and stamps ``performance.now()`` just before; the producer's ``on_change``
   stamps ``perf_counter()`` when it sees v. Same offset.

Everything is bounded: Playwright calls have timeouts, every wait has a deadline, and a
watchdog prints a failure JSON and exits if the whole run exceeds ``--timeout`` (default 60 s
quick, 180 s full). Only loopback is used.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
E2E_DIR = REPO_ROOT / "tests" / "e2e"

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# The JSON goes to the real stdout; fd 1 is pointed at stderr so that nothing else (library
# prints, child processes such as the Playwright driver or Chromium) can pollute it.
_JSON_OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

_emit_lock = threading.Lock()
_emitted = False


def log(msg: str) -> None:
    print(f"[browser_workload {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stats(values: list[float]) -> dict[str, Any]:
    """p50/p99 by nearest rank (a value that was actually measured), max, n; ms, 3 decimals."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    s = sorted(values)

    def rank(p: float) -> float:
        return round(s[max(0, math.ceil(p / 100.0 * len(s)) - 1)], 3)

    return {"p50": rank(50), "p99": rank(99), "max": round(s[-1], 3), "n": len(s)}


class Result:
    def __init__(self) -> None:
        self.points_ms: list[float] = []
        self.slider_ms: list[float] = []
        self.checked_points = 0

    def as_json(self, error: str | None) -> dict[str, Any]:
        return {"ok": error is None, "error": error,
                "points_visible_ms": stats(self.points_ms),
                "slider_roundtrip_ms": stats(self.slider_ms),
                "checked_points": self.checked_points}


def emit_and_exit(result: Result, error: str | None) -> None:
    """Print the one JSON object and end the process (from any thread, at most once)."""
    global _emitted
    with _emit_lock:
        if not _emitted:
            _emitted = True
            _JSON_OUT.write(json.dumps(result.as_json(error)) + "\n")
            _JSON_OUT.flush()
    sys.stderr.flush()
    # os._exit: do not wait on daemon threads or a stuck client loop. The Playwright driver
    # sees its pipe close and takes Chromium down with it.
    os._exit(0 if error is None else 1)


class BenchFailure(Exception):
    pass


# ---------------------------------------------------------------------------
# the producer
# ---------------------------------------------------------------------------

def import_support() -> Any:
    """tests/e2e/support.py (LiveSession, connect_push). It validates E2E_SERVER at import
    time; that variable is irrelevant here."""
    sys.path.insert(0, str(E2E_DIR))
    saved = os.environ.get("E2E_SERVER")
    os.environ["E2E_SERVER"] = "plotwire"
    try:
        import support  # noqa: PLC0415
    finally:
        if saved is None:
            os.environ.pop("E2E_SERVER", None)
        else:
            os.environ["E2E_SERVER"] = saved
    return support


class SliderRecorder:
    """Values seen by the producer's slider on_change, stamped with perf_counter (loop thread)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: list[tuple[float, Any]] = []

    def __call__(self, attr: str, old: Any, new: Any) -> None:
        now = time.perf_counter()
        with self.cond:
            self.seen.append((now, new))
            self.cond.notify_all()

    def wait_for(self, value: Any, start_index: int, deadline: float) -> float:
        with self.cond:
            for _ in range(100_000):
                for stamp, v in self.seen[start_index:]:
                    if v == value:
                        return stamp
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
        raise BenchFailure(f"the producer's slider on_change never saw value {value!r} "
                           f"(saw {[v for _, v in self.seen[start_index:]][-5:]!r})")


def build_doc(slider_cb: SliderRecorder) -> Any:
    import numpy as np
    from bokeh.document import Document
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, Slider
    from bokeh.plotting import figure

    doc = Document()
    doc.title = "plotwire bench: browser workload"
    empty = np.zeros(0, dtype=np.float64)
    src = ColumnDataSource(data=dict(seq=empty.copy(), t=empty.copy(), y=empty.copy()), name="src")
    plot = figure(title="bench", width=600, height=300, name="plot")
    plot.line("t", "y", source=src, name="line")
    slider = Slider(start=0, end=100_000, value=0, step=1, title="bench slider", name="slider")
    slider.on_change("value", slider_cb)
    doc.add_root(column(plot, slider, name="layout"))
    return doc


def batch_data(k: int, size: int) -> dict[str, Any]:
    import numpy as np
    t = np.arange(k * size, (k + 1) * size, dtype=np.float64)
    return {"seq": np.full(size, float(k), dtype=np.float64),
            "t": t,
            "y": np.sin(t * 0.05) * 10.0 + k / 7.0}


# ---------------------------------------------------------------------------
# JS evaluated in the page
# ---------------------------------------------------------------------------

JS_RENDERED = """() => {
    if (!window.Bokeh || !Bokeh.documents || Bokeh.documents.length == 0) return false;
    const doc = Bokeh.documents[0];
    return doc.get_model_by_name("src") != null && doc.get_model_by_name("slider") != null && doc.is_idle;
}"""

JS_INSTALL = """() => {
    const doc = Bokeh.documents[0];
    const src = doc.get_model_by_name("src");
    const st = {arrivals: [], seen_len: 0, last_seq: null, errors: []};
    window.__bench = st;
    const col = (name) => { const d = src.data; return d instanceof Map ? d.get(name) : d[name]; };
    const check = (via) => {
        const now = performance.now();
        const seq = col("seq");
        if (seq == null) return;
        const n = seq.length;
        if (n < st.seen_len) {
            st.errors.push(`seq column shrank from ${st.seen_len} to ${n}`);
            st.seen_len = n;
            return;
        }
        for (let i = st.seen_len; i < n; i++) {
            const s = seq[i];
            if (s !== st.last_seq) {
                st.arrivals.push({seq: s, t: now, len: n, via: via});
                st.last_seq = s;
            }
        }
        st.seen_len = n;
    };
    // ColumnsStreamed: HasProps.stream_to emits `streaming` synchronously while the PATCH-DOC
    // is applied; a full replacement emits the data property's change signal.
    src.streaming.connect(() => check("streaming"));
    src.properties.data.change.connect(() => check("change"));
    st.poll = setInterval(() => check("poll"), 50);
    check("install");
    return st.seen_len;
}"""

JS_ARRIVED = "(n) => window.__bench && window.__bench.arrivals.length >= n"

JS_ARRIVALS = """() => {
    const st = window.__bench;
    clearInterval(st.poll);
    return {arrivals: st.arrivals, errors: st.errors};
}"""

JS_COLUMNS = """() => {
    const src = Bokeh.documents[0].get_model_by_name("src");
    const d = src.data;
    const col = (name) => { const c = d instanceof Map ? d.get(name) : d[name]; return c == null ? null : Array.from(c); };
    return {seq: col("seq"), t: col("t"), y: col("y")};
}"""

JS_SET_SLIDER = """(v) => {
    const m = Bokeh.documents[0].get_model_by_name("slider");
    const t = performance.now();
    m.value = v;
    return t;
}"""


def measure_offset(page: Any, samples: int = 25) -> tuple[float, float]:
    """(offset_ms, rtt_ms): page performance.now() minus perf_counter()*1000, from the sample
    with the smallest round trip; its error is at most rtt_ms/2."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        a = time.perf_counter()
        p = page.evaluate("() => performance.now()")
        b = time.perf_counter()
        rtt_ms = (b - a) * 1000.0
        offset_ms = float(p) - (a + b) * 500.0
        if best is None or rtt_ms < best[1]:
            best = (offset_ms, rtt_ms)
    assert best is not None
    return best


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------

def run(args: argparse.Namespace, result: Result, t_begin: float) -> None:
    import numpy as np

    support = import_support()
    overall_deadline = t_begin + args.timeout

    def remaining(cap: float) -> float:
        return max(1.0, min(cap, overall_deadline - time.monotonic()))

    base = args.url.rstrip("/")
    app_url = f"{base}/{args.app}"
    session_id = f"bench-browser-{uuid.uuid4().hex}"
    page_url = f"{app_url}/?bokeh-session-id={session_id}"

    slider_rec = SliderRecorder()
    doc = build_doc(slider_rec)
    log(f"push_session to {app_url} (session {session_id})")
    live = support.LiveSession(support.connect_push(doc, app_url, session_id, timeout=remaining(30)),
                               "bench-producer").start()
    src = doc.get_model_by_name("src")
    if args.producer_nodelay:
        # tornado's HTTP1Connection turns Nagle back on after the websocket handshake, so an
        # unmodified bokeh.client writes each message's fragments under Nagle (see --help).
        live.call(lambda: live.session._connection._socket._socket.protocol.set_nodelay(True))
        log("producer socket: TCP_NODELAY set (--producer-nodelay)")

    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = None
    page_errors: list[str] = []
    try:
        if not os.path.exists(args.chromium):
            raise BenchFailure(f"Chromium not found at {args.chromium}")
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True,
                                     timeout=remaining(30) * 1000)
        context = browser.new_context(viewport={"width": 1000, "height": 800})
        context.set_default_timeout(remaining(20) * 1000)
        page = context.new_page()
        page.on("pageerror", lambda err: page_errors.append(f"{getattr(err, 'name', '')}: {getattr(err, 'message', err)}"))

        def on_console(msg: Any) -> None:
            # "could not set initial ranges" is expected: the source starts empty
            if msg.type == "error" or (msg.type == "warning" and "initial ranges" not in msg.text):
                log(f"page console [{msg.type}] {msg.text}")

        page.on("console", on_console)

        log(f"opening {page_url}")
        t_page = time.monotonic()
        page.goto(page_url, wait_until="load", timeout=remaining(30) * 1000)
        page.wait_for_function(JS_RENDERED, timeout=remaining(30) * 1000, polling=20)
        page.locator("canvas").first.wait_for(state="attached", timeout=remaining(30) * 1000)
        log(f"document rendered after {time.monotonic() - t_page:.2f}s")
        page.evaluate(JS_INSTALL)
        # let the first render's range/size traffic settle
        page.wait_for_timeout(300)
        offset_ms, rtt_ms = measure_offset(page)
        log(f"clock offset page-python {offset_ms:.3f} ms (best round trip {rtt_ms:.3f} ms)")
        if page_errors:
            raise BenchFailure(f"BokehJS raised: {page_errors[:3]}")

        # -- points visible --------------------------------------------------------------
        n, size, interval = args.batches, args.batch_size, args.interval_ms / 1000.0
        sent: dict[int, float] = {}
        expected = [batch_data(k, size) for k in range(n)]

        def make_stream(k: int) -> Any:
            def go() -> None:
                sent[k] = time.perf_counter()
                src.stream(expected[k])
            return go

        log(f"streaming {n} batches of {size} points every {args.interval_ms:g} ms")
        start = time.perf_counter() + 0.05
        for k in range(n):
            delay = start + k * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() > overall_deadline:
                raise BenchFailure(f"timeout while streaming (batch {k} of {n})")
            live.call(make_stream(k), timeout=remaining(10))
            if live.patch_errors:
                raise BenchFailure(f"producer failed to apply a relayed patch: {live.patch_errors[0]!r}")
        try:
            page.wait_for_function(JS_ARRIVED, arg=n, timeout=remaining(15) * 1000, polling=20)
        except Exception as exc:  # noqa: BLE001
            got = page.evaluate("() => window.__bench.arrivals.length")
            raise BenchFailure(f"only {got} of {n} batches reached the page: {exc}") from None
        info = page.evaluate(JS_ARRIVALS)
        if info["errors"]:
            raise BenchFailure(f"page listener: {info['errors'][:3]}")
        arrivals = info["arrivals"]
        seqs = [a["seq"] for a in arrivals]
        if seqs != [float(k) for k in range(n)]:
            raise BenchFailure(f"batches arrived out of order or more than once: {seqs[:40]}")
        via: dict[str, int] = {}
        for a in arrivals:
            via[a["via"]] = via.get(a["via"], 0) + 1
            if a["len"] < (int(a["seq"]) + 1) * size:
                raise BenchFailure(f"batch {a['seq']} seen with only {a['len']} points")
        if via.get("poll") or via.get("install"):
            log(f"warning: some arrivals were only seen by the safety poll: {via}")
        tolerance_ms = rtt_ms / 2.0 + 0.2
        for a in arrivals:
            k = int(a["seq"])
            latency = (a["t"] - offset_ms) - sent[k] * 1000.0
            if latency < -tolerance_ms:
                raise BenchFailure(f"batch {k} seen {-latency:.3f} ms before it was sent: clock offset wrong")
            result.points_ms.append(max(0.0, latency))

        cols = page.evaluate(JS_COLUMNS)
        checked = 0
        want = {c: np.concatenate([e[c] for e in expected]).tolist() for c in ("seq", "t", "y")}
        total = n * size
        got_len = min(len(cols[c] or []) for c in ("seq", "t", "y"))
        for i in range(min(got_len, total)):
            if all(cols[c][i] == want[c][i] for c in ("seq", "t", "y")):
                checked += 1
        result.checked_points = checked
        if got_len != total or checked != total:
            raise BenchFailure(f"page data differs from what was streamed: {checked} of {total} points match, "
                               f"page has {got_len}")
        log(f"points visible: {stats(result.points_ms)} (seen via {via})")

        # -- slider round trip -----------------------------------------------------------
        log(f"slider round trips: {args.slider_moves}")
        for i in range(args.slider_moves):
            value = 1000 + i  # distinct from each other and from the initial 0
            index = len(slider_rec.seen)
            t_set_page = page.evaluate(JS_SET_SLIDER, value)
            stamp = slider_rec.wait_for(value, index, time.monotonic() + remaining(10))
            latency = stamp * 1000.0 - (t_set_page - offset_ms)
            if latency < -tolerance_ms:
                raise BenchFailure(f"slider value {value} seen {-latency:.3f} ms before it was set: clock offset wrong")
            result.slider_ms.append(max(0.0, latency))
            page.wait_for_timeout(args.slider_pause_ms)
        log(f"slider round trip: {stats(result.slider_ms)}")

        offset2_ms, rtt2_ms = measure_offset(page, samples=10)
        log(f"clock offset drift over the run: {offset2_ms - offset_ms:+.3f} ms (round trip {rtt2_ms:.3f} ms)")
        if page_errors:
            raise BenchFailure(f"BokehJS raised: {page_errors[:3]}")
        if live.patch_errors or live.pump_error:
            raise BenchFailure(f"producer loop error: {(live.patch_errors or [live.pump_error])[0]!r}")
    finally:
        try:
            if browser is not None:
                browser.close()
            pw.stop()
        except Exception as exc:  # noqa: BLE001
            log(f"closing the browser: {exc!r}")
        if not live.close("bench done"):
            log("the producer's client loop did not end cleanly")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:5006")
    p.add_argument("--app", required=True, help="app path (bokeh serve must serve an app of this name)")
    p.add_argument("--quick", action="store_true", help="smoke run: 15 batches, 5 slider moves, 60 s timeout")
    p.add_argument("--chromium", default=os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
    p.add_argument("--batches", type=int, help="batches to stream (default 15 quick, 100 full)")
    p.add_argument("--batch-size", type=int, default=10, help="points per batch (default 10)")
    p.add_argument("--interval-ms", type=float, default=100.0, help="ms between batches (default 100)")
    p.add_argument("--slider-moves", type=int, help="slider round trips (default 5 quick, 20 full)")
    p.add_argument("--slider-pause-ms", type=int, default=50, help="pause between slider moves (default 50)")
    p.add_argument("--producer-nodelay", action="store_true",
                   help="set TCP_NODELAY on the producer's socket. Unmodified bokeh.client runs its websocket "
                        "with Nagle on (tornado re-enables it after the handshake): a PATCH-DOC's first "
                        "fragment leaves at once, the rest wait for the server's (delayed, ~40 ms) ACK. "
                        "Off by default, so the default measures the client as users run it")
    p.add_argument("--timeout", type=float, help="overall limit in seconds (default 60 quick, 180 full)")
    args = p.parse_args(argv)
    if args.batches is None:
        args.batches = 15 if args.quick else 100
    if args.slider_moves is None:
        args.slider_moves = 5 if args.quick else 20
    if args.timeout is None:
        args.timeout = 60.0 if args.quick else 180.0
    if args.batches < 1 or args.batch_size < 1 or args.slider_moves < 0 or args.interval_ms < 0:
        p.error("--batches and --batch-size must be >= 1, --slider-moves and --interval-ms >= 0")
    return args


def main(argv: list[str]) -> None:
    result = Result()
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        emit_and_exit(result, f"bad arguments (exit {exc.code})")
        return
    t_begin = time.monotonic()

    def on_timeout() -> None:
        log(f"overall timeout of {args.timeout:g}s exceeded")
        emit_and_exit(result, f"overall timeout of {args.timeout:g}s exceeded")

    watchdog = threading.Timer(args.timeout, on_timeout)
    watchdog.daemon = True
    watchdog.start()
    error: str | None = None
    try:
        run(args, result, t_begin)
    except BenchFailure as exc:
        error = str(exc)
    except BaseException as exc:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        error = f"{type(exc).__name__}: {exc}".strip()
    log(f"done in {time.monotonic() - t_begin:.1f}s: {'ok' if error is None else 'FAILED: ' + error}")
    emit_and_exit(result, error)


if __name__ == "__main__":
    main(sys.argv[1:])
