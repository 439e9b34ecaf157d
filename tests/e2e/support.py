"""Helpers shared by the end-to-end tests (imported by conftest.py and the test modules).

Everything here is bounded: every wait has a deadline and an iteration cap, every
background thread is a daemon and can be stopped.

Server selection: ``E2E_SERVER=plotwire`` (default) runs the plotwire binary
(``PLOTWIRE_BIN``, default ``<repo>/target/debug/plotwire``); ``E2E_SERVER=bokeh``
runs the real ``bokeh serve`` on the empty apps in ``tests/e2e/apps`` so that the
suite itself can be validated against the reference implementation.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import tempfile
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent.parent
APPS_DIR = E2E_DIR / "apps"

SERVER_KIND = os.environ.get("E2E_SERVER", "plotwire").strip().lower()
if SERVER_KIND not in ("plotwire", "bokeh"):
    raise RuntimeError(f"E2E_SERVER must be 'plotwire' or 'bokeh', not {SERVER_KIND!r}")

PLOTWIRE_BIN = Path(os.environ.get("PLOTWIRE_BIN", str(REPO_ROOT / "target" / "debug" / "plotwire")))

# Default app path used by the tests. plotwire serves any app path; under
# `bokeh serve` only the apps in tests/e2e/apps exist (target, streaming).
APP = "target"

# bokeh.client nests one coroutine level per received message (protocol doc §11).
# LiveSession unwinds its loop regularly, this is only a safety margin.
RECURSION_LIMIT = 20000
if sys.getrecursionlimit() < RECURSION_LIMIT:
    sys.setrecursionlimit(RECURSION_LIMIT)


# ---------------------------------------------------------------------------
# generic waiting
# ---------------------------------------------------------------------------

class WaitTimeout(AssertionError):
    """A bounded wait ran out of time. An AssertionError so that pytest shows it as a failure."""


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             desc: str = "condition", ignore_errors: bool = False) -> Any:
    """Poll ``predicate`` until it returns a truthy value (which is returned).

    Bounded both by ``timeout`` seconds and by an iteration cap. With
    ``ignore_errors`` exceptions raised by the predicate count as "not yet";
    the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    max_iterations = int(timeout / max(interval, 0.001)) + 10
    last_exc: BaseException | None = None
    for _ in range(max_iterations):
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001
            if not ignore_errors:
                raise
            last_exc = exc
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    extra = f"; last error: {last_exc!r}" if last_exc is not None else ""
    raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {desc}{extra}")


def wait_value(getter: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 10.0,
               interval: float = 0.05, desc: str = "value", ignore_errors: bool = False) -> Any:
    """Poll ``getter()`` until ``check(value)`` holds; return the value.

    On timeout the error names the last value seen, which makes failures readable.
    """
    deadline = time.monotonic() + timeout
    max_iterations = int(timeout / max(interval, 0.001)) + 10
    last: Any = "<never read>"
    last_exc: BaseException | None = None
    for _ in range(max_iterations):
        try:
            last = getter()
            last_exc = None
            if check(last):
                return last
        except Exception as exc:  # noqa: BLE001
            if not ignore_errors:
                raise
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    extra = f"; last error: {last_exc!r}" if last_exc is not None else ""
    raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {desc}; last value: {last!r}{extra}")


def wait_equal(getter: Callable[[], Any], expected: Any, timeout: float = 10.0,
               desc: str = "value", ignore_errors: bool = False) -> Any:
    return wait_value(getter, lambda v: v == expected, timeout=timeout,
                      desc=f"{desc} == {expected!r}", ignore_errors=ignore_errors)


