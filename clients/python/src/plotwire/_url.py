"""Server addresses and document names."""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

DEFAULT_PORT = 5006
"""The port of a bare ``host`` (Bokeh's default)."""

RESERVED_SEGMENTS = frozenset(
    {"sources", "events", "models", "doc", "views", "streamvis", "ws", "autoload.js", "metadata"})
"""Words that may not be a segment of a document name (they end a name in the server's URLs)."""

_SEGMENT = re.compile(r"[A-Za-z0-9\-_.~]+")
_MAX_NAME_BYTES = 200
_MAX_SEGMENTS = 8


@dataclass(frozen=True)
class ServerAddress:
    """Where the server is: ``scheme://host:port`` plus an optional path prefix.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: a host name or an IP address (IPv6 without brackets).
        port: the TCP port.
        prefix: ``""`` or a path such as ``"/plots"`` (no trailing slash) under which the
            server is mounted.
    """

    scheme: str
    host: str
    port: int
    prefix: str

    @property
    def origin(self) -> str:
        """``scheme://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` (which starts with ``/``) on this server."""
        return self.origin + self.prefix + path


def parse_server_url(url: str) -> ServerAddress:
    """Parse ``host``, ``host:port`` (as streamvis takes it) or a full ``http(s)://`` URL.

    A bare host uses port 5006; an ``http://`` URL without a port uses 80 and ``https://``
    443. A path in a full URL is kept as a prefix (``http://h/plots/`` serves under
    ``/plots``). Raises ``ValueError`` for anything else.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("server url must be a non-empty string such as 'localhost:5006'")
    text = url.strip()
    has_scheme = "://" in text
    parts = urlsplit(text if has_scheme else f"http://{text}")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"server url {url!r}: the scheme must be http or https, not {parts.scheme!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"server url {url!r}: a query or fragment is not allowed")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"server url {url!r}: credentials in the url are not supported")
    host = parts.hostname
    if not host:
        raise ValueError(f"server url {url!r}: no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"server url {url!r}: bad port ({exc})") from None
    if port is None:
        port = (443 if scheme == "https" else 80) if has_scheme else DEFAULT_PORT
    if port == 0:
        raise ValueError(f"server url {url!r}: port 0 is not a server port")
    prefix = parts.path.rstrip("/")
    if prefix and not has_scheme:
        raise ValueError(f"server url {url!r}: a path prefix needs a full url (http://host:port/prefix)")
    return ServerAddress(scheme, host, port, prefix)


def check_document_name(name: str) -> str:
    """Return ``name`` if it is a valid published-document name, else raise ``ValueError``.

    One to eight ``/``-separated segments of letters, digits and ``-_.~``, none starting
    with ``.`` nor a reserved word, at most 200 bytes in all.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("document name must be a non-empty string such as 'runs/exp42'")
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise ValueError(f"document name is longer than {_MAX_NAME_BYTES} bytes")
    segments = name.split("/")
    if len(segments) > _MAX_SEGMENTS:
        raise ValueError(f"document name {name!r} has more than {_MAX_SEGMENTS} segments")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(f"document name {name!r}: segment {segment!r} must be letters, "
                             f"digits and -_.~ only")
        if segment.startswith("."):
            raise ValueError(f"document name {name!r}: segment {segment!r} starts with '.'")
        if segment in RESERVED_SEGMENTS:
            raise ValueError(f"document name {name!r}: {segment!r} is a reserved word")
    return name


def path_segment(value: str) -> str:
    """``value`` percent-encoded as one URL path segment (``/`` included)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"a name in a URL must be a non-empty string, not {value!r}")
    return quote(value, safe="")
