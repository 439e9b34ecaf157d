"""BokehJS reconnects, server restarts and token expiry, with binary (numpy) columns.

Unmodified BokehJS 3.9.2 in Chromium against a signed plotwire server whose page tokens
expire after ``TOKEN_EXPIRATION`` seconds; the producer is ``bokeh.client`` (push_session).

What BokehJS 3.9.2 does (read from the npm package @bokeh/bokehjs@3.9.2, build/js/lib/):
- client/connection.js ``_on_close``: every unexpected close, whatever its code or reason,
  schedules a reconnect with the *same* token, the one embedded in the page at load (there is
  no other source of tokens). Attempts at +0, +2, +4, +8, +16 s; after the 5th failure
  models/ui/notifications.js shows "Client connection was lost permanently.". A failed *first*
  connect is never retried.
- after the ACK, ``_repull_session_doc`` re-pulls and calls ``document.replace_with_json``,
  which decodes the reply *without* its binary buffers: a buffer ref fails with
  "buffer for id=... not found" and the page keeps its stale document. Inline bytes
  (``{"type": "bytes", "data": "<base64>"}``) are always gunzipped, so they must be
  gzip + standard, padded base64 (core/util/buffer.js ``base64_to_buffer``).
- the protocol Receiver is per ClientConnection and survives reconnects: a socket that ended
  in the middle of a message leaves the next socket unusable.

Every test here fails on main as of 0b221da; each docstring names the failing assertion.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Any, Callable

import numpy as np
import pytest

from support import build_plot_doc, http_get, pull_snapshot, wait_for, wait_value

pytestmark = pytest.mark.plotwire_only

SECRET = "e2e-reconnect-secret-0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN_EXPIRATION = 3          # s, --session-token-expiration (page tokens)
ROWS = 20_000                 # rows kept in the source (every stream uses rollover=ROWS)
OUTBOX_MAX_BYTES = 1 << 20    # 1 MiB
STALL_SECONDS = 8.0           # how long the page's main thread is blocked
RENDER_TIMEOUT_MS = 20_000
SERVER_ARGS = ["--session-ids", "signed",
               "--session-token-expiration", str(TOKEN_EXPIRATION),
               "--outbox-max-bytes", str(OUTBOX_MAX_BYTES)]
COLUMNS = {"x": np.float64, "y": np.float64, "n": np.int32}
JS_ARRAY_TYPE = {np.dtype(np.float64): "Float64Array", np.dtype(np.int32): "Int32Array"}

# ---------------------------------------------------------------------------
# in-page instrumentation
# ---------------------------------------------------------------------------

# Records every websocket the page creates: its token, whether it opened, how it closed.
WS_LIFECYCLE_RECORDER = """
(() => {
  const Orig = window.WebSocket;
  window.__e2e_ws = [];
  class RecordedWebSocket extends Orig {
    constructor(url, protocols) {
      super(url, protocols);
      const rec = {url: String(url), token: Array.isArray(protocols) ? protocols[1] : null,
                   created: Date.now(), opened: null, closed: null, code: null, reason: null};
      window.__e2e_ws.push(rec);
      this.addEventListener("open", () => { rec.opened = Date.now(); });
      this.addEventListener("close", (e) => { rec.closed = Date.now(); rec.code = e.code; rec.reason = e.reason; });
    }
  }
  window.WebSocket = RecordedWebSocket;
})();
"""

JS_WS = "() => window.__e2e_ws ? window.__e2e_ws.map(r => Object.assign({}, r)) : []"

# All columns of the ColumnDataSource "src" of the page's document: {name: {type, values}}.
JS_SOURCE = """() => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const src = docs[0].get_model_by_name("src");
    if (src == null) return null;
    const data = src.data;
    const out = {};
    const entries = data instanceof Map ? Array.from(data.entries()) : Object.entries(data);
    for (const [k, v] of entries) {
        // BokehJS holds typed arrays as (minified) ndarray subclasses: use the toStringTag
        out[k] = {type: v == null ? null : (Array.isArray(v) ? "Array" : v[Symbol.toStringTag]), values: Array.from(v)};
    }
    return out;
}"""

JS_SOURCE_LENGTH = """() => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const src = docs[0].get_model_by_name("src");
    return src == null ? null : src.get_length();
}"""

JS_ROOTS = """() => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    return docs[0].roots().map(r => r.name);
}"""

# BokehJS's connection notifications (models/ui/notifications.js): a div appended to <body>
# whose open shadow root holds div.entries > div.error / div.success.
JS_NOTIFICATIONS = """() => {
    const out = [];
    for (const el of document.body.children) {
        const root = el.shadowRoot;
        if (root == null) continue;
        for (const e of root.querySelectorAll(".entries > div")) out.push({cls: e.className, text: e.textContent});
    }
    return out;
}"""

# Blocks the page's main thread for `ms` milliseconds, starting right after this returns. While
# it runs BokehJS reads nothing from its websocket, so the server's writes back up.
JS_STALL = """(ms) => {
    setTimeout(() => { const end = performance.now() + ms; while (performance.now() < end) {} }, 0);
    return true;
}"""


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def token_payload(token: str) -> dict:
    first = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))


@pytest.fixture
def client_tokens(monkeypatch):
    """bokeh.client tokens signed with SECRET. ``client_tokens["expiration"]`` (seconds,
    default 300 like bokeh.client) applies to the tokens of sessions connected afterwards.

    bokeh.client has no option for either: ``ClientSession.token`` calls
    ``generate_jwt_token(self.id)``, whose ``secret_key``/``signed`` defaults were read from
    the environment at import time and whose ``expiration`` is fixed at 300 s."""
    import bokeh.client.session as client_session
    from bokeh.util.token import generate_jwt_token

    state = {"expiration": 300, "issued": []}

    def signed_token(session_id: str, *args: Any, **kwargs: Any) -> str:
        tok = generate_jwt_token(session_id, secret_key=SECRET.encode(), signed=True,
                                 expiration=state["expiration"])
        state["issued"].append(tok)
        return tok

    monkeypatch.setattr(client_session, "generate_jwt_token", signed_token)
    return state


def signed_session_id() -> str:
    from bokeh.util.token import generate_session_id
    return generate_session_id(secret_key=SECRET.encode(), signed=True)


def numpy_data(start: int, rows: int) -> dict[str, np.ndarray]:
    i = np.arange(start, start + rows)
    return {"x": i.astype(np.float64) * 0.5,
            "y": np.sin(i * 0.001).astype(np.float64),
            "n": (i % 1_000_003).astype(np.int32)}


class NumpyProducer:
    """A pushed document (figure + "src" with float64/int32 numpy columns) whose rows are
    numbered; ``stream`` appends the next rows with rollover=ROWS."""

    def __init__(self, clients, server) -> None:
        self.sid = signed_session_id()
        self.url = server.app_url()
        self.next_row = ROWS
        doc = build_plot_doc(title="reconnect doc", data=numpy_data(0, ROWS))
        self.live = clients.push(doc, self.url, self.sid, name="numpy-producer")

    def stream(self, messages: int, rows: int) -> None:
        first = self.next_row
        self.next_row += messages * rows

        def go() -> None:
            src = self.live.doc.get_model_by_name("src")
            for k in range(messages):
                src.stream(numpy_data(first + k * rows, rows), rollover=ROWS)
        self.live.call(go, timeout=60)

    def server_data(self) -> dict[str, np.ndarray]:
        """The server's copy, from a fresh pull_session."""
        def extract(doc: Any) -> dict[str, np.ndarray]:
            return {k: np.asarray(v) for k, v in doc.get_model_by_name("src").data.items()}
        return pull_snapshot(self.url, self.sid, extract)