def run_bounded(fn: Callable[[], Any], timeout: float, desc: str) -> Any:
    """Run a blocking call (e.g. ``push_session``) in a daemon thread; fail if it
    does not finish within ``timeout`` seconds instead of hanging the test run."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"bounded:{desc}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise WaitTimeout(f"{desc} did not finish within {timeout:.1f}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------------------
# ports and HTTP
# ---------------------------------------------------------------------------

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None,
             context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET without raising on HTTP errors: (status, headers, body). ``context`` verifies
    an https server."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def tcp_connectable(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# the server under test
# ---------------------------------------------------------------------------

class ServerProcess:
    """One server process (plotwire or bokeh serve) on 127.0.0.1:<port>.

    ``extra_args`` use plotwire's option names, which are the same as
    ``bokeh serve``'s. ``secret_key`` is passed as PLOTWIRE_SECRET_KEY (plotwire)
    or BOKEH_SECRET_KEY (bokeh). With ``--ssl-certfile`` among them the URLs are
    https:// and wss://, and the readiness checks trust that certificate.
    """

    def __init__(self, kind: str, log_path: Path, extra_args: Iterable[str] = (),
                 secret_key: str | None = None, port: int | None = None) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.extra_args = [str(a) for a in extra_args]
        self.secret_key = secret_key
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        # Each plotwire server has its own data dir, kept across stop() and start() so
        # that a restart finds what was stored.
        self.data_dir: str | None = None
        self._log_file = None
        self.cmd: list[str] = []
        self.ssl_context: ssl.SSLContext | None = None
        if "--ssl-certfile" in self.extra_args:
            certfile = self.extra_args[self.extra_args.index("--ssl-certfile") + 1]
            self.ssl_context = ssl.create_default_context(cafile=certfile)

    # -- urls ---------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def app_url(self, app: str = APP) -> str:
        return f"{self.base_url}/{app}"

    def page_url(self, session_id: str, app: str = APP) -> str:
        return f"{self.base_url}/{app}/?bokeh-session-id={session_id}"

    def ws_url(self, app: str = APP) -> str:
        ws = "wss" if self.ssl_context is not None else "ws"
        return f"{ws}://127.0.0.1:{self.port}/{app}/ws"

    # -- lifecycle ----------------------------------------------------------
    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        log_level = os.environ.get("E2E_LOG_LEVEL", "debug")
        level_args = [] if log_level in ("", "none") else ["--log-level", log_level]
        if self.kind == "plotwire":
            if not PLOTWIRE_BIN.exists():
                raise RuntimeError(
                    f"plotwire binary not found at {PLOTWIRE_BIN}; build it (cargo build) or set "
                    f"PLOTWIRE_BIN, or run the suite against the reference server with E2E_SERVER=bokeh")
            if self.data_dir is None and "--data-dir" not in self.extra_args:
                self.data_dir = tempfile.mkdtemp(prefix="plotwire-e2e-data-")
            data_args = [] if "--data-dir" in self.extra_args else ["--data-dir", self.data_dir]
            cmd = [str(PLOTWIRE_BIN), "serve", "--address", "127.0.0.1", "--port", str(self.port),
                   *data_args, *level_args, *self.extra_args]
            if self.secret_key is not None:
                env["PLOTWIRE_SECRET_KEY"] = self.secret_key
        else:
            apps = sorted(str(p) for p in APPS_DIR.glob("*.py"))
            cmd = [sys.executable, "-m", "bokeh", "serve", *apps,
                   "--address", "127.0.0.1", "--port", str(self.port),
                   "--allow-websocket-origin", f"127.0.0.1:{self.port}",
                   *level_args, *self.extra_args]
            env.pop("BOKEH_ALLOW_WS_ORIGIN", None)
            if self.secret_key is not None:
                env["BOKEH_SECRET_KEY"] = self.secret_key
        return cmd, env

    def start(self, timeout: float = 45.0) -> "ServerProcess":
        cmd, env = self._command()
        self.cmd = cmd
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"$ {shlex.join(cmd)}\n".encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=str(REPO_ROOT),
                                     start_new_session=True)
        try:
            wait_for(self._ready, timeout=timeout, interval=0.1,
                     desc=f"{self.kind} server on port {self.port} to become ready")
        except BaseException:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"server did not start: {shlex.join(cmd)}\n--- log tail ---\n{tail}")
        return self

    def _ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"server process exited early with code {self.proc and self.proc.returncode}")
        if not tcp_connectable(self.port):
            return False
        try:
            status, _, _ = http_get(self._health_url(), timeout=2.0, context=self.ssl_context)
        except OSError:
            return False
        return status == 200

    def _health_url(self) -> str:
        if self.kind == "plotwire":
            return f"{self.base_url}/healthz"
        return f"{self.base_url}/{APP}/metadata"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """The process runs and answers its readiness URL with 200."""
        if not self.alive():
            return False
        try:
            status, _, _ = http_get(self._health_url(), timeout=5.0, context=self.ssl_context)
        except OSError:
            return False
        return status == 200

    def log_tail(self, lines: int = 80) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError as exc:
            return f"<no log: {exc}>"
        text = data.decode("utf-8", "replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __repr__(self) -> str:
        return f"<ServerProcess {self.kind} port={self.port} log={self.log_path}>"


# ---------------------------------------------------------------------------
# bokeh.client sessions
# ---------------------------------------------------------------------------

def _disconnected(session: Any) -> bool:
    from bokeh.client.states import DISCONNECTED
    return isinstance(session._connection._state, DISCONNECTED)


def connect_push(doc: Any, url: str, session_id: str, timeout: float = 30.0) -> Any:
    """``push_session`` with a deadline."""
    from bokeh.client import push_session
    session = run_bounded(lambda: push_session(doc, session_id=session_id, url=url),
                          timeout, f"push_session({session_id!r})")
    assert session.connected, f"push_session({session_id!r}) is not connected: {session.error_reason} {session.error_detail}"
    return session


def connect_pull(url: str, session_id: str, timeout: float = 30.0) -> Any:
    """``pull_session`` with a deadline."""
    from bokeh.client import pull_session
    session = run_bounded(lambda: pull_session(session_id=session_id, url=url),
                          timeout, f"pull_session({session_id!r})")
    assert session.connected, f"pull_session({session_id!r}) is not connected: {session.error_reason} {session.error_detail}"
    return session


def close_idle_session(session: Any, why: str = "test done", timeout: float = 5.0) -> None:
    """Close a session whose IOLoop is *not* running in another thread, and run its
    loop (bounded) until the disconnect has been processed."""
    conn = session._connection
    loop = conn.io_loop
    if _disconnected(session):
        return
    guard = loop.call_later(timeout, loop.stop)
    try:
        loop.add_callback(session.close, why)
        conn._loop_until(lambda: _disconnected(session))
    finally:
        loop.remove_timeout(guard)


def pull_snapshot(url: str, session_id: str, extract: Callable[[Any], Any], timeout: float = 30.0) -> Any:
    """Fresh ``pull_session``; return ``extract(document)``; close the session."""
    session = connect_pull(url, session_id, timeout=timeout)
    try:
        return extract(session.document)
    finally:
        run_bounded(lambda: close_idle_session(session, "snapshot done"), 10.0, "closing snapshot session")


class LiveSession:
    """A connected ``bokeh.client`` session whose IOLoop runs in a background thread,
    so that incoming patches are applied and the document's Python callbacks
    (``on_change``, ``on_event``, periodic callbacks) run.

    Protocol doc §11: Bokeh 3 only offers the private ``_loop_until_closed``; its
    receive loop nests one coroutine level per received message. This pump uses the
    same private ``_loop_until`` machinery but stops and restarts the loop every
    ``UNWIND_EVERY`` messages, which unwinds the nesting, so a session can stay
    open for any number of messages.

    All reads and writes of ``doc`` from the test thread must go through
    :meth:`call`, which runs a function on the loop thread.
    """

    UNWIND_EVERY = 50

    def __init__(self, session: Any, name: str) -> None:
        self.session = session
        self.name = name
        self.doc = session.document
        self.loop = session._connection.io_loop
        self.patch_errors: list[BaseException] = []
        self.callback_errors: list[BaseException] = []
        self.pump_error: BaseException | None = None
        self._halt = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        original = session._handle_patch

        def handle_patch(message: Any) -> None:
            try:
                original(message)
            except BaseException as exc:
                # bokeh.client's loop dies silently on such errors (§5.3); remember them
                self.patch_errors.append(exc)
                raise

        session._handle_patch = handle_patch

    # -- running --------------------------------------------------------------
    def start(self) -> "LiveSession":
        old = threading.stack_size()
        threading.stack_size(64 * 1024 * 1024)
        try:
            self._thread = threading.Thread(target=self._pump, name=f"bokeh-client:{self.name}", daemon=True)
            self._thread.start()
        finally:
            threading.stack_size(old)
        return self

    def _pump(self) -> None:
        conn = self.session._connection
        try:
            for _ in range(10_000_000):
                if self._halt or _disconnected(self.session):
                    break
                counter = [0]

                def stop_now() -> bool:
                    counter[0] += 1
                    return self._halt or _disconnected(self.session) or counter[0] > self.UNWIND_EVERY

                conn._loop_until(stop_now)
        except BaseException as exc:  # noqa: BLE001
            self.pump_error = exc
        finally:
            self._done.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return not _disconnected(self.session)

    # -- interacting with the document ----------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` on the session's loop thread and return its result."""
        if not self.running:
            raise RuntimeError(f"{self.name}: client loop is not running (pump error: {self.pump_error!r})")
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as exc:  # noqa: BLE001
                box["error"] = exc
            finally:
                done.set()

        self.loop.add_callback(run)
        if not done.wait(timeout):
            raise WaitTimeout(f"{self.name}: call {getattr(fn, '__name__', fn)!r} did not run within {timeout}s "
                              f"(patch errors: {self.patch_errors!r})")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def get(self, fn: Callable[[Any], Any], timeout: float = 10.0) -> Any:
        """``fn(doc)`` evaluated on the loop thread."""
        return self.call(fn, self.doc, timeout=timeout)

    def wait_doc(self, fn: Callable[[Any], Any], check: Callable[[Any], bool], timeout: float = 10.0,
                 desc: str = "document state") -> Any:
        """Poll ``fn(doc)`` (on the loop thread) until ``check`` holds."""
        def getter() -> Any:
            if self.patch_errors:
                raise AssertionError(f"{self.name}: applying a relayed patch failed: {self.patch_errors[0]!r}")
            return self.get(fn)
        return wait_value(getter, check, timeout=timeout, desc=f"{self.name}: {desc}")

    # -- closing ---------------------------------------------------------------
    def close(self, why: str = "test done", timeout: float = 5.0) -> bool:
        """Close the websocket and stop the thread. True if it ended cleanly."""
        if self._thread is None:
            return True
        self._halt = True
        if self._thread.is_alive():
            self.loop.add_callback(self.session.close, why)
            self._thread.join(timeout)
        clean = not self._thread.is_alive()
        if not clean:
            # the message loop died (or the server never answered the close): stop the loop
            self.loop.add_callback(self.loop.stop)
            self._thread.join(timeout)
        return clean


