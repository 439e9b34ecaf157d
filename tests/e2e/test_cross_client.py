"""Python client <-> server <-> Python client: bokeh.client push_session / pull_session.

Each test uses its own session id on a module-wide server. A "live" client runs its
IOLoop in a background thread (support.LiveSession), so relayed patches are applied
while the test thread drives the other side. Waits never wrap a request/reply call
of the same client (protocol doc §11, "Dropped patches").
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from support import (
    INITIAL_X,
    INITIAL_Y,
    REPO_ROOT,
    build_plot_doc,
    connect_push,
    close_idle_session,
    data_of,
    pull_snapshot,
    run_bounded,
    unique_id,
    wait_for,
)


def _src(doc):
    return doc.get_model_by_name("src")


def _model_state(doc):
    return {
        "data": data_of(doc),
        "title": doc.title,
        "slider": doc.get_model_by_name("slider").value,
        "button": doc.get_model_by_name("button").label,
    }


# ---------------------------------------------------------------------------
# the full change sequence of the fixtures (ws/1-pushed-plain)
# ---------------------------------------------------------------------------

def test_pusher_changes_reach_live_and_fresh_pullers(server, clients):
    sid = unique_id("cross-plain")
    url = server.app_url()
    pusher = clients.push(build_plot_doc(), url, sid, name="pusher")
    puller = clients.pull(url, sid, name="puller")

    # the pulled document is the pushed one, with the pusher's model ids
    assert puller.get(data_of) == {"x": INITIAL_X, "y": INITIAL_Y}
    assert puller.get(lambda d: d.title) == "pushed doc"
    ids = lambda d: sorted(m.id for m in d.models)  # noqa: E731
    assert puller.get(ids) == pusher.get(ids)
    assert puller.get(lambda d: [type(r).__name__ for r in d.roots]) == ["Column"]

    steps = [
        ("stream x=[5,6]",
         lambda d: _src(d).stream(dict(x=[5, 6], y=[25, 36])),
         {"x": [0, 1, 2, 3, 4, 5, 6], "y": [0, 1, 4, 9, 16, 25, 36]}),
        ("stream x=[7,8,9] rollover=8",
         lambda d: _src(d).stream(dict(x=[7, 8, 9], y=[49, 64, 81]), rollover=8),
         {"x": [2, 3, 4, 5, 6, 7, 8, 9], "y": [4, 9, 16, 25, 36, 49, 64, 81]}),
        ("stream x=[10] without rollover (grows past 8)",
         lambda d: _src(d).stream(dict(x=[10], y=[100])),
         {"x": [2, 3, 4, 5, 6, 7, 8, 9, 10], "y": [4, 9, 16, 25, 36, 49, 64, 81, 100]}),
        ("integer patch y[0]=42",
         lambda d: _src(d).patch(dict(y=[(0, 42)])),
         {"x": [2, 3, 4, 5, 6, 7, 8, 9, 10], "y": [42, 9, 16, 25, 36, 49, 64, 81, 100]}),
        ("slice patch y[1:3]=[7,7]",
         lambda d: _src(d).patch(dict(y=[(slice(1, 3), [7, 7])])),
         {"x": [2, 3, 4, 5, 6, 7, 8, 9, 10], "y": [42, 7, 7, 25, 36, 49, 64, 81, 100]}),
    ]
    for desc, action, expected in steps:
        pusher.call(action, pusher.doc)
        assert pusher.get(data_of) == expected, f"pusher's own document after {desc}"
        puller.wait_doc(data_of, lambda v, e=expected: v == e, desc=f"data after {desc}")

    pusher.call(lambda: setattr(pusher.doc, "title", "title changed by pusher"))
    puller.wait_doc(lambda d: d.title, lambda v: v == "title changed by pusher", desc="TitleChanged")

    pusher.call(lambda: setattr(pusher.doc.get_model_by_name("slider"), "value", 3))
    puller.wait_doc(lambda d: d.get_model_by_name("slider").value, lambda v: v == 3, desc="slider.value")

    # and the other way round: a change made by the puller reaches the pusher
    puller.call(lambda: setattr(puller.doc.get_model_by_name("button"), "label", "set by puller"))
    pusher.wait_doc(lambda d: d.get_model_by_name("button").label, lambda v: v == "set by puller",
                    desc="button.label set by the puller")

    expected_state = {
        "data": {"x": [2, 3, 4, 5, 6, 7, 8, 9, 10], "y": [42, 7, 7, 25, 36, 49, 64, 81, 100]},
        "title": "title changed by pusher",
        "slider": 3,
        "button": "set by puller",
    }
    assert puller.get(_model_state) == expected_state
    # a brand-new pull of the same session id sees every change
    assert pull_snapshot(url, sid, _model_state) == expected_state
    assert not puller.patch_errors and not pusher.patch_errors


def test_full_data_replacement_reaches_puller(server, clients):
    """``src.data = {...}`` (ColumnDataChanged, cols=null) replaces every column."""
    sid = unique_id("cross-cdc-full")
    url = server.app_url()
    pusher = clients.push(build_plot_doc(), url, sid)
    puller = clients.pull(url, sid)
    pusher.call(lambda: setattr(_src(pusher.doc), "data", dict(x=[10, 20, 30], y=[3, 1, 2])))
    expected = {"x": [10, 20, 30], "y": [3, 1, 2]}
    puller.wait_doc(data_of, lambda v: v == expected, desc="replaced data")
    assert pull_snapshot(url, sid, data_of) == expected


@pytest.mark.plotwire_only
def test_partial_column_data_changed_keeps_other_columns(server, clients):
    """``src.data["y"] = [...]`` (ColumnDataChanged with cols=["y"]) must merge: column x
    stays (Bokeh 3.9.2 replaces the whole dict and loses x, protocol doc §7.2/§8.5)."""
    sid = unique_id("cross-cdc-partial")
    url = server.app_url()
    pusher = clients.push(build_plot_doc(), url, sid)
    puller = clients.pull(url, sid)
    pusher.call(lambda: _src(pusher.doc).data.__setitem__("y", [2, 2, 2, 2, 2]))
    expected = {"x": INITIAL_X, "y": [2, 2, 2, 2, 2]}
    puller.wait_doc(lambda d: _src(d).data.get("y") and data_of(d), lambda v: v == expected,
                    desc="y replaced and x kept")
    assert pull_snapshot(url, sid, data_of) == expected


def test_many_small_streams_arrive_complete_and_in_order(server, clients):
    """600 one-point streams sent back to back (one PATCH-DOC each, no waiting for OK):
    the live puller applies every one, in order. Also exercises a long-lived client loop
    (bokeh.client would hit RecursionError after ~300 messages without the unwinding pump)."""
    sid = unique_id("cross-many")
    url = server.app_url()
    pusher = clients.push(build_plot_doc(data=dict(x=[], y=[])), url, sid)
    puller = clients.pull(url, sid)
    n = 600

    def send_all():
        src = _src(pusher.doc)
        for i in range(n):
            src.stream(dict(x=[i], y=[i * 0.5]))

    pusher.call(send_all)
    puller.wait_doc(lambda d: len(_src(d).data["x"]), lambda v: v >= n, timeout=60, desc=f"{n} streamed points")
    assert puller.get(data_of) == {"x": list(range(n)), "y": [i * 0.5 for i in range(n)]}
    assert pull_snapshot(url, sid, lambda d: len(_src(d).data["x"])) == n
    assert not puller.patch_errors


def test_session_survives_reconnect_then_expires_when_unused(server_factory, clients):
    """--unused-session-lifetime/--check-unused-sessions: a session without connections is
    kept for the lifetime (a pull right after the pusher left sees the document), then
    discarded; the same id then gets a fresh document of the (empty) app."""
    srv = server_factory(["--unused-session-lifetime", "1500", "--check-unused-sessions", "500"])
    sid = unique_id("cross-lifetime")
    url = srv.app_url()
    pusher = clients.push(build_plot_doc(), url, sid)
    pusher.call(lambda: _src(pusher.doc).stream(dict(x=[5], y=[25])))
    # make sure the stream has been applied on the server before leaving
    watcher = clients.pull(url, sid, name="watcher")
    watcher.wait_doc(lambda d: list(_src(d).data["x"]), lambda v: v == INITIAL_X + [5], desc="stream applied")
    assert pusher.close() and watcher.close()
    assert pull_snapshot(url, sid, lambda d: list(_src(d).data["x"])) == INITIAL_X + [5]
    # no connections now; lifetime 1.5 s + check interval 0.5 s, with margin
    time.sleep(4.0)
    assert pull_snapshot(url, sid, lambda d: [type(r).__name__ for r in d.roots]) == [], \
        "an unused session must be discarded after --unused-session-lifetime"


# ---------------------------------------------------------------------------
# new models
# ---------------------------------------------------------------------------

def _div_state(doc):
    div = doc.get_model_by_name("div")
    if div is None:
        return None
    return {"text": div.text, "is_root": div in doc.roots, "n_roots": len(doc.roots)}


def test_new_root_reaches_live_puller(server, clients):
    """doc.add_root(Div) on the pusher: RootAdded with the model in full."""
    from bokeh.models import Div

    sid = unique_id("cross-root1")
    url = server.app_url()
    pusher = clients.push(build_plot_doc(), url, sid)
    puller = clients.pull(url, sid)
    pusher.call(lambda: pusher.doc.add_root(Div(text="<b>root added by pusher</b>", name="div")))
    expected = {"text": "<b>root added by pusher</b>", "is_root": True, "n_roots": 2}
    puller.wait_doc(_div_state, lambda v: v == expected, desc="the new Div root")
    assert pull_snapshot(url, sid, _div_state) == expected

    pusher.call(lambda: pusher.doc.remove_root(pusher.doc.get_model_by_name("div")))
    puller.wait_doc(lambda d: (len(d.roots), d.get_model_by_name("div")), lambda v: v == (1, None),
                    desc="RootRemoved")
    assert not puller.patch_errors


@pytest.mark.plotwire_only
def test_new_models_reach_two_live_pullers_in_full(server, clients):
    """Every other connection must get a new model in full (Bokeh 3.9.2 sends it in full
    only to the first recipient; the next one gets a bare reference, §7.8/§8.5)."""
    from bokeh.models import Div, Title

    sid = unique_id("cross-root2")
    url = server.app_url()
    pusher = clients.push(build_plot_doc(), url, sid)
    pullers = [clients.pull(url, sid, name=f"puller{i}") for i in (1, 2)]

    pusher.call(lambda: pusher.doc.add_root(Div(text="<i>for both pullers</i>", name="div")))
    expected = {"text": "<i>for both pullers</i>", "is_root": True, "n_roots": 2}
    for p in pullers:
        p.wait_doc(_div_state, lambda v: v == expected, desc="the new Div root")

    # a ModelChanged whose new value is a new model (plot.title = Title(...))
    pusher.call(lambda: setattr(pusher.doc.get_model_by_name("plot"), "title",
                                Title(text="a brand-new Title model", name="newtitle")))
    for p in pullers:
        p.wait_doc(lambda d: d.get_model_by_name("plot").title.text, lambda v: v == "a brand-new Title model",
                   desc="the new Title model")
        assert p.get(lambda d: d.get_model_by_name("newtitle") is d.get_model_by_name("plot").title)

    # both pullers' message loops are still alive: a later plain change reaches both
    pusher.call(lambda: setattr(pusher.doc.get_model_by_name("div"), "text", "changed later"))
    for p in pullers:
        p.wait_doc(lambda d: d.get_model_by_name("div").text, lambda v: v == "changed later", desc="Div.text")
        assert not p.patch_errors, f"{p.name}: {p.patch_errors}"
    assert pull_snapshot(url, sid, lambda d: (d.get_model_by_name("div").text,
                                              d.get_model_by_name("plot").title.text)) == \
        ("changed later", "a brand-new Title model")


# ---------------------------------------------------------------------------
# binary columns
# ---------------------------------------------------------------------------

def _columns(doc):
    src = _src(doc)
    return {k: np.asarray(v) for k, v in src.data.items()}


def _assert_bit_exact(actual: dict, expected: dict, where: str) -> None:
    assert sorted(actual) == sorted(expected), f"{where}: columns {sorted(actual)}"
    for k, exp in expected.items():
        got = actual[k]
        assert got.dtype == exp.dtype, f"{where}: column {k} has dtype {got.dtype}, expected {exp.dtype}"
        assert got.shape == exp.shape, f"{where}: column {k} has shape {got.shape}, expected {exp.shape}"
        assert got.tobytes() == exp.tobytes(), f"{where}: column {k} differs: {got!r} != {exp!r}"


def _bit_exact_equal(actual: dict, expected: dict) -> bool:
    try:
        _assert_bit_exact(actual, expected, "")
    except AssertionError:
        return False
    return True


def test_numpy_columns_arrive_bit_exact(server, clients):
    f64, i32 = np.float64, np.int32
    cols = {
        "x": np.array([0.0, 0.5, 1.0], dtype=f64),
        "y": np.array([1.0, 2.0, 3.0], dtype=f64),
        "k": np.array([1, 2, 3], dtype=i32),
    }
    sid = unique_id("cross-numpy")
    url = server.app_url()
    pusher = clients.push(build_plot_doc(title="numpy doc", data={k: v.copy() for k, v in cols.items()}), url, sid)
    puller = clients.pull(url, sid)
    _assert_bit_exact(puller.get(_columns), cols, "pulled document")

    expected = {k: v.copy() for k, v in cols.items()}

    def stream(new, rollover=None):
        nonlocal expected
        pusher.call(lambda: _src(pusher.doc).stream({k: v.copy() for k, v in new.items()}, rollover=rollover))
        for k in expected:
            expected[k] = np.concatenate([expected[k], new[k]])
            if rollover is not None:
                expected[k] = expected[k][-rollover:]

    def check(desc):
        puller.wait_doc(_columns, lambda v: _bit_exact_equal(v, expected), desc=desc)

    stream({
        "x": np.array([0.1, 1 / 3, -0.0], dtype=f64),
        "y": np.array([5e-324, 1.7976931348623157e308, -2.2250738585072014e-308], dtype=f64),
        "k": np.array([-(2**31), 2**31 - 1, -1], dtype=i32),
    })
    check("float64/int32 stream (extreme values, -0.0, subnormal)")
    stream({
        "x": np.array([7.25, 8.5], dtype=f64),
        "y": np.array([np.nan, -np.inf], dtype=f64),
        "k": np.array([70000, -70000], dtype=i32),
    }, rollover=6)
    check("stream with NaN/-inf and rollover=6")
    assert np.isnan(puller.get(_columns)["y"][-2])

    # patches into the binary columns: NaN into float64, ints into int32, a slice with an ndarray
    pusher.call(lambda: _src(pusher.doc).patch({"y": [(0, float("nan"))], "k": [(1, -123456)],
                                                "x": [(slice(2, 4), np.array([9.5, -0.0]))]}))
    expected["y"][0] = np.nan
    expected["k"][1] = -123456
    expected["x"][2:4] = [9.5, -0.0]
    check("patches of binary columns")

    _assert_bit_exact(pusher.get(_columns), expected, "pusher's own document")
    _assert_bit_exact(pull_snapshot(url, sid, _columns), expected, "fresh pull")


# ---------------------------------------------------------------------------
# SERVER-INFO
# ---------------------------------------------------------------------------

def test_server_info_reports_bokeh_3_9_2(server):
    sid = unique_id("cross-info")
    session = connect_push(build_plot_doc(), server.app_url(), sid)
    try:
        info = run_bounded(session.request_server_info, 15.0, "request_server_info")
    finally:
        run_bounded(lambda: close_idle_session(session), 10.0, "closing the session")
    assert info == {"version_info": {"bokeh": "3.9.2", "server": "3.9.2"}}


# ---------------------------------------------------------------------------
# examples/streaming_push.py
# ---------------------------------------------------------------------------

class _ProcessOutput:
    """Collects a subprocess's stdout lines in a thread."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # ends at EOF
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def find(self, pattern: str):
        with self._lock:
            for line in self.lines:
                m = re.search(pattern, line)
                if m:
                    return m
        return None

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)


