"""plotwire as a library inside a host axum app (issue 11; crates/plotwire-server/examples/
embed_in_axum.rs): the host has its own pages and a cookie login, and mounts plotwire under
/plots behind that login. Without the cookie nothing of plotwire's is served; logged in,
headless Chromium renders the dashboard the host published in-process, through the host's
prefix, and sees it grow as the host's in-process producer streams into it. Then SIGTERM
stops the host gracefully."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from support import REPO_ROOT, free_port, http_get, run_bounded, wait_for, wait_value

pytestmark = pytest.mark.plotwire_only

EXAMPLE = Path(os.environ.get("PLOTWIRE_EXAMPLES", str(REPO_ROOT / "target" / "debug" / "examples"))) / "embed_in_axum"
PAGE = "/plots/d/demo/live/"


class Host:
    """The example, running; its output is collected line by line."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([str(EXAMPLE), "--port", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for(lambda: f"listening on {self.base}/" in self.lines, timeout=20,
                 desc=f"the host to listen on {self.base}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise


@pytest.fixture
def host():
    assert EXAMPLE.exists(), f"{EXAMPLE} is missing: cargo build -p plotwire-server --example embed_in_axum"
    h = Host()
    yield h
    if h.proc.poll() is None:
        h.proc.kill()
        h.proc.wait(timeout=5)


def test_plotwire_under_the_hosts_prefix_and_login(host, browser_page):
    # The host's own page is the host's.
    status, _, body = http_get(f"{host.base}/")
    assert status == 200 and b"Host app" in body
    # Without the login cookie plotwire's routes are refused before plotwire sees them.
    for path in (PAGE, "/plots/static/js/bokeh.min.js", "/plots/api/v1/documents", "/plots/d/demo/live/autoload.js"):
        status, _, body = http_get(f"{host.base}{path}")
        assert status == 401, (path, status)
        assert body == b"log in first: /login", (path, body[:200])
        assert b"Bokeh" not in body
    # A wrong cookie is no better.
    status, _, _ = http_get(f"{host.base}{PAGE}", headers={"Cookie": "host_session=guess"})
    assert status == 401

    page = browser_page.page
    refused = page.goto(f"{host.base}{PAGE}", wait_until="load", timeout=20000)
    assert refused is not None and refused.status == 401
    assert "Bokeh" not in page.content()
    browser_page.console_errors.clear()  # the refusal above, logged by the browser

    # Log in through the host's form, then follow its link to the plot.
    page.goto(f"{host.base}/login", wait_until="load", timeout=20000)
    page.click("#login", timeout=10000)
    page.wait_for_selector("#plot", timeout=10000)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert re.fullmatch(r"[0-9a-f]{32}", cookies.get("host_session", "")), cookies
    page.click("#plot", timeout=10000)
    page.wait_for_url(f"{host.base}{PAGE}", timeout=10000)

    # Every script comes through the host's prefix.
    scripts = page.evaluate("() => Array.from(document.scripts).map(s => s.src).filter(s => s)")
    assert scripts and all(s.startswith(f"{host.base}/plots/static/js/") for s in scripts), scripts

    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                           "Bokeh.documents[0].get_model_by_name('wave') != null", timeout=20000)
    points = lambda: page.evaluate("""() => {
        const data = Bokeh.documents[0].get_model_by_name('wave').data;
        return Array.from(data instanceof Map ? data.get('t') : data.t).length;
    }""")
    first = wait_value(points, lambda n: n >= 1, timeout=15, desc="the first streamed points in the page")
    # The host's producer streams every 100 ms; the page's copy grows with it.
    wait_value(points, lambda n: n >= first + 10, timeout=15, desc="the page's points to grow")
    assert page.locator("canvas").count() > 0, "the plot is drawn"
    browser_page.assert_no_errors()

    # The view's opening reached the host as a viewer event, in-process.
    wait_for(lambda: any(l.startswith("viewer event:") and '"kind":"view"' in l for l in host.lines),
             timeout=10, desc="the host to hear the view open")

    # SIGTERM: the host stops gracefully, closing plotwire's websocket with 1001.
    code = run_bounded(host.stop, timeout=20, desc="the host to stop")
    assert code == 0, host.lines
    assert "shutting down" in host.lines and "stopped" in host.lines, host.lines
    # (Playwright delivers console messages only while it is called: the wait_for_timeout.)
    wait_for(lambda: page.wait_for_timeout(50) or any("Lost websocket 0 connection, 1001" in line
                                                     for line in browser_page.log),
             timeout=10, desc="BokehJS to report the websocket closed with 1001")
