"""plotwire: publish live Bokeh dashboards on a plotwire server from Python.

>>> from plotwire import Client
>>> with Client("localhost:5006", "runs/exp42") as client:     # doctest: +SKIP
...     client.publish(spec)
...     client.stream("metrics", {"step": [0, 1], "loss": [0.9, 0.7]})

See the package README for the whole API.
"""
from ._client import Client, Published, SourceData, WriteResult
from ._errors import (ClientError, ConnectionError, HTTPError, NotFoundError, PlotwireError, ProtocolError,
                      ServerError)
from ._events import Event
from ._transport import NO_RETRY, RetryPolicy

__all__ = [
    "Client", "Published", "SourceData", "WriteResult", "Event", "RetryPolicy", "NO_RETRY",
    "PlotwireError", "HTTPError", "ClientError", "NotFoundError", "ServerError", "ConnectionError",
    "ProtocolError",
]

__version__ = "0.1.0"
