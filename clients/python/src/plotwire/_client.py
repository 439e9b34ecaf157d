"""The :class:`Client`."""
from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from ._encoding import JSON, dumps, encode_columns, nulls_to_nan
from ._errors import ProtocolError
from ._events import Event, EventCallback, EventListener
from ._transport import RetryPolicy, Transport
from ._url import ServerAddress, check_document_name, parse_server_url, path_segment


@dataclass(frozen=True)
class Published:
    """The server's answer to :meth:`Client.publish`.

    Attributes:
        name: the document's name.
        url: the document's page.
        seq: the document's sequence number after the publish.
        created: ``True`` if the document was new, ``False`` if it replaced one.
        sources: the document's sources by name, as the server describes them
            (``{"id", "columns": {column: dtype}, "rows"}``).
    """

    name: str
    url: str
    seq: int
    created: bool
    sources: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteResult:
    """The answer to :meth:`Client.stream` and :meth:`Client.replace`.

    Attributes:
        seq: the document's sequence number after the write.
        rows: the source's number of rows after it.
    """

    seq: int
    rows: int


@dataclass(frozen=True)
class SourceData:
    """What :meth:`Client.data` read back from a source.

    Attributes:
        since: the cursor the read was made with (0 for a first read).
        next: the cursor to pass as ``since`` to the next read: a poller that always
            passes the last ``next`` gets every appended row exactly once.
        reset: ``True`` when ``data`` is the source's whole current content (a first read,
            or the source was replaced, patched or cleared since, or rollover dropped rows
            the cursor had not seen): replace what you hold. ``False``: append ``data``.
        rows: the number of rows in ``data``.
        data: column name → list of values. In numeric columns NaN comes back as
            ``float('nan')`` and ±infinity as ``±float('inf')``.
    """

    since: int
    next: int
    reset: bool
    rows: int
    data: dict[str, list[Any]]


