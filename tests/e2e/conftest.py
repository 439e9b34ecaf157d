"""Fixtures for the plotwire end-to-end suite.

Run against plotwire (default):   python -m pytest tests/e2e
Run against the real Bokeh 3.9.2: E2E_SERVER=bokeh python -m pytest tests/e2e

Environment:
  E2E_SERVER            plotwire (default) | bokeh
  PLOTWIRE_BIN          path of the plotwire binary (default <repo>/target/debug/plotwire)
  E2E_TEST_TIMEOUT      hard per-test limit in seconds (default 180), a safety net on top
                        of the bounded waits inside the tests
  E2E_LOG_LEVEL         --log-level passed to the server (default debug; "none" to omit)
  E2E_FORCE_PLOTWIRE_ONLY=1  also run @plotwire_only tests under E2E_SERVER=bokeh
                        (they are expected to fail there; useful to see Bokeh's behaviour)
  E2E_CHROMIUM          Chromium executable (default /usr/bin/chromium)
"""
from __future__ import annotations

import http.server
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from support import (  # noqa: F401  (re-exported for the tests)
    SERVER_KIND,
    CallbackRecorder,
    LiveSession,
    ServerProcess,
    WaitTimeout,
    connect_pull,
    connect_push,
    free_port,
    wait_for,
)

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# servers started during the current test (module-scoped ones included), for failure reports
_ACTIVE_SERVERS: list[ServerProcess] = []


# ---------------------------------------------------------------------------
# markers, reporting, per-test timeout
# ---------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "plotwire_only: behaviour where plotwire intentionally differs from "
                                       "Bokeh 3.9.2 (bug fixes, UI events to bokeh.client); skipped with E2E_SERVER=bokeh")