class CallbackRecorder:
    """Thread-safe record of callback invocations, for on_change / on_event callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Any] = []

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self.items.append(args[0] if len(args) == 1 else args)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.items)

    def wait(self, check: Callable[[list[Any]], bool], timeout: float = 10.0, desc: str = "callback") -> list[Any]:
        return wait_value(self.snapshot, check, timeout=timeout, desc=desc)


# ---------------------------------------------------------------------------
# documents used by the tests (mirrors the fixtures' apps/clients.py)
# ---------------------------------------------------------------------------

INITIAL_X = [0, 1, 2, 3, 4]
INITIAL_Y = [0, 1, 4, 9, 16]


def build_plot_doc(title: str = "pushed doc", slider_cb: Callable | None = None,
                   button_cb: Callable | None = None, data: dict | None = None,
                   fields: tuple[str, str] = ("x", "y"), plot_events: dict | None = None) -> Any:
    """column(figure(line + scatter on CDS "src"), Slider "slider", Button "button").

    ``button_cb`` (ButtonClick) and ``plot_events`` ({event class: callback}, on the
    figure) are registered before the push, so the event names are in the models'
    ``subscribed_events`` and BokehJS publishes those events.

    bokeh.client quirk: ``on_event`` must be called *before* the model joins a Document.
    Called later, ``subscribed_events`` is still updated (and synced), but the document's
    dispatch table is not, so the Python callback never runs.
    """
    from bokeh.document import Document
    from bokeh.events import ButtonClick
    from bokeh.layouts import column
    from bokeh.models import Button, ColumnDataSource, Slider
    from bokeh.plotting import figure

    doc = Document()
    doc.title = title
    src = ColumnDataSource(data=data if data is not None else dict(x=list(INITIAL_X), y=list(INITIAL_Y)), name="src")
    plot = figure(title="pushed figure", width=500, height=300, name="plot")
    plot.line(fields[0], fields[1], source=src, name="line")
    plot.scatter(fields[0], fields[1], source=src, size=8, name="scatter")
    slider = Slider(start=0, end=10, value=1, step=1, title="slider", name="slider")
    button = Button(label="Click me", name="button")
    if slider_cb is not None:
        slider.on_change("value", slider_cb)
    if button_cb is not None:
        button.on_event(ButtonClick, button_cb)
    for event_class, cb in (plot_events or {}).items():
        plot.on_event(event_class, cb)
    doc.add_root(column(plot, slider, button, name="layout"))
    return doc


def data_of(doc: Any, name: str = "src") -> dict[str, list]:
    """Plain-list copy of a ColumnDataSource's data (numpy arrays converted)."""
    src = doc.get_model_by_name(name)
    return {k: (v.tolist() if hasattr(v, "tolist") else list(v)) for k, v in src.data.items()}


