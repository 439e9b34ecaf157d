"""Exceptions raised by the plotwire client."""
from __future__ import annotations

import builtins
import json
from typing import Any


class PlotwireError(Exception):
    """Base class of every error the plotwire client raises on purpose."""


class HTTPError(PlotwireError):
    """The server answered with an HTTP error status (4xx or 5xx).

    Attributes:
        status: the HTTP status code.
        error: the server's ``"error"`` text (what is wrong), or the raw body when it was
            not the documented JSON error object.
        field: the server's ``"field"`` (the part of the request to blame), if any.
        method: the request method.
        url: the request URL.
        body: the server's answer, parsed as JSON when possible, else the raw text.
    """

    def __init__(self, status: int, method: str, url: str, body: bytes) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.error, self.field, self.body = _parse_error_body(body)
        where = f" (field {self.field!r})" if self.field else ""
        super().__init__(f"{method} {url}: HTTP {status}: {self.error}{where}")


class ClientError(HTTPError):
    """A 4xx answer: the request was rejected and changed nothing."""


class NotFoundError(ClientError):
    """A 404 answer: the document, source or model does not exist."""


class ServerError(HTTPError):
    """A 5xx answer that was not retried, or still failed after the retries."""


class ConnectionError(PlotwireError, builtins.ConnectionError):  # noqa: A001 (deliberate name)
    """The server could not be reached, even after the retries of the client's
    :class:`~plotwire.RetryPolicy`. Also an instance of the built-in ``ConnectionError``.

    Attributes:
        attempts: how many times the request was tried.
    """

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class ProtocolError(PlotwireError):
    """The server's answer did not have the documented shape."""


def _parse_error_body(body: bytes) -> tuple[str, str | None, Any]:
    """``(error, field, parsed body)`` of an error answer; tolerant of any body."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return (text.strip() or "(empty body)"), None, text
    if isinstance(parsed, dict) and "error" in parsed:
        field = parsed.get("field")
        return str(parsed["error"]), (str(field) if field is not None else None), parsed
    return text.strip(), None, parsed


def http_error(status: int, method: str, url: str, body: bytes) -> HTTPError:
    """The most specific :class:`HTTPError` subclass for ``status``."""
    if status == 404:
        return NotFoundError(status, method, url, body)
    if 400 <= status < 500:
        return ClientError(status, method, url, body)
    if status >= 500:
        return ServerError(status, method, url, body)
    return HTTPError(status, method, url, body)
