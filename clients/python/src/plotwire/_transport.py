"""HTTP with keep-alive connections, bounded retries and idempotency keys."""
from __future__ import annotations

import http.client
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ._errors import ConnectionError, http_error
from ._url import ServerAddress

log = logging.getLogger("plotwire")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Answers that mean "try again": too many requests, and a proxy or a server in the middle
of a restart. Other statuses are final."""

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

USER_AGENT = "plotwire-python/0.1"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failed request is tried again.

    A request that could not connect, lost its connection, timed out, or got a 429, 502,
    503 or 504 is sent again after a delay that starts at ``initial_delay`` and is
    multiplied by ``multiplier`` each time, up to ``max_delay``, with up to ``jitter``
    (a fraction) added at random. It is given up after ``attempts`` tries in all, or once
    ``deadline`` seconds have passed since the first. A write is retried with the same
    ``Idempotency-Key``, so the server applies it once.

    The defaults ride out a server restart of about ten seconds.
    """

    attempts: int = 10
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 2.0
    jitter: float = 0.1
    deadline: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1 or self.jitter < 0:
            raise ValueError("RetryPolicy delays must be >= 0, multiplier >= 1, jitter >= 0")

    def delays(self, rng: Callable[[], float] = random.random) -> Iterator[float]:
        """The delays before the 2nd, 3rd, ... tries: ``attempts - 1`` of them."""
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield min(delay, self.max_delay) * (1.0 + self.jitter * rng())
            delay *= self.multiplier


NO_RETRY = RetryPolicy(attempts=1)
"""A policy that tries each request once."""


@dataclass(frozen=True)
class Response:
    """An HTTP answer read in full."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _NetworkFailure(Exception):
    """A request failed on the network; its ``__cause__`` says how (internal)."""


class Transport:
    """Sends requests to one server; each thread gets its own keep-alive connection.

    Args:
        address: the server.
        timeout: socket timeout of each request, in seconds.
        retry: the retry policy.
        key: an API key, sent as ``Authorization: Bearer <key>`` with every request.
        ssl_context: how ``https`` servers are verified; ``None`` uses
            :func:`ssl.create_default_context` (the system's CAs, or ``SSL_CERT_FILE``).
    """

    def __init__(self, address: ServerAddress, timeout: float = 30.0,
                 retry: RetryPolicy = RetryPolicy(), key: str | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.address = address
        self._authorization = f"Bearer {key}" if key else None
        self.timeout = timeout
        self.retry = retry
        self.ssl_context = ssl_context
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[http.client.HTTPConnection] = set()
        self._closed = False
        self.sleep: Callable[[float], None] = time.sleep

    def new_connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        """A fresh connection to the server (not yet connected), tracked so that
        :meth:`close` closes it."""
        conn: http.client.HTTPConnection
        if self.address.scheme == "https":
            conn = http.client.HTTPSConnection(self.address.host, self.address.port,
                                               timeout=timeout or self.timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self.address.host, self.address.port,
                                              timeout=timeout or self.timeout)
        with self._lock:
            if self._closed:
                raise ConnectionError("the client is closed", 0)
            self._connections.add(conn)
        return conn

    def forget(self, conn: http.client.HTTPConnection) -> None:
        """Close ``conn`` and stop tracking it."""
        conn.close()
        with self._lock:
            self._connections.discard(conn)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.new_connection()
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            self.forget(conn)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, retry: RetryPolicy | None = None) -> Response:
        """Send a request (retrying as the policy says) and return the answer.

        Writes get an ``Idempotency-Key`` (a uuid4), the same one on every try. A final
        answer of 400 or more raises the matching :class:`~plotwire.HTTPError`; a server
        that cannot be reached raises :class:`~plotwire.ConnectionError`.
        """
        policy = retry or self.retry
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if method in WRITE_METHODS:
            all_headers["Idempotency-Key"] = uuid.uuid4().hex
        if self._authorization is not None:
            all_headers["Authorization"] = self._authorization
        all_headers.update(headers or {})
        url = self.address.url(path)
        started = time.monotonic()
        delays = policy.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send_once(method, path, body, all_headers)
            except _NetworkFailure as failure:
                cause: BaseException | None = failure.__cause__
                response = None
            else:
                if response.status not in RETRY_STATUSES:
                    if response.status >= 400:
                        raise http_error(response.status, method, url, response.body)
                    return response
                cause = None
            delay = next(delays, None)
            if delay is None or time.monotonic() + delay - started > policy.deadline:
                if response is not None:
                    raise http_error(response.status, method, url, response.body)
                raise ConnectionError(f"{method} {url}: {cause} (tried {attempt} times)", attempt) from cause
            log.debug("%s %s: %s, trying again in %.2fs", method, url,
                      cause if response is None else f"HTTP {response.status}", delay)
            self.sleep(delay)

    def _send_once(self, method: str, path: str, body: bytes | None,
                   headers: Mapping[str, str]) -> Response:
        if self._closed:
            raise ConnectionError("the client is closed", 0)
        conn = self._connection()
        try:
            conn.request(method, self.address.prefix + path, body=body, headers=dict(headers))
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            if self._closed:
                raise ConnectionError("the client is closed", 0) from None
            raise _NetworkFailure() from exc
        if resp.will_close:
            self._drop_connection()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def close(self) -> None:
        """Close every connection; later requests raise :class:`~plotwire.ConnectionError`."""
        with self._lock:
            self._closed = True
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            conn.close()