class Client:
    """A producer's connection to one published document on a plotwire server.

    Args:
        url: the server: ``"host:port"`` as in streamvis (a bare host means port 5006), or
            a full URL such as ``"http://host:5006"`` or ``"https://host/prefix"``.
        name: the document's name, e.g. ``"runs/exp42"`` (one to eight ``/``-separated
            segments of letters, digits and ``-_.~``).
        timeout: socket timeout of each request, in seconds.
        retry: how failed requests are retried (see :class:`RetryPolicy`). Every write
            carries an ``Idempotency-Key`` that its retries repeat, so a write that reached
            the server before the connection broke is not applied twice.
        key: an API key for a server with access control on (``plotwire keys add``); the
            ``PLOTWIRE_KEY`` environment variable when not given. Sent as
            ``Authorization: Bearer <key>``; never logged or shown in ``repr``.
        ca_file: for an ``https`` server, a PEM file of the certificates to trust instead of
            the system's, e.g. the server's own self-signed certificate.
        ssl_context: for an ``https`` server, an :class:`ssl.SSLContext` to verify it with
            (not together with ``ca_file``). Without either, the system's CAs are trusted
            (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are honoured).

    Every method raises :class:`HTTPError` (:class:`ClientError`, :class:`NotFoundError`,
    :class:`ServerError`) for an error answer, with the server's ``error`` and ``field``,
    and :class:`ConnectionError` when the server cannot be reached within the retries.

    Use it as a context manager, or call :meth:`close`, to stop the event thread.
    """

    def __init__(self, url: str, name: str, *, timeout: float = 30.0,
                 retry: RetryPolicy = RetryPolicy(), key: str | None = None,
                 ca_file: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.address: ServerAddress = parse_server_url(url)
        self.name: str = check_document_name(name)
        self.timeout = timeout
        self.retry = retry
        if key is None:
            key = os.environ.get("PLOTWIRE_KEY") or None
        if ca_file is not None and ssl_context is not None:
            raise ValueError("give ca_file or ssl_context, not both")
        if ca_file is not None:
            ssl_context = ssl.create_default_context(cafile=str(ca_file))
        self._transport = Transport(self.address, timeout=timeout, retry=retry, key=key,
                                    ssl_context=ssl_context)
        self._doc_path = f"/api/v1/documents/{self.name}"
        self._listener = EventListener(self._transport, self._doc_path + "/events", retry)

    # -- lifecycle --------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The document's page, ``http(s)://host:port/d/<name>/``."""
        return self.address.url(f"/d/{self.name}/")

    def close(self) -> None:
        """Stop the event thread and close every connection. Idempotent."""
        self._listener.stop()
        self._transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address.url('')!r}, {self.name!r})"

    # -- requests ---------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, content_type: str = JSON,
                 raw: bytes | None = None) -> tuple[int, Any]:
        """``(status, parsed JSON answer or None)`` of a request under the document."""
        payload = raw if raw is not None else (None if body is None else dumps(body))
        headers = {"Content-Type": content_type} if payload is not None else {}
        response = self._transport.request(method, self._doc_path + path, payload, headers)
        if not response.body:
            return response.status, None
        try:
            return response.status, json.loads(response.body)
        except ValueError:
            raise ProtocolError(f"{method} {self._doc_path + path}: the answer is not JSON: "
                                f"{response.body[:200]!r}") from None

    def _call(self, method: str, path: str, body: Any = None, content_type: str = JSON,
              raw: bytes | None = None) -> Any:
        """The parsed JSON answer (or None) of a request under the document."""
        return self._request(method, path, body, content_type, raw)[1]

    @staticmethod
    def _int(answer: Any, key: str) -> int:
        value = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"the server's answer has no integer {key!r}: {answer!r}")
        return value

    def _source(self, source: str) -> str:
        return f"/sources/{path_segment(source)}"

    # -- documents --------------------------------------------------------------------
    def publish(self, spec_or_bokeh_object: Any, *, max_rows: int | None = None,
                max_age: str | None = None) -> Published:
        """Create or replace the document.

        Args:
            spec_or_bokeh_object: a dashboard spec (a dict, sent as it is), a bokeh model
                (sent as ``bokeh.embed.json_item(model)``, with its document's title kept),
                a bokeh ``Document`` (sent as ``Document.to_json(deferred=False)``), or any
                JSON-able mapping (a ``json_item`` or DocJson made elsewhere).
            max_rows: keep at most this many rows in each of the document's sources (the
                rollover of streams that give none; a bigger replace is refused).
            max_age: drop rows older than this: a whole number and ``s``, ``m``, ``h`` or
                ``d`` (``"30s"``, ``"12h"``, ``"7d"``). Both bound what the server holds in
                memory and on disk (docs/storage.md, "Retention"); a publish without them
                keeps everything.

        Returns:
            the server's :class:`Published` answer.
        """
        query: dict[str, Any] = {}
        if max_rows is not None:
            if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
                raise ValueError(f"max_rows must be a positive integer or None, not {max_rows!r}")
            query["max_rows"] = max_rows
        if max_age is not None:
            if not isinstance(max_age, str) or not max_age:
                raise ValueError(f"max_age must be a duration such as '12h', not {max_age!r}")
            query["max_age"] = max_age
        path = "?" + urlencode(query) if query else ""
        status, answer = self._request("PUT", path, _publish_body(spec_or_bokeh_object))
        seq = self._int(answer, "seq")
        return Published(name=str(answer.get("name", self.name)), url=str(answer.get("url", self.url)),
                         seq=seq, created=status == 201, sources=dict(answer.get("sources") or {}))

    def info(self) -> dict[str, Any]:
        """The document's description: ``{"name", "title", "updated", "url", "views", "seq",
        "sources": {name: {"id", "columns": {column: dtype}, "rows"}}}``."""
        return self._call("GET", "")

    def share(self, expires: str = "7d") -> dict[str, Any]:
        """A read-only link to the document, valid for ``expires`` (``"30m"``, ``"12h"``,
        ``"7d"``, ``"2w"``). Needs a key that may publish it. Returns the server's answer:
        ``url`` (absolute here), ``grant`` and ``expires``."""
        answer = self._call("POST", "/share?expires=" + urllib.parse.quote(expires))
        answer["url"] = self.address.url(answer["url"][len(self.address.prefix):])
        return answer

    def delete(self) -> None:
        """Delete the document; its open views are told that it ended."""
        self._call("DELETE", "")

    # -- sources ----------------------------------------------------------------------
    def stream(self, source: str, columns: Any, rollover: int | None = None) -> WriteResult:
        """Append rows to the source named ``source``.

        Args:
            source: the source's model ``name`` (or its id).
            columns: a mapping of column name → equal-length values (lists, tuples or
                numpy arrays), a pandas ``DataFrame`` or a pyarrow ``Table``. With numpy
                installed, numeric columns go as raw little-endian arrays, without a loop
                over the values in Python; pyarrow tables (and DataFrames, when pyarrow is
                installed) go as Arrow IPC; anything else as JSON.
            rollover: keep only the last ``rollover`` rows, as Bokeh's ``stream`` does.
        """
        query = ""
        if rollover is not None:
            if not isinstance(rollover, int) or isinstance(rollover, bool) or rollover < 1:
                raise ValueError(f"rollover must be a positive integer or None, not {rollover!r}")
            query = "?" + urlencode({"rollover": rollover})
        content_type, body = encode_columns(columns)
        answer = self._call("POST", self._source(source) + "/stream" + query,
                            content_type=content_type, raw=body)
        return WriteResult(self._int(answer, "seq"), self._int(answer, "rows"))

    def replace(self, source: str, columns: Any) -> WriteResult:
        """Replace all the data of ``source`` with ``columns`` (accepted as by :meth:`stream`)."""
        content_type, body = encode_columns(columns)
        answer = self._call("PUT", self._source(source), content_type=content_type, raw=body)
        return WriteResult(self._int(answer, "seq"), self._int(answer, "rows"))

    def patch(self, source: str, patches: Mapping[str, Sequence[tuple[int, Any]]]) -> int:
        """Change single values: ``{"column": [(index, new_value), ...]}``, as Bokeh's
        ``patch`` with integer indices. Returns the document's ``seq`` after it."""
        if not isinstance(patches, Mapping) or not patches:
            raise ValueError("patches must be a non-empty mapping of column name to [(index, value), ...]")
        body: dict[str, list[list[Any]]] = {}
        for column, changes in patches.items():
            rows = []
            for change in changes:
                index, value = change
                if not isinstance(index, int) or isinstance(index, bool):
                    index = _as_index(index, column)
                rows.append([index, value])
            body[column] = rows
        return self._int(self._call("POST", self._source(source) + "/patch", body), "seq")

    def clear_source(self, source: str) -> int:
        """Remove every row of ``source`` (its columns stay). Returns the ``seq`` after it."""
        return self._int(self._call("POST", self._source(source) + "/clear"), "seq")

    def data(self, source: str, since: int | None = None) -> SourceData:
        """Read a source's data back.

        Args:
            source: the source's name (or id).
            since: ``None`` for everything, or the ``next`` of the previous read to get
                only the rows appended since.

        Returns:
            a :class:`SourceData`: ``data`` (column → list), ``next`` (the cursor for the
            next call), ``reset`` (``True``: ``data`` replaces what you hold; ``False``: it
            is to be appended), ``since`` and ``rows``.
        """
        query = "" if since is None else "?" + urlencode({"since": int(since)})
        answer = self._call("GET", self._source(source) + query)
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            raise ProtocolError(f"the source read has no 'data' object: {answer!r}")
        return SourceData(since=int(answer.get("since") or 0), next=self._int(answer, "next"),
                          reset=bool(answer.get("reset")), rows=self._int(answer, "rows"),
                          data=nulls_to_nan(answer["data"]))

    # -- models -----------------------------------------------------------------------
    def set(self, model_name: str, prop: str, value: Any, view: str | None = None) -> int:
        """Set property ``prop`` of every model named ``model_name`` (or the model with that
        id) to ``value``.

        With ``view=None`` every view sees the new value (and the property is cleared from
        each view's own changes); with a view id (an :attr:`Event.view`) only that view
        does. Returns the document's ``seq`` after it.
        """
        body: dict[str, Any] = {"value": value}
        if view is not None:
            body["view"] = view
        path = f"/models/{path_segment(model_name)}/{path_segment(prop)}"
        return self._int(self._call("PUT", path, body), "seq")

    # -- events -----------------------------------------------------------------------
    def on_change(self, widget_name: str, callback: EventCallback, attr: str | None = None) -> None:
        """Call ``callback(event)`` whenever a viewer changes a property of the model named
        ``widget_name`` (or with that id): a widget's ``value``/``active``, a range, a
        selection. ``attr`` limits it to one property (``None``: any).

        Callbacks run one at a time, in event order, on the client's event thread; its
        stream is open when this returns (or still being retried if the server does not
        answer). The :class:`Event` says which view it came from (``event.view``) and
        carries ``event.attr`` and ``event.value``.
        """
        def match(event: Event) -> bool:
            return (event.kind == "change" and event.concerns(widget_name)
                    and (attr is None or event.attr == attr))
        self._subscribe(callback, match)

    def on_click(self, button_name: str, callback: EventCallback) -> None:
        """Call ``callback(event)`` on every click of the button named ``button_name`` (or
        with that id), in any view. Runs on the event thread, as :meth:`on_change`."""
        def match(event: Event) -> bool:
            return event.kind == "event" and event.event == "button_click" and event.concerns(button_name)
        self._subscribe(callback, match)

    def on_event(self, callback: EventCallback, model: str | None = None, kind: str | None = None) -> None:
        """Call ``callback(event)`` for every viewer event, or only those of the model
        named (or with the id) ``model`` and/or of ``kind`` (``"change"``, ``"event"``,
        ``"view"``). Runs on the event thread, as :meth:`on_change`."""
        def match(event: Event) -> bool:
            return (model is None or event.concerns(model)) and (kind is None or event.kind == kind)
        self._subscribe(callback, match)

    def _subscribe(self, callback: EventCallback, match: Any) -> None:
        self._listener.add(callback, match)
        self._listener.start(wait=self.timeout)

    # -- streamvis --------------------------------------------------------------------
    def clear(self) -> None:
        """streamvis: remove every plot and its data from the document."""
        self._call("POST", "/streamvis/clear")

    def set_layout(self, grid_map: Mapping[str, Sequence[int]]) -> None:
        """streamvis: lay out plots in a grid: ``{plot_name: (top, left, height, width)}``,
        in grid cells. Each plot exists from then on, before its first data."""
        if not isinstance(grid_map, Mapping) or not grid_map:
            raise ValueError("set_layout: grid_map must be a non-empty map of plot_name => "
                             "(top, left, height, width)")
        grid: dict[str, list[int]] = {}
        for plot_name, coords in grid_map.items():
            if (isinstance(coords, (str, bytes)) or not isinstance(coords, Sequence) or len(coords) != 4
                    or not all(isinstance(c, int) and not isinstance(c, bool) for c in coords)):
                raise ValueError(f"set_layout: {plot_name!r} must map to (top, left, height, width) "
                                 f"integers, not {coords!r}")
            grid[str(plot_name)] = list(coords)
        self._call("POST", "/streamvis/layout", {"grid": grid})

    def tandem_lines(self, plot_name: str, data: Sequence[float]) -> None:
        """streamvis: append one step ``[x, y1, y2, ..., yk]`` to the k lines of a
        multi-line plot."""
        self._call("POST", "/streamvis/tandem_lines", {"plot": plot_name, "values": _plain(data)})

    def scatter(self, plot_name: str, data: Any, spatial_dim: int, append: bool = True) -> None:
        """streamvis: draw points on a scatter plot.

        Args:
            plot_name: the plot (a name of the grid map).
            data: nested lists or a numpy array of the points.
            spatial_dim: the axis of ``data`` that holds the coordinates (``x, y``); e.g.
                ``1`` for an ``(N, 2)`` array.
            append: add the points to those shown (``True``) or replace them (``False``).
        """
        self._call("POST", "/streamvis/scatter", {"plot": plot_name, "points": _plain(data),
                                                  "spatial_dim": int(spatial_dim), "append": bool(append)})


