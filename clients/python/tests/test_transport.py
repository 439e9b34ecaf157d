"""The retry policy, idempotency keys across retries, and the typed errors."""
import socket
import time

import pytest

import plotwire
from plotwire import (NO_RETRY, Client, ClientError, ConnectionError, HTTPError, NotFoundError, PlotwireError,
                      RetryPolicy, ServerError)
from plotwire._transport import Transport
from plotwire._url import parse_server_url

from fakeserver import DROP, FakeServer, Reply

FAST = RetryPolicy(attempts=5, initial_delay=0.01, max_delay=0.02, jitter=0, deadline=10)


def test_retry_policy_delays_grow_and_are_capped():
    policy = RetryPolicy(attempts=6, initial_delay=0.1, multiplier=2, max_delay=0.5, jitter=0.0)
    assert list(policy.delays()) == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert list(RetryPolicy(attempts=1).delays()) == []


def test_retry_policy_jitter_is_bounded():
    policy = RetryPolicy(attempts=4, initial_delay=1, multiplier=1, max_delay=1, jitter=0.25)
    assert list(policy.delays(rng=lambda: 1.0)) == [1.25, 1.25, 1.25]
    assert list(policy.delays(rng=lambda: 0.0)) == [1.0, 1.0, 1.0]


def test_default_policy_rides_out_a_ten_second_restart_within_its_deadline():
    policy = RetryPolicy()
    total = sum(policy.delays(rng=lambda: 0.0))
    assert 10 <= total <= policy.deadline


@pytest.mark.parametrize("kwargs", [dict(attempts=0), dict(initial_delay=-1), dict(multiplier=0.5),
                                    dict(jitter=-0.1)])
def test_retry_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_a_write_is_retried_with_the_same_idempotency_key():
    """A dropped connection, a 503 and a 502, then success: four tries, one key."""
    answers = iter([DROP, Reply(503, {"error": "restarting"}), Reply(502, b"bad gateway"), Reply(200, {"seq": 5,
                                                                                                       "rows": 3})])
    with FakeServer(lambda req: next(answers)) as srv, Client(srv.url, "d", retry=FAST) as client:
        result = client.stream("src", {"x": [1.0, 2.0, 3.0]})
        reqs = srv.recorded()
    assert result == plotwire.WriteResult(seq=5, rows=3)
    assert len(reqs) == 4
    keys = {r.headers["idempotency-key"] for r in reqs}
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert len({r.body for r in reqs}) == 1


def test_each_write_gets_its_own_key_and_reads_get_none():
    with FakeServer(lambda req: Reply(200, {"seq": 1, "rows": 1, "since": 0, "next": 1, "reset": True,
                                            "data": {}})) as srv, Client(srv.url, "d", retry=FAST) as client:
        client.stream("s", {"x": [1]})
        client.stream("s", {"x": [1]})
        client.data("s")
        reqs = srv.recorded()
    assert reqs[0].headers["idempotency-key"] != reqs[1].headers["idempotency-key"]
    assert "idempotency-key" not in reqs[2].headers


@pytest.mark.parametrize("status, cls", [(400, ClientError), (404, NotFoundError), (409, ClientError),
                                         (413, ClientError), (500, ServerError)])
def test_final_errors_are_typed_and_not_retried(status, cls):
    body = {"error": "column 'y' has 2 values, 'x' has 3", "field": "y"}
    with FakeServer(lambda req: Reply(status, body)) as srv, Client(srv.url, "d", retry=FAST) as client:
        with pytest.raises(cls) as info:
            client.stream("src", {"x": [1, 2, 3], "y": [1, 2]})
        assert len(srv.recorded()) == 1
    err = info.value
    assert isinstance(err, HTTPError) and isinstance(err, PlotwireError)
    assert (err.status, err.error, err.field, err.body) == (status, body["error"], "y", body)
    assert err.method == "POST" and err.url == f"{srv.url}/api/v1/documents/d/sources/src/stream"
    assert "field 'y'" in str(err) and str(status) in str(err)


def test_an_error_without_the_json_body_keeps_the_text():
    with FakeServer(lambda req: Reply(400, b"plain words")) as srv, Client(srv.url, "d", retry=FAST) as client:
        with pytest.raises(ClientError) as info:
            client.clear_source("s")
    assert info.value.error == "plain words" and info.value.field is None


def test_retry_statuses_give_up_with_the_last_http_error():
    with FakeServer(lambda req: Reply(503, {"error": "busy"})) as srv, Client(srv.url, "d", retry=FAST) as client:
        with pytest.raises(ServerError) as info:
            client.clear_source("s")
        assert len(srv.recorded()) == FAST.attempts
    assert info.value.status == 503 and info.value.error == "busy"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_raises_connection_error_after_the_attempts():
    slept = []
    transport = Transport(parse_server_url(f"127.0.0.1:{closed_port()}"), timeout=2,
                          retry=RetryPolicy(attempts=4, initial_delay=0.5, jitter=0, deadline=60))
    transport.sleep = slept.append
    with pytest.raises(ConnectionError) as info:
        transport.request("POST", "/api/v1/documents/d/sources/s/clear")
    assert info.value.attempts == 4 and slept == [0.5, 1.0, 2.0]
    assert isinstance(info.value, OSError) and isinstance(info.value, PlotwireError)
    assert "tried 4 times" in str(info.value)


def test_the_deadline_bounds_the_retries():
    transport = Transport(parse_server_url(f"127.0.0.1:{closed_port()}"), timeout=2,
                          retry=RetryPolicy(attempts=100, initial_delay=0.05, max_delay=0.05, jitter=0, deadline=0.3))
    started = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        transport.request("GET", "/x")
    assert time.monotonic() - started < 2
    assert 2 <= info.value.attempts < 100


def test_no_retry_policy_tries_once():
    with FakeServer(lambda req: DROP) as srv, Client(srv.url, "d", retry=NO_RETRY) as client:
        with pytest.raises(ConnectionError) as info:
            client.clear()
        assert info.value.attempts == 1 and len(srv.recorded()) == 1


def test_a_closed_client_refuses_requests():
    with FakeServer(lambda req: Reply(200, {"seq": 1})) as srv:
        client = Client(srv.url, "d", retry=FAST)
        client.clear_source("s")
        client.close()
        client.close()
        with pytest.raises(ConnectionError):
            client.clear_source("s")
        assert len(srv.recorded()) == 1


def test_keep_alive_reuses_one_connection():
    ports = []

    def handler(req):
        return Reply(200, {"seq": 1})

    with FakeServer(handler) as srv, Client(srv.url, "d", retry=FAST) as client:
        for _ in range(5):
            client.clear_source("s")
            ports.append(client._transport._local.conn.sock.getsockname()[1])
    assert len(set(ports)) == 1