def page_url(server, sid: str) -> str:
    return server.page_url(sid)


JS_HAS_DOC = "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].get_model_by_name('src') != null"


def open_page(bp, url: str) -> None:
    """Load a page and wait until BokehJS has the pushed document. Fails fast (AssertionError)
    when the page's websocket closes before that: BokehJS never retries a failed first connect."""
    bp.page.add_init_script(WS_LIFECYCLE_RECORDER)
    bp.page.goto(url, wait_until="load", timeout=RENDER_TIMEOUT_MS)
    bp.page.wait_for_function(
        f"() => ({JS_HAS_DOC})() || (window.__e2e_ws && window.__e2e_ws.length > 0 && "
        "window.__e2e_ws.every(w => w.closed != null))", timeout=RENDER_TIMEOUT_MS)
    if not bp.page.evaluate(JS_HAS_DOC):
        raise AssertionError(f"the page renders: its websocket closed before BokehJS got the document\n"
                             f"websockets: {websockets(bp)}\nconsole errors: {bp.console_errors}")
    bp.page.locator("canvas").first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)


def websockets(bp) -> list[dict]:
    return bp.page.evaluate(JS_WS)


def console_matches(bp, needle: str) -> list[str]:
    return [line for line in bp.log if needle in line]


def compare_sources(page_src: dict | None, server_src: dict[str, np.ndarray]) -> list[str]:
    """Differences between the page's "src" columns and the server's (empty list: equal)."""
    if page_src is None:
        return ["the page has no source 'src'"]
    problems = []
    if sorted(page_src) != sorted(server_src):
        problems.append(f"columns differ: page {sorted(page_src)}, server {sorted(server_src)}")
    for name, want in server_src.items():
        got = page_src.get(name)
        if got is None:
            continue
        expected_type = JS_ARRAY_TYPE.get(want.dtype)
        if expected_type is not None and got["type"] != expected_type:
            problems.append(f"{name}: page holds a {got['type']}, server a {want.dtype} array")
        values = np.asarray(got["values"], dtype=want.dtype)
        if values.shape != want.shape:
            problems.append(f"{name}: page has {values.shape[0]} rows, server {want.shape[0]} "
                            f"(page first/last {values[:1]}/{values[-1:]}, server {want[:1]}/{want[-1:]})")
        elif not np.array_equal(values, want):
            bad = np.flatnonzero(values != want)
            problems.append(f"{name}: {bad.size} values differ, first at row {bad[0]}: "
                            f"page {values[bad[0]]!r}, server {want[bad[0]]!r}")
    return problems