def unique_id(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**12}"


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------------------
# raw Bokeh protocol client (tornado websocket), for malformed input
# ---------------------------------------------------------------------------

class HandshakeRejected(Exception):
    """The server answered the websocket upgrade with an HTTP error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"HTTP {code} {message}")
        self.code = code


class RawClient:
    """A minimal synchronous Bokeh protocol client over a tornado websocket, with its own
    asyncio loop (used from the test thread only). Every operation has a timeout.

    ``recv_message`` returns ``{"header", "metadata", "content", "buffers"}`` or ``None``
    once the server has closed the connection (then ``close_code``/``close_reason`` are
    set; ``close_code`` is None for a close frame without a status code).
    """

    def __init__(self) -> None:
        import asyncio
        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.conn: Any = None
        self.closed = False
        self._counter = 0

    def _run(self, make: Callable[[], Any], timeout: float) -> Any:
        """Run ``await make()`` on this client's loop; ``make`` is called inside the loop so
        that tornado futures are created on it."""
        async def runner() -> Any:
            return await self._asyncio.wait_for(make(), timeout)
        return self.loop.run_until_complete(runner())

    @classmethod
    def connect(cls, ws_url: str, token: str | None, *, origin: str | None = None,
                subprotocols: list[str] | None = None, headers: dict[str, str] | None = None,
                timeout: float = 10.0, max_message_size: int = 256 * 1024 * 1024) -> "RawClient":
        from tornado.httpclient import HTTPClientError, HTTPRequest
        from tornado.websocket import websocket_connect

        client = cls()
        hdrs = dict(headers or {})
        if origin is not None:
            hdrs["Origin"] = origin
        protos = subprotocols if subprotocols is not None else ["bokeh", token]

        async def go() -> Any:
            req = HTTPRequest(ws_url, headers=hdrs, connect_timeout=timeout, request_timeout=timeout)
            return await websocket_connect(req, subprotocols=protos, max_message_size=max_message_size)

        try:
            client.conn = client._run(go, timeout + 1)
        except HTTPClientError as exc:
            client.loop.close()
            raise HandshakeRejected(exc.code, exc.message or "") from None
        except BaseException:
            client.loop.close()
            raise
        return client

    # -- raw fragments ------------------------------------------------------------
    @property
    def selected_subprotocol(self) -> str | None:
        return self.conn.selected_subprotocol

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code

    @property
    def close_reason(self) -> str | None:
        return self.conn.close_reason

    def send_text(self, text: str) -> None:
        self._send(text, False)

    def send_binary(self, data: bytes) -> None:
        self._send(data, True)

    def _send(self, data: Any, binary: bool) -> None:
        from tornado.websocket import WebSocketClosedError

        async def go() -> None:
            try:
                await self.conn.write_message(data, binary=binary)
            except WebSocketClosedError:
                self.closed = True
        self._run(go, 10.0)

    def recv_fragment(self, timeout: float = 5.0) -> str | bytes | None:
        """Next fragment, or None when the connection is closed. Raises TimeoutError."""
        if self.closed:
            return None
        frag = self._run(self.conn.read_message, timeout)
        if frag is None:
            self.closed = True
        return frag

    # -- Bokeh messages --------------------------------------------------------------
    def next_msgid(self) -> str:
        self._counter += 1
        return f"raw{self._counter}"

    def send_message(self, msgtype: str, content: Any, buffers: list[tuple[str, bytes]] | None = None,
                     msgid: str | None = None) -> str:
        msgid = msgid or self.next_msgid()
        header: dict[str, Any] = {"msgid": msgid, "msgtype": msgtype}
        if buffers:
            header["num_buffers"] = len(buffers)
        self.send_text(json.dumps(header))
        self.send_text("{}")
        self.send_text(json.dumps(content, separators=(",", ":")))
        for buf_id, payload in buffers or []:
            self.send_text(json.dumps({"id": buf_id}))
            self.send_binary(payload)
        return msgid

    def recv_message(self, timeout: float = 5.0) -> dict | None:
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.01, deadline - time.monotonic())

        header_text = self.recv_fragment(left())
        if header_text is None:
            return None
        if not isinstance(header_text, str):
            raise AssertionError(f"server sent a binary fragment where a header was expected: {header_text[:50]!r}")
        header = json.loads(header_text)
        metadata = self.recv_fragment(left())
        content = self.recv_fragment(left())
        if metadata is None or content is None:
            raise AssertionError(f"connection closed in the middle of a message after header {header}")
        buffers = {}
        for _ in range(int(header.get("num_buffers", 0) or 0)):
            bh = self.recv_fragment(left())
            payload = self.recv_fragment(left())
            if bh is None or payload is None:
                raise AssertionError(f"connection closed in the middle of the buffers of {header}")
            buffers[json.loads(bh)["id"]] = payload
        return {"header": header, "metadata": json.loads(metadata), "content": json.loads(content), "buffers": buffers}

    def expect_ack(self, timeout: float = 10.0) -> dict:
        msg = self.recv_message(timeout)
        assert msg is not None, f"connection closed before ACK (code {self.close_code}, reason {self.close_reason!r})"
        assert msg["header"]["msgtype"] == "ACK", f"first message is not ACK: {msg['header']}"
        return msg

    def wait_reply(self, reqid: str, timeout: float = 10.0) -> dict | None:
        """The reply (OK/ERROR/...-REPLY) whose reqid is ``reqid``; other messages (relayed
        PATCH-DOCs) are skipped. None if the connection closes first."""
        deadline = time.monotonic() + timeout
        for _ in range(10_000):
            msg = self.recv_message(max(0.01, deadline - time.monotonic()))
            if msg is None:
                return None
            if msg["header"].get("reqid") == reqid:
                return msg
        raise AssertionError("too many unrelated messages")

    def request(self, msgtype: str, content: Any, buffers: list[tuple[str, bytes]] | None = None,
                timeout: float = 10.0) -> dict | None:
        return self.wait_reply(self.send_message(msgtype, content, buffers), timeout)

    def wait_closed(self, timeout: float = 5.0) -> list[Any]:
        """Read until the server closes; return everything received meanwhile."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            frag = self.recv_fragment(max(0.01, deadline - time.monotonic()))
            if frag is None:
                return got
            got.append(frag)
        raise AssertionError("server kept sending")

    def close(self) -> None:
        try:
            if self.conn is not None and not self.closed:
                self.conn.close(1000, "raw client done")
                try:
                    self.wait_closed(2.0)
                except Exception:  # noqa: BLE001
                    pass
        finally:
            if not self.loop.is_closed():
                self.loop.close()
