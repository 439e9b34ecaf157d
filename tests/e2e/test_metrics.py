"""``GET /metrics`` of the real binary after a known workload, parsed with the Prometheus
Python client's own parser (``prometheus_client.parser``): a document published with the
Python client and N rows streamed into it in M writes, then a ``bokeh.client`` push
session that streams K rows. The counters move by exactly that much, the connection
gauges go up and back down, and the latency histograms fill.

Every wait is bounded (support.wait_value).
"""
from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from support import http_get, unique_id, wait_value

from plotwire import Client

pytestmark = pytest.mark.plotwire_only


OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def scrape(server, openmetrics: bool = False) -> dict[tuple[str, frozenset], float]:
    """Every sample of ``/metrics``, by name and labels: the Prometheus text format
    parsed by ``prometheus_client.parser``, or OpenMetrics (asked for as Prometheus asks)
    by ``prometheus_client.openmetrics.parser``."""
    headers = {"Accept": OPENMETRICS} if openmetrics else {}
    status, got, body = http_get(server.base_url + "/metrics", headers=headers)
    assert status == 200
    content_type = {k.lower(): v for k, v in got.items()}["content-type"]
    if openmetrics:
        assert content_type.startswith("application/openmetrics-text"), content_type
        families = list(openmetrics_families(body.decode("utf-8")))
    else:
        assert content_type.startswith("text/plain; version=0.0.4"), content_type
        families = list(text_string_to_metric_families(body.decode("utf-8")))
    assert families, "no metric families"
    samples: dict[tuple[str, frozenset], float] = {}
    for family in families:
        assert family.name.startswith("plotwire_"), family.name
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type in ("counter", "gauge", "histogram"), (family.name, family.type)
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"sample {key} twice"
            samples[key] = s.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}; have {sorted(n for n, _ in samples)}"
    return samples[key]


def settled(server, expect: dict, desc: str) -> dict:
    """A scrape taken once every check in ``expect`` (name -> check of a scrape) holds,
    waiting for that (bounded); every check is then asserted on it.

    One scrape is not a snapshot: it reads each metric at its own moment. A message is
    counted by its connection, then applied and counted as points by the owner, then
    timed, each on its own thread, so a scrape can read ``messages_received`` before a
    message and ``points_ingested`` after it. Once the workload is over the counters stop
    moving, and the checks hold on any later scrape."""
    def failing():
        s = scrape(server)
        return [name for name, check in expect.items() if not check(s)]
    wait_value(failing, lambda failed: not failed, desc=desc)
    samples = scrape(server)
    for name, check in expect.items():
        assert check(samples), f"{name} held and then did not"
    return samples


def cds_doc():
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    doc = Document()
    src = ColumnDataSource(data={"x": np.array([0.0, 1.0]), "y": np.array([0.0, 1.0])}, name="src")
    plot = figure(width=300, height=200)
    plot.line("x", "y", source=src)
    doc.add_root(plot)
    return doc


def test_metrics_count_a_known_workload(server_factory, clients):
    server = server_factory()
    before = scrape(server)
    for kind in ("browser", "bokeh_client", "rest", "sse"):
        assert value(before, "plotwire_connections", kind=kind) == 0
    assert value(before, "plotwire_points_ingested_total") == 0
    assert value(before, "plotwire_sessions", kind="published") == 0

    # N rows in M writes through the Python client.
    batches = [[1.0, 2.0, 3.0], [4.0, 5.0], [6.0, 7.0, 8.0, 9.0]]
    n = sum(len(b) for b in batches)
    with Client(server.base_url, "e2e/" + unique_id("metrics")) as client:
        client.publish(cds_doc())
        for b in batches:
            client.stream("src", {"x": np.array(b), "y": np.array(b)})
    # The last write's reply can reach the client before the owner has timed it.
    after_rest = settled(server, {
        "points_ingested == n": lambda s: value(s, "plotwire_points_ingested_total") == n,
        "apply timed once per write": lambda s: value(s, "plotwire_apply_seconds_count") >= len(batches),
        "store commit timed once per write":
            lambda s: value(s, "plotwire_store_commit_seconds_count") >= len(batches),
    }, desc="the REST writes to be counted")
    assert value(after_rest, "plotwire_sessions", kind="published") == 1
    opened = value(after_rest, "plotwire_connections_opened_total", kind="rest")
    assert opened >= 1 + len(batches)
    assert value(after_rest, "plotwire_messages_received_total", kind="rest") == opened
    assert value(after_rest, "plotwire_connections", kind="rest") == 0
    assert value(after_rest, "plotwire_store_size_bytes") > 0
    assert (value(after_rest, "plotwire_apply_seconds_bucket", le="+Inf")
            == value(after_rest, "plotwire_apply_seconds_count"))

    # A bokeh.client push session that streams K rows into its own document.
    doc = cds_doc()
    pusher = clients.push(doc, server.app_url(), unique_id("metrics-push"))
    src = doc.get_model_by_name("src")
    k = 5
    pusher.call(lambda: src.stream({"x": list(np.arange(k, dtype=float)), "y": [0.0] * k}))
    applied_before = value(after_rest, "plotwire_apply_seconds_count")
    pushing = settled(server, {
        "points_ingested == n + k": lambda s: value(s, "plotwire_points_ingested_total") == n + k,
        "PUSH-DOC and PATCH-DOC received":
            lambda s: value(s, "plotwire_messages_received_total", kind="bokeh_client") >= 2,
        "ACK and replies sent": lambda s: value(s, "plotwire_messages_sent_total", kind="bokeh_client") >= 2,
        "the patch timed": lambda s: value(s, "plotwire_apply_seconds_count") > applied_before,
    }, desc="the push session's messages and rows to be counted")
    assert value(pushing, "plotwire_connections", kind="bokeh_client") == 1
    assert value(pushing, "plotwire_connections_opened_total", kind="bokeh_client") == 1
    assert value(pushing, "plotwire_sessions", kind="bokeh") == 1
    assert value(pushing, "plotwire_received_bytes_total", kind="bokeh_client") > 0
    assert value(pushing, "plotwire_sent_bytes_total", kind="bokeh_client") > 0

    assert pusher.close()
    closed = wait_value(lambda: scrape(server),
                        lambda s: value(s, "plotwire_connections", kind="bokeh_client") == 0,
                        desc="the push session's close to be counted")
    assert value(closed, "plotwire_points_ingested_total") == n + k
    assert value(closed, "plotwire_slow_viewer_closes_total") == 0
    # With nothing going on, OpenMetrics holds the same samples (but the store's size,
    # which a WAL checkpoint may change meanwhile).
    def without_size(samples):
        return {k: v for k, v in samples.items() if k[0] != "plotwire_store_size_bytes"}
    assert without_size(scrape(server, openmetrics=True)) == without_size(closed)
