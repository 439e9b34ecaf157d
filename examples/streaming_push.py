"""Stream a random walk into a plotwire (or Bokeh) server from a Python process.

This is Bokeh's classic ``push_session`` example, adapted to Bokeh 3.9:

    plotwire serve --port 5006            # or: bokeh serve some_empty_app.py
    python examples/streaming_push.py     # then open the printed URL in a browser

The script builds a figure with a line on a ColumnDataSource, pushes it as a new
session to ``http://127.0.0.1:5006/streaming`` (or the URL given with ``--url``, the
first positional argument, or the ``STREAMING_URL`` environment variable), prints the
page URL to open, and streams one random-walk point every 100 ms, keeping the last 500
(``rollover=500``). The "step size" slider is a real two-way widget: moving it in the
browser changes the step size used here, through ``slider.on_change``.

It runs until Ctrl-C, or for ``--seconds N``.
"""
from __future__ import annotations

import argparse
import os
import random
import sys

from bokeh.client import push_session
from bokeh.client.states import DISCONNECTED
from bokeh.document import Document
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Slider
from bokeh.plotting import figure
from bokeh.util.token import generate_session_id

DEFAULT_URL = "http://127.0.0.1:5006/streaming"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url_pos", nargs="?", metavar="URL", help=f"app URL (default: $STREAMING_URL or {DEFAULT_URL})")
    ap.add_argument("--url", help="app URL, same as the positional argument")
    ap.add_argument("--session-id", help="session id to create (default: a random one)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    ap.add_argument("--interval", type=int, default=100, help="milliseconds between points (default 100)")
    ap.add_argument("--rollover", type=int, default=500, help="points kept in the plot (default 500)")
    args = ap.parse_args(argv)
    args.url = (args.url or args.url_pos or os.environ.get("STREAMING_URL") or DEFAULT_URL).rstrip("/")
    return args


def build_document(args: argparse.Namespace) -> Document:
    doc = Document()
    doc.title = "plotwire streaming example"
    source = ColumnDataSource(data=dict(x=[0], y=[0.0]), name="src")
    plot = figure(title="random walk", width=800, height=400, name="plot")
    plot.line("x", "y", source=source, line_width=2)
    step = Slider(start=0, end=5, value=1, step=0.1, title="step size", name="step")

    state = {"n": 0, "y": 0.0, "step": float(step.value)}

    def on_step_change(attr: str, old: float, new: float) -> None:
        state["step"] = float(new)
        print(f"step size set to {float(new)} after point {state['n']}", flush=True)

    step.on_change("value", on_step_change)

    def add_point() -> None:
        state["n"] += 1
        state["y"] += random.uniform(-1.0, 1.0) * state["step"]
        source.stream(dict(x=[state["n"]], y=[state["y"]]), rollover=args.rollover)

    doc.add_periodic_callback(add_point, args.interval)
    doc.add_root(column(plot, step))
    return doc


def run_until_closed(session, seconds: float | None) -> None:
    """Run the client's event loop (periodic callback, incoming widget changes) until the
    connection closes, or until Ctrl-C.

    Bokeh 3 has no public call for this, only the private ``session._loop_until_closed()``,
    whose receive loop nests one coroutine level per received message, so it hits
    RecursionError after a few hundred messages (the server answers every streamed point
    with an OK). Here the loop is stopped and restarted every 50 messages instead, which
    unwinds that nesting, so the example can run for hours.
    """
    conn = session._connection
    if seconds is not None:
        conn.io_loop.call_later(seconds, session.close, "done")
    while not isinstance(conn._state, DISCONNECTED):
        count = [0]

        def stop_loop() -> bool:
            count[0] += 1
            return count[0] > 50 or isinstance(conn._state, DISCONNECTED)

        conn._loop_until(stop_loop)  # catches Ctrl-C itself and closes the connection
        if count[0] <= 50 and not isinstance(conn._state, DISCONNECTED):
            break  # interrupted by Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    session_id = args.session_id or generate_session_id()
    doc = build_document(args)
    session = push_session(doc, session_id=session_id, url=args.url)
    if not session.connected:
        print(f"could not connect to {args.url}: {session.error_reason} {session.error_detail}", file=sys.stderr)
        return 1
    print(f"open {args.url}/?bokeh-session-id={session_id}", flush=True)
    try:
        run_until_closed(session, args.seconds)
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