def wait_token_expired(token: str, limit: float) -> float:
    """Wait (at most ``limit`` s) until ``token`` is expired by the server's rule
    (now >= session_expiry, integer seconds); return its expiry."""
    expiry = token_payload(token)["session_expiry"]
    wait_for(lambda: int(time.time()) >= expiry + 1, timeout=limit, interval=0.1,
             desc=f"token expiry {expiry} (now {int(time.time())})")
    return expiry


# ---------------------------------------------------------------------------
# 1. the server closes a page that fell behind (outbox overflow); it must resync
# ---------------------------------------------------------------------------

# BokehJS bug, not the server's: while it reconnects, document changes (the ranges BokehJS
# sends back after rendering the patches it had queued) go to ClientConnection.send, which
# only checks `socket != null`, so WebSocket.send throws on the CONNECTING socket.
BOKEHJS_SEND_WHILE_CONNECTING = "Still in CONNECTING state"


def overflow_logged(srv) -> bool:
    """plotwire's warning "viewer too slow: outbox full, ..." is in the server log."""
    return "too slow" in srv.log_tail(400)


def burst(messages: int, rows: int) -> Callable[[NumpyProducer, Any], None]:
    """As fast as bokeh.client sends them: ``messages`` streams of ``rows`` rows."""
    return lambda producer, srv: producer.stream(messages, rows)


def paced_until_overflow(rows: int, interval: float, max_messages: int) -> Callable[[NumpyProducer, Any], None]:
    """One stream of ``rows`` rows every ``interval`` s, slow enough for the server's writer
    to keep up, until the server logs the overflow: the buffers to the stalled page fill first,
    so when the outbox overflows the writer is blocked *inside* a message."""
    def run(producer: NumpyProducer, srv: Any) -> None:
        for _ in range(max_messages):
            producer.stream(1, rows)
            if overflow_logged(srv):
                return
            time.sleep(interval)
    return run