def pytest_report_header(config: pytest.Config) -> list[str]:
    from support import PLOTWIRE_BIN
    where = str(PLOTWIRE_BIN) if SERVER_KIND == "plotwire" else "python -m bokeh serve tests/e2e/apps/*.py"
    return [f"e2e server: {SERVER_KIND} ({where})"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SERVER_KIND != "bokeh" or os.environ.get("E2E_FORCE_PLOTWIRE_ONLY") == "1":
        return
    skip = pytest.mark.skip(reason="plotwire_only: Bokeh 3.9.2 behaves differently here (E2E_SERVER=bokeh)")
    for item in items:
        if item.get_closest_marker("plotwire_only") is not None:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    item._e2e_failed = True
    for server in list(_ACTIVE_SERVERS):
        report.sections.append((f"server log tail ({server.kind}, port {server.port}, {server.log_path})",
                                server.log_tail(60)))
    browser_log = getattr(item, "_e2e_browser_log", None)
    if browser_log:
        report.sections.append(("browser console", "\n".join(browser_log[-80:])))


class TestTimeout(BaseException):
    """Raised in the main thread when a test exceeds E2E_TEST_TIMEOUT."""


@pytest.fixture(autouse=True)
def _per_test_timeout() -> Iterator[None]:
    seconds = float(os.environ.get("E2E_TEST_TIMEOUT", "180"))
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TestTimeout(f"test exceeded E2E_TEST_TIMEOUT={seconds:g}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------

def _start_server(log_dir: Path, name: str, extra_args: list[str], secret_key: str | None,
                  port: int | None = None) -> ServerProcess:
    log_path = log_dir / f"{name}-{SERVER_KIND}.log"
    server = ServerProcess(SERVER_KIND, log_path, extra_args=extra_args, secret_key=secret_key, port=port)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    _ACTIVE_SERVERS.append(server)
    return server


def _stop_server(server: ServerProcess) -> None:
    server.stop()
    if server in _ACTIVE_SERVERS:
        _ACTIVE_SERVERS.remove(server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A server with default options, shared by the tests of one module."""
    log_dir = tmp_path_factory.mktemp("server-logs")
    srv = _start_server(log_dir, request.module.__name__.rsplit(".", 1)[-1], [], None)
    yield srv
    _stop_server(srv)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``server_factory(extra_args=[...], secret_key=None, port=None)`` starts a server with
    extra command-line options for one test (e.g. ``--allow-websocket-origin``)."""
    started: list[ServerProcess] = []

    def make(extra_args: list[str] | tuple[str, ...] = (), secret_key: str | None = None,
             port: int | None = None) -> ServerProcess:
        srv = _start_server(tmp_path, f"server{len(started)}", list(extra_args), secret_key, port)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        _stop_server(srv)


# ---------------------------------------------------------------------------
# bokeh.client sessions
# ---------------------------------------------------------------------------

class ClientPool:
    """Creates LiveSessions and makes sure they are all closed after the test."""

    def __init__(self) -> None:
        self.sessions: list[LiveSession] = []

    def push(self, doc: Any, url: str, session_id: str, name: str = "pusher") -> LiveSession:
        live = LiveSession(connect_push(doc, url, session_id), name)
        self.sessions.append(live)
        return live.start()

    def pull(self, url: str, session_id: str, name: str = "puller") -> LiveSession:
        live = LiveSession(connect_pull(url, session_id), name)
        self.sessions.append(live)
        return live.start()

    def close_all(self) -> None:
        for live in reversed(self.sessions):
            live.close()
        self.sessions.clear()


@pytest.fixture
def clients() -> Iterator[ClientPool]:
    pool = ClientPool()
    yield pool
    pool.close_all()


# ---------------------------------------------------------------------------
# browser
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless system Chromium for the whole run (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM} (run scripts/install-test-deps.sh)", pytrace=False)
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except BaseException:
        pw.stop()
        raise
    yield browser
    browser.close()
    pw.stop()


# Records the text fragments BokehJS sends on its websocket (window.__e2e_sent, last 2000),
# so tests can check what the browser sent, independent of what the server did with it.
WS_SEND_RECORDER = """
(() => {
  const orig = WebSocket.prototype.send;
  window.__e2e_sent = [];
  WebSocket.prototype.send = function (data) {
    if (typeof data === "string") {
      window.__e2e_sent.push(data);
      if (window.__e2e_sent.length > 2000) window.__e2e_sent.shift();
    }
    return orig.call(this, data);
  };
})();
"""


class BrowserPage:
    """A fresh page plus everything it logged."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.log: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_pageerror)

    def _on_console(self, msg: Any) -> None:
        line = f"[{msg.type}] {msg.text}"
        self.log.append(line)
        if msg.type == "error":
            self.console_errors.append(msg.text)

    def _on_pageerror(self, err: Any) -> None:
        text = f"{getattr(err, 'name', '')}: {getattr(err, 'message', err)}"
        self.log.append(f"[pageerror] {text}")
        self.page_errors.append(text)

    def sent_text_frames(self) -> list[str]:
        """Text fragments the page has sent on its websockets so far."""
        return self.page.evaluate("() => window.__e2e_sent ? Array.from(window.__e2e_sent) : []")

    def assert_no_errors(self) -> None:
        assert not self.page_errors, f"page errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


@pytest.fixture
def browser_page(chromium: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowserPage]:
    context = chromium.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(15000)
    context.add_init_script(WS_SEND_RECORDER)
    page = BrowserPage(context.new_page())
    request.node._e2e_browser_log = page.log
    yield page
    if getattr(request.node, "_e2e_failed", False):
        shot = tmp_path / "failure.png"
        try:
            page.page.screenshot(path=str(shot))
            print(f"screenshot of the failed page: {shot}")
        except Exception:  # noqa: BLE001
            pass
    context.close()


# ---------------------------------------------------------------------------
# a host page on another origin, for embeds
# ---------------------------------------------------------------------------

class _EmbedHandler(http.server.BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] not in ("/", "/index.html"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def embed_http_server():
    """``start(html) -> port``: a plain HTTP server on another port, serving one page."""
    servers = []

    def start(html: str, port: int) -> int:
        handler = type("Handler", (_EmbedHandler,), {"html": html.encode()})
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        servers.append((httpd, thread))
        return port

    yield start
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