def test_streaming_push_example(server, clients):
    """examples/streaming_push.py --seconds 3: a puller sees points arrive, and the slider
    (set from the puller) reaches the example's on_change callback."""
    sid = unique_id("example-stream")
    app_url = server.app_url("streaming")
    script = REPO_ROOT / "examples" / "streaming_push.py"
    proc = subprocess.Popen([sys.executable, str(script), "--url", app_url, "--session-id", sid, "--seconds", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(REPO_ROOT),
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    out = _ProcessOutput(proc)
    try:
        wait_for(lambda: out.find(r"https?://\S+/streaming/\?bokeh-session-id=" + re.escape(sid)) or proc.poll() is not None,
                 timeout=30, desc="the example to print its page URL")
        assert proc.poll() is None, f"example exited early:\n{out.text()}"
        puller = clients.pull(app_url, sid)

        def xs(doc):
            return list(_src(doc).data["x"])

        first = puller.get(xs)
        puller.wait_doc(xs, lambda v: len(v) >= len(first) + 5, timeout=10, desc="5 new streamed points")
        # x is the point counter: consecutive, increasing
        got = puller.get(xs)
        assert got == list(range(got[0], got[0] + len(got))), got

        # set the step size to 0 from the puller: the example's slider on_change sees it,
        # and every later point repeats the previous y value
        puller.call(lambda: setattr(puller.doc.get_model_by_name("step"), "value", 0))
        m = wait_for(lambda: out.find(r"step size set to 0(\.0)? after point (\d+)"), timeout=10,
                     desc="the example's slider on_change callback")
        changed_after = int(m.group(2))

        def tail(doc):
            src = _src(doc)
            return [(x, y) for x, y in zip(src.data["x"], src.data["y"]) if x >= changed_after]

        pts = puller.wait_doc(tail, lambda v: len(v) >= 4, timeout=10, desc="points after the step change")
        assert len({y for _, y in pts}) == 1, f"with step 0 every later y must be equal: {pts}"

        rc = run_bounded(lambda: proc.wait(), 20, "the example to finish after --seconds 3")
        assert rc == 0, f"example exit code {rc}:\n{out.text()}"
        assert "Traceback" not in out.text(), out.text()
        assert not puller.patch_errors
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