def overflow_then_resync(srv, producer: NumpyProducer, bp, make_overflow: Callable[[NumpyProducer, Any], None]) -> None:
    """Load the page, let its token expire, block its main thread while ``make_overflow``
    streams, until the server closes it for outbox overflow; then assert that the page
    reconnected and holds exactly the server's data, also after more streams."""
    loaded_at = time.time()
    open_page(bp, page_url(srv, producer.sid))
    assert bp.page.evaluate(JS_SOURCE_LENGTH) == ROWS
    first_ws = websockets(bp)
    assert len(first_ws) == 1 and first_ws[0]["opened"] and first_ws[0]["closed"] is None, first_ws
    page_token = first_ws[0]["token"]

    # let the page's token expire; a page token minted at load expires TOKEN_EXPIRATION s later
    time.sleep(max(0.0, loaded_at + TOKEN_EXPIRATION + 1.5 - time.time()))
    page_token_expired = int(time.time()) >= token_payload(page_token)["session_expiry"]

    # stall the page, overflow its outbox
    bp.page.evaluate(JS_STALL, int(STALL_SECONDS * 1000))
    stalled_at = time.monotonic()
    make_overflow(producer, srv)
    # informational only (plotwire's warn line "viewer too slow: outbox full ..."); the page-side
    # close below is what is asserted
    try:
        wait_for(lambda: overflow_logged(srv), timeout=STALL_SECONDS, interval=0.1,
                 desc="the server's overflow warning")
        overflow_after = f"{time.monotonic() - stalled_at:.1f}s"
    except AssertionError:
        overflow_after = "no overflow warning in the server log"

    # the page resumes, sees the close, reconnects (BokehJS: at once, with the same token)
    ws = wait_value(lambda: websockets(bp), lambda ws: len(ws) >= 2 and ws[0]["closed"] is not None
                    and any(w["opened"] and w["closed"] is None for w in ws[1:]),
                    timeout=STALL_SECONDS + 20, interval=0.2,
                    desc="the page reconnected (a new websocket open after the first one closed)")
    assert ws[0]["code"] in (1013, 1006), f"the overflowed socket's close: {ws[0]}"
    assert all(w["token"] == page_token for w in ws), "BokehJS reconnects with the page's token"

    # more data after the reconnect
    producer.stream(3, 7)
    last_n = (producer.next_row - 1) % 1_000_003
    server_src = wait_value(producer.server_data, lambda d: int(d["n"][-1]) == last_n, timeout=15, interval=0.3,
                            desc="the server to hold the rows streamed after the reconnect")
    assert all(len(v) == ROWS for v in server_src.values())

    try:
        wait_value(lambda: compare_sources(bp.page.evaluate(JS_SOURCE), server_src), lambda p: p == [],
                   timeout=15, interval=0.25, desc="page data == server data")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nbrowser errors: {bp.console_errors[:3]} {bp.page_errors[:3]}"
                             f"\nwebsockets: {websockets(bp)}") from None
    assert not console_matches(bp, "not found"), "BokehJS failed to decode the re-pulled document"
    assert console_matches(bp, "Reconnected websocket"), "BokehJS's connect() resolved (ACK + re-pull)"
    other_errors = [e for e in bp.page_errors if BOKEHJS_SEND_WHILE_CONNECTING not in e]
    assert not other_errors, other_errors
    # the reconnect really exercised an expired token (pages get fresh, short-lived tokens)
    assert page_token_expired, (
        f"the page's token {token_payload(page_token)} was not expired at the overflow (page loaded at "
        f"{int(loaded_at)}, --session-token-expiration {TOKEN_EXPIRATION}); the page should get a token minted at load")
    print(f"overflow: {overflow_after} after the stall began; websockets: {websockets(bp)}")


