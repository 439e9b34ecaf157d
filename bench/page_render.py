#!/usr/bin/env python3
"""Page render benchmark: the time from navigation to a rendered plot, in headless Chromium,
for the same figure served by plotwire and by ``bokeh serve`` 3.9.2.

    python bench/page_render.py [--plotwire target/release/plotwire] [--runs 15]
                                [--chromium /usr/bin/chromium]

Both servers are started here (``bokeh serve tests/e2e/apps/*.py`` with this Python). An
unmodified ``bokeh.client`` producer pushes one plot-only figure (a line of 1000 points, axis
labels, the default tools) to a session of each server and stays connected. Each run opens
``/target/?bokeh-session-id=<id>`` in a fresh browser context (empty HTTP cache) and takes
``performance.now()`` (milliseconds since navigation start) at the first animation frame
where ``Bokeh.documents[0].is_idle`` holds and the plot's canvas exists. Runs alternate
between the servers, so load on the machine affects both alike. The page's BokehJS bundles
are recorded too.

Prints one JSON object on stdout: per server the median, min and max in ms, the runs and the
bundles; and ``ratio`` = plotwire median / bokeh median. Logs go to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
E2E_DIR = REPO_ROOT / "tests" / "e2e"

# Stamps the first animation frame at which the document is rendered.
RENDERED_STAMP = """
(() => {
  const check = () => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (docs && docs.length > 0 && docs[0].is_idle) {
      const views = window.Bokeh.index ? Object.values(window.Bokeh.index) : [];
      if (views.length > 0) {
        window.__rendered_ms = performance.now();
        return;
      }
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();
"""

JS_BUNDLES = """() => Array.from(document.querySelectorAll('script[src]'))
    .map(s => new URL(s.src).pathname.split('/').pop())"""


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def figure_doc():
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    n = 1000
    src = ColumnDataSource(dict(x=list(range(n)), y=[(i * 37 % 101) / 10 for i in range(n)]), name="src")
    plot = figure(width=700, height=400, title="page render", x_axis_label="x", y_axis_label="y", name="plot")
    plot.line("x", "y", source=src)
    doc = Document()
    doc.title = "page render"
    doc.add_root(plot)
    return doc


def one_run(browser, url: str, timeout_ms: int) -> tuple[float, list[str]]:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    try:
        context.add_init_script(RENDERED_STAMP)
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=timeout_ms)
        page.wait_for_function("() => window.__rendered_ms !== undefined", timeout=timeout_ms)
        if page.locator("canvas").count() == 0:
            raise RuntimeError(f"{url}: rendered without a canvas")
        return page.evaluate("window.__rendered_ms"), page.evaluate(JS_BUNDLES)
    finally:
        context.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plotwire", default=str(REPO_ROOT / "target" / "release" / "plotwire"),
                    help="the plotwire binary (default target/release/plotwire)")
    ap.add_argument("--runs", type=int, default=15, help="page loads per server (default 15)")
    ap.add_argument("--chromium", default=os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per page load (default 30)")
    args = ap.parse_args()

    os.environ["PLOTWIRE_BIN"] = args.plotwire
    os.environ.setdefault("E2E_LOG_LEVEL", "info")
    sys.path.insert(0, str(E2E_DIR))
    import support  # noqa: PLC0415
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    logs = Path(tempfile.mkdtemp(prefix="page-render-"))
    servers = {kind: support.ServerProcess(kind, logs / f"{kind}.log") for kind in ("plotwire", "bokeh")}
    producers = []
    times: dict[str, list[float]] = {kind: [] for kind in servers}
    bundles: dict[str, list[str]] = {}
    try:
        urls = {}
        for kind, server in servers.items():
            server.start()
            sid = f"page-render-{uuid.uuid4().hex[:12]}"
            producers.append(support.LiveSession(support.connect_push(figure_doc(), server.app_url(), sid),
                                                 f"{kind}-producer").start())
            urls[kind] = server.page_url(sid)
            log(f"{kind}: {urls[kind]} (log {server.log_path})")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                for kind, url in urls.items():  # warm-up: servers and Chromium
                    one_run(browser, url, int(args.timeout * 1000))
                for i in range(args.runs):
                    for kind, url in urls.items():
                        ms, scripts = one_run(browser, url, int(args.timeout * 1000))
                        times[kind].append(ms)
                        bundles[kind] = scripts
                        log(f"run {i + 1}/{args.runs} {kind}: {ms:.0f} ms")
            finally:
                browser.close()
    finally:
        for live in producers:
            live.close()
        for server in servers.values():
            server.stop()

    result = {kind: {"median_ms": round(statistics.median(t), 1), "min_ms": round(min(t), 1),
                     "max_ms": round(max(t), 1), "runs": len(t), "bundles": bundles.get(kind, [])}
              for kind, t in times.items()}
    result["ratio"] = round(result["plotwire"]["median_ms"] / result["bokeh"]["median_ms"], 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