def _plain(data: Any) -> Any:
    """numpy arrays (and objects with a ``.numpy()`` method, such as tensors) as lists."""
    if hasattr(data, "numpy") and callable(data.numpy) and not hasattr(data, "tolist"):
        data = data.numpy()
    if hasattr(data, "tolist") and callable(data.tolist):
        return data.tolist()
    return data


def _as_index(index: Any, column: str) -> int:
    np = sys.modules.get("numpy")
    if np is not None and isinstance(index, np.integer):
        return int(index)
    raise TypeError(f"patch of column {column!r}: the index must be an integer, not {index!r}")


def _publish_body(obj: Any) -> Any:
    """The JSON body that publishes ``obj`` (see :meth:`Client.publish`)."""
    bokeh_document = sys.modules.get("bokeh.document")
    bokeh_model = sys.modules.get("bokeh.model")
    if bokeh_document is not None and isinstance(obj, bokeh_document.Document):
        return obj.to_json(deferred=False)
    if bokeh_model is not None and isinstance(obj, bokeh_model.Model):
        from bokeh.embed import json_item

        doc = obj.document
        title = doc.title if doc is not None else ""
        item = dict(json_item(obj))
        if doc is not None and doc.title != title:
            doc.title = title
        if title:
            item["doc"] = {**item["doc"], "title": title}
        return item
    if isinstance(obj, Mapping):
        return obj
    raise TypeError("publish() takes a dashboard spec (dict), a bokeh model or Document, or a JSON-able "
                    f"mapping, not {type(obj).__name__}")