def test_overflow_close_resyncs_binary_columns_after_token_expiry(server_factory, client_tokens, clients,
                                                                   browser_page):
    """Outbox overflow on a page whose token has expired; the page must reconnect and end up
    with exactly the server's data (numpy columns), with no decode error.

    How the overflow is made: the page's main thread is blocked by a busy loop
    (STALL_SECONDS) while the producer streams 80 x 10k numpy rows (~16 MB on the wire).
    Chromium stops reading the socket, the TCP buffers fill, the server's writer blocks and
    the 1 MiB outbox overflows [measured: 0.2 s into the stall]; the server closes the page's
    socket, which the page sees when it resumes: 1013 "viewer too slow: reconnect to resync",
    or 1006 when the close frame did not get through.

    On main (0b221da) this FAILS at "page data == server data", in one of two ways (timing):
    - the close came at a message boundary (page sees 1013): the page embeds the *pusher's*
      token (300 s, still valid) instead of a fresh page token, so the reconnect is accepted,
      but the re-pull reply carries the numpy columns as binary buffers and BokehJS's
      ``replace_with_json`` drops them: "Failed to repull session Error: buffer for id=0 not
      found". The page keeps its stale document (it misses the rows streamed while it was
      stalled) and applies later streams on top of it;
    - the close cut a message (page sees 1006): see the next test, which forces that case.
    With page tokens minted at load (TOKEN_EXPIRATION s) but no reconnect grace it would fail
    at "the page reconnected" instead: BokehJS reconnects with the page's original token.
    """
    srv = server_factory(SERVER_ARGS, secret_key=SECRET)
    producer = NumpyProducer(clients, srv)
    overflow_then_resync(srv, producer, browser_page, burst(80, 10_000))


def test_overflow_close_in_the_middle_of_a_message_still_resyncs(server_factory, client_tokens, clients,
                                                                  browser_page):
    """Same as above, but the streams are paced (one 1 MB stream every 50 ms until the server
    logs the overflow), so the buffers between the server and the stalled page fill before the
    outbox does: when it overflows, the server's writer is blocked *inside* a message.

    BokehJS keeps one protocol Receiver per ClientConnection and never resets it on reconnect
    (protocol/receiver.js, client/connection.js:44): if the old socket ended mid-message, the
    new socket's ACK is fed to the old partial message ("Expected binary fragment but received
    text fragment"), BokehJS tries socket.close(1002), which Chromium refuses
    (InvalidAccessError), and the new socket stays open but dead. So the server must finish the
    message in flight before it closes a connection.

    On main (0b221da) this FAILS at "page data == server data" [3 of 3 runs]: the
    page shows "Lost websocket 0 connection, 1006 ()", reconnects, then logs "Closing connection: Error:
    Expected binary fragment but received text fragment" plus an InvalidAccessError page error
    for every fragment, and keeps its stale document.
    """
    srv = server_factory(SERVER_ARGS, secret_key=SECRET)
    producer = NumpyProducer(clients, srv)
    overflow_then_resync(srv, producer, browser_page, paced_until_overflow(50_000, 0.05, 60))


# ---------------------------------------------------------------------------
# 2. the server restarts: the session is gone
# ---------------------------------------------------------------------------

def page_state(bp) -> dict:
    return {"notifications": bp.page.evaluate(JS_NOTIFICATIONS), "roots": bp.page.evaluate(JS_ROOTS),
            "rows": bp.page.evaluate(JS_SOURCE_LENGTH), "websockets": websockets(bp)}


def server_session_ids(srv) -> str:
    """The new server's index page (it lists the live sessions)."""
    status, _, body = http_get(srv.base_url + "/", timeout=5)
    assert status == 200, status
    return body.decode("utf-8", "replace")


