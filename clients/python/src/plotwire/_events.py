"""Viewer events: the SSE parser, the :class:`Event` type and the background listener."""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._errors import PlotwireError, ProtocolError, http_error
from ._transport import RetryPolicy, Transport, USER_AGENT

log = logging.getLogger("plotwire")


@dataclass(frozen=True)
class SSEMessage:
    """One server-sent event as the parser dispatches it.

    Attributes:
        data: the ``data:`` lines joined with ``\\n``.
        event: the ``event:`` type (``"message"`` when there was none).
        id: the last event id seen so far on the stream (``None`` before any).
    """

    data: str
    event: str
    id: str | None


class SSEParser:
    """An incremental parser of ``text/event-stream`` (the WHATWG algorithm).

    Feed it the bytes as they arrive, split anywhere; it returns the events that are
    complete. Lines end with CRLF, LF or CR; ``:`` lines are comments; a blank line
    dispatches the event, if it has data.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        """Parse ``chunk``; return the events completed by it."""
        self._buffer += chunk
        out: list[SSEMessage] = []
        for line in self._lines():
            message = self._line(line)
            if message is not None:
                out.append(message)
        return out

    def _lines(self) -> Iterator[str]:
        buf = self._buffer
        start = 0
        while True:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                if cr + 1 == len(buf):
                    break  # a CR at the end may be the first half of a CRLF
                end, nxt = cr, cr + 2 if buf[cr + 1:cr + 2] == b"\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            line = buf[start:end]
            start = nxt
            if not self._started:
                self._started = True
                if line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
            yield line.decode("utf-8", "replace")
        self._buffer = buf[start:]

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEMessage | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEMessage("\n".join(data), event or "message", self.last_id)


@dataclass(frozen=True)
class Event:
    """Something a viewer did, as the server reports it to producers.

    Attributes:
        seq: the event's sequence number in its document (increasing, never repeated).
        doc: the document's name.
        view: the id of the view (the browser page, embed or pull) it happened in.
        kind: ``"change"`` (a property a viewer changed), ``"event"`` (a Bokeh UI event
            such as ``button_click``, ``tap``, ``rangesupdate``) or ``"view"`` (a view
            opened or closed).
        model_id: the id of the model concerned (``None`` for ``"view"`` events).
        model_name: its ``name`` (``None`` when it has none).
        model_type: its Bokeh type, e.g. ``"Slider"``.
        attr: for ``"change"``: the property that changed, e.g. ``"value"``.
        value: for ``"change"``: the new value.
        event: for ``"event"``: the UI event's name; for ``"view"``: ``"open"`` or ``"close"``.
        values: for ``"event"``: the event's values (e.g. ``x``/``y`` of a tap).
        source: for selection changes: ``{"id", "name"}`` of the selected source.
        raw: the event as the server sent it.
    """

    seq: int
    doc: str
    view: str | None
    kind: str
    model_id: str | None = None
    model_name: str | None = None
    model_type: str | None = None
    attr: str | None = None
    value: Any = None
    event: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Any) -> "Event":
        """An :class:`Event` from the server's JSON object; raises
        :class:`~plotwire.ProtocolError` if it lacks ``seq`` or ``kind``."""
        if not isinstance(obj, dict):
            raise ProtocolError(f"an event must be a JSON object, not {obj!r}")
        seq = obj.get("seq")
        kind = obj.get("kind")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(kind, str):
            raise ProtocolError(f"an event needs an integer 'seq' and a 'kind': {obj!r}")
        model = obj.get("model") if isinstance(obj.get("model"), dict) else {}
        values = obj.get("values")
        source = obj.get("source")
        return cls(
            seq=seq, doc=str(obj.get("doc", "")), view=obj.get("view"), kind=kind,
            model_id=model.get("id"), model_name=model.get("name"), model_type=model.get("type"),
            attr=obj.get("attr"), value=obj.get("value"), event=obj.get("event"),
            values=values if isinstance(values, dict) else {},
            source=source if isinstance(source, dict) else None, raw=obj)

    def concerns(self, model: str) -> bool:
        """Whether this event is about the model named (or with the id) ``model``."""
        return model in (self.model_name, self.model_id)


EventCallback = Callable[[Event], Any]
"""The type of an event callback: called with the :class:`Event`, its result ignored."""


@dataclass
class _Handler:
    callback: EventCallback
    match: Callable[[Event], bool]


class EventListener:
    """One background thread that reads a document's SSE event stream and runs the
    matching callbacks, in order, on that thread.

    It resumes after a lost connection with ``Last-Event-ID`` set to the last ``seq`` it
    handled, and skips any event at or below it, so that no event is missed or run twice
    while the server keeps it (``--events-kept``). Reconnects back off from
    ``retry.initial_delay`` up to ``max_backoff`` seconds and go on until :meth:`stop`.
    """

    def __init__(self, transport: Transport, path: str, retry: RetryPolicy,
                 max_backoff: float = 5.0, read_timeout: float = 90.0) -> None:
        self.transport = transport
        self.path = path
        self.retry = retry
        self.max_backoff = max_backoff
        self.read_timeout = read_timeout
        self.last_seq: int | None = None
        self.connects = 0
        self._handlers: list[_Handler] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._first_error: BaseException | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def add(self, callback: EventCallback, match: Callable[[Event], bool]) -> None:
        """Run ``callback(event)`` for every event for which ``match(event)`` holds."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        with self._lock:
            self._handlers.append(_Handler(callback, match))

    @property
    def running(self) -> bool:
        """Whether the listener thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, wait: float) -> None:
        """Start the thread (once) and wait up to ``wait`` seconds for the stream to be
        open, so that the caller knows events from now on reach the callbacks.

        Raises the :class:`~plotwire.HTTPError` of a first connection the server refused
        with a 4xx (e.g. the document does not exist); then the thread is stopped.
        """
        if self._stop.is_set():
            raise PlotwireError("the event listener is stopped")
        if self._thread is None or not self._thread.is_alive():
            self._first_error = None
            self._connected.clear()
            self._thread = threading.Thread(target=self._run, name="plotwire-events", daemon=True)
            self._thread.start()
        if self._connected.wait(wait) and self._first_error is not None:
            raise self._first_error

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread: close the stream and wait up to ``timeout`` s for it to end."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.retry.initial_delay
        while not self._stop.is_set():
            try:
                self._stream_once()
                backoff = self.retry.initial_delay
            except PlotwireError as exc:
                if not self._connected.is_set() and 400 <= getattr(exc, "status", 0) < 500:
                    self._first_error = exc
                    self._connected.set()
                    return
                log.warning("plotwire event stream: %s; reconnecting in %.1fs", exc, backoff)
            except (OSError, http.client.HTTPException) as exc:
                if self._stop.is_set():
                    return
                log.info("plotwire event stream lost (%s); reconnecting in %.1fs", exc, backoff)
            if self._stop.wait(backoff):
                return
            backoff = min(max(backoff, 0.05) * 2, self.max_backoff)

    def _stream_once(self) -> None:
        conn = self.transport.new_connection(timeout=self.read_timeout)
        try:
            conn.connect()
            self._sock = conn.sock
            if self._stop.is_set():
                return
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", "User-Agent": USER_AGENT}
            if self.last_seq is not None:
                headers["Last-Event-ID"] = str(self.last_seq)
            conn.request("GET", self.transport.address.prefix + self.path, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise http_error(resp.status, "GET", self.transport.address.url(self.path), resp.read())
            ctype = resp.getheader("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                raise ProtocolError(f"the event stream answered with Content-Type {ctype!r}")
            self.connects += 1
            self._connected.set()
            parser = SSEParser()
            while not self._stop.is_set():
                chunk = resp.read1(65536)
                if not chunk:
                    return
                for message in parser.feed(chunk):
                    self._handle(message)
        finally:
            self._sock = None
            self.transport.forget(conn)

    def _handle(self, message: SSEMessage) -> None:
        try:
            event = Event.from_json(json.loads(message.data))
        except (ValueError, ProtocolError) as exc:
            log.warning("plotwire event stream: skipping a malformed event (%s): %.200r", exc, message.data)
            return
        if self.last_seq is not None and event.seq <= self.last_seq:
            return
        self.last_seq = event.seq
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                if handler.match(event):
                    handler.callback(event)
            except Exception:  # noqa: BLE001 (a callback's error must not end the stream)
                log.exception("plotwire: an event callback raised (event seq %d)", event.seq)