def test_restart_page_shows_that_the_session_ended(server_factory, client_tokens, clients, browser_page):
    """plotwire is killed (SIGKILL) and a new one starts on the same port: the pushed session
    is gone and its producer with it. The page must not go on as if nothing happened.

    What an unmodified BokehJS 3.9.2 allows (notes in docs/bokehjs-reconnect.md §a): it ignores
    close codes and reasons, has no message that shows an error, and never drops its document
    by itself. A server can either refuse the reconnects, which after BokehJS's 5 attempts
    (+0, +2, +4, +8, +16 s) shows the red "Client connection was lost permanently." over the
    last data it had, a stale plot for 30 s and after; or accept the reconnect and answer the
    re-pull with another document, which replaces the page's. plotwire does the second with a
    document that says what happened: a browser asking for a session the server does not
    have lost it (a browser always loads its page, which creates the session, before it opens
    the websocket), so it gets one `Div` saying the session ended and to reload. This holds
    for a page whose token has expired too. Asserted: within 15 s of the kill the page's
    document is exactly that one Div, the plot and its data are gone.

    On main (0b221da) this FAILS: the page embeds the pusher's token (300 s, still valid), the
    new server accepts the reconnect and creates a new, empty session with the old id, and
    BokehJS replaces the plot by that empty document: a blank page and a green "Client connect
    was reestablished.", with nothing saying the data is gone for good.
    """
    srv = server_factory(SERVER_ARGS, secret_key=SECRET)
    producer = NumpyProducer(clients, srv)
    bp = browser_page
    loaded_at = time.time()
    open_page(bp, page_url(srv, producer.sid))
    roots_before = bp.page.evaluate(JS_ROOTS)
    assert roots_before and bp.page.evaluate(JS_SOURCE_LENGTH) == ROWS
    page_token = websockets(bp)[0]["token"]
    time.sleep(max(0.0, loaded_at + TOKEN_EXPIRATION + 1.5 - time.time()))
    page_token_expired = int(time.time()) >= token_payload(page_token)["session_expiry"]

    # crash, then a new server on the same port
    assert srv.proc is not None
    srv.proc.kill()
    srv.proc.wait(10)
    killed_at = time.monotonic()
    srv.stop()
    server_factory(SERVER_ARGS, secret_key=SECRET, port=srv.port)

    js_texts = "() => Bokeh.documents[0].roots().map(r => r.text === undefined ? null : String(r.text))"
    texts = wait_value(lambda: bp.page.evaluate(js_texts),
                       lambda t: any(x and "This session has ended" in x for x in t),
                       timeout=15, interval=0.25, desc="the page to say that its session ended")
    waited = time.monotonic() - killed_at
    assert len(texts) == 1, f"only the notice is left, got roots {texts}"
    assert bp.page.evaluate(JS_SOURCE_LENGTH) in (None, 0), "the old data is gone"
    assert page_token_expired, f"the page's token {token_payload(page_token)} was not expired at the kill"
    print(f"'session ended' shown {waited:.1f}s after the kill")


# ---------------------------------------------------------------------------
# 3. a page loaded after the pusher's token expired
# ---------------------------------------------------------------------------

def test_page_loaded_after_pusher_token_expired_renders_and_streams(server_factory, client_tokens, clients,
                                                                     browser_page):
    """The producer's bokeh.client token expires TOKEN_EXPIRATION s after its push (the
    server only checks expiry when a websocket opens, so the producer stays connected). A page
    loaded after that must render the pushed numpy data and receive new streams.

    On main (0b221da) this FAILS at "the page renders": the page embeds the session's
    *creator* token, i.e. the pusher's, already expired, so the page's websocket is closed at
    once without a status (1005) and BokehJS, whose first connect failed, never retries:
    "Failed to load Bokeh session ...: Error: Lost websocket connection, 1005 ()".
    """
    srv = server_factory(SERVER_ARGS, secret_key=SECRET)
    client_tokens["expiration"] = TOKEN_EXPIRATION
    producer = NumpyProducer(clients, srv)
    client_tokens["expiration"] = 300
    pusher_token = client_tokens["issued"][-1]
    assert token_payload(pusher_token)["session_id"] == producer.sid
    wait_token_expired(pusher_token, limit=TOKEN_EXPIRATION + 3)
    assert producer.live.connected

    bp = browser_page
    loaded_at = int(time.time())
    open_page(bp, page_url(srv, producer.sid))
    ws = websockets(bp)
    assert ws[0]["token"] != pusher_token
    assert token_payload(ws[0]["token"])["session_expiry"] >= loaded_at + TOKEN_EXPIRATION - 1, (
        "the page got a token minted at load")
    assert compare_sources(bp.page.evaluate(JS_SOURCE), producer.server_data()) == []

    producer.stream(2, 500)
    last_n = (producer.next_row - 1) % 1_000_003
    server_src = wait_value(producer.server_data, lambda d: int(d["n"][-1]) == last_n, timeout=15, interval=0.3,
                            desc="the server to hold the streamed rows")
    wait_value(lambda: compare_sources(bp.page.evaluate(JS_SOURCE), server_src), lambda p: p == [],
               timeout=15, interval=0.25, desc="page data == server data after streams")
    bp.assert_no_errors()
