"""The SSE parser, Event parsing, and the listener's reconnect and resume."""
import json
import threading
import time

import pytest

from plotwire import Client, Event, NotFoundError, ProtocolError, RetryPolicy
from plotwire._events import SSEMessage, SSEParser

from fakeserver import DROP, FakeServer, Reply

FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, deadline=5)


def feed_all(parser, data: bytes, step: int):
    out = []
    for i in range(0, len(data), step):
        out.extend(parser.feed(data[i:i + step]))
    return out


STREAM = (b"\xef\xbb\xbf: keep-alive comment\r\n"
          b"retry: 1500\r\n"
          b"id: 1\r\n"
          b"data: {\"a\":\r\n"
          b"data:1}\r\n"
          b"\r\n"
          b"event: custom\n"
          b"data:  two spaces\n"
          b"\n"
          b"id: 7\r"
          b"data\r"
          b"\r"
          b"id: 8\n"
          b"\n"
          b"data: after id-only\n\n"
          b"data: unterminated")


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(STREAM)])
def test_sse_parser_any_split(step):
    parser = SSEParser()
    got = feed_all(parser, STREAM, step)
    assert got == [
        SSEMessage('{"a":\n1}', "message", "1"),
        SSEMessage(" two spaces", "custom", "1"),
        SSEMessage("", "message", "7"),
        SSEMessage("after id-only", "message", "8"),
    ]
    assert parser.retry_ms == 1500
    assert parser.feed(b"\n\n") == [SSEMessage("unterminated", "message", "8")]


def test_sse_parser_crlf_split_between_cr_and_lf():
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\n") == [SSEMessage("x", "message", None)]


def test_sse_parser_ignores_unknown_fields_and_nul_ids():
    parser = SSEParser()
    assert parser.feed(b"foo: bar\nid: a\0b\ndata: d\n\n") == [SSEMessage("d", "message", None)]


CHANGE = {"seq": 17, "doc": "runs/exp42", "view": "v1", "kind": "change",
          "model": {"id": "p1042", "name": "lr", "type": "Slider"}, "attr": "value", "value": 0.01}
CLICK = {"seq": 18, "doc": "runs/exp42", "view": "v2", "kind": "event",
         "model": {"id": "p1050", "name": "stop", "type": "Button"}, "event": "button_click", "values": {}}
SELECT = {"seq": 19, "doc": "d", "view": "v1", "kind": "change", "model": {"id": "p7", "type": "Selection"},
          "attr": "indices", "value": [1, 3], "source": {"id": "p5", "name": "src"}}
VIEW = {"seq": 20, "doc": "d", "view": "v3", "kind": "view", "event": "open"}


def test_event_from_json():
    e = Event.from_json(CHANGE)
    assert (e.seq, e.doc, e.view, e.kind, e.model_id, e.model_name, e.model_type, e.attr, e.value) == (
        17, "runs/exp42", "v1", "change", "p1042", "lr", "Slider", "value", 0.01)
    assert e.raw == CHANGE and e.concerns("lr") and e.concerns("p1042") and not e.concerns("x")
    c = Event.from_json(CLICK)
    assert (c.kind, c.event, c.model_name, c.values) == ("event", "button_click", "stop", {})
    s = Event.from_json(SELECT)
    assert s.model_name is None and s.source == {"id": "p5", "name": "src"} and s.value == [1, 3]
    v = Event.from_json(VIEW)
    assert (v.kind, v.event, v.model_id, v.view) == ("view", "open", None, "v3")


@pytest.mark.parametrize("bad", [[], {"kind": "change"}, {"seq": "1", "kind": "x"}, {"seq": True, "kind": "x"},
                                 {"seq": 1}])
def test_event_from_json_rejects(bad):
    with pytest.raises(ProtocolError):
        Event.from_json(bad)


def sse(*events) -> bytes:
    return b"".join(f"id: {e['seq']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def ev(seq, name="lr", kind="change", **kw):
    base = {"seq": seq, "doc": "d", "view": "v", "kind": kind, "model": {"id": f"id-{name}", "name": name,
                                                                         "type": "Slider"}}
    base.update(kw)
    return base


SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store"}


def wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_listener_resumes_with_last_event_id_and_never_repeats():
    """Connection 1 delivers 1, 2 and drops; connection 2 (Last-Event-ID: 2) repeats 2 and
    sends 3; connection 3 is a network failure; connection 4 sends 4 then holds."""
    connections = []
    release = threading.Event()

    def handler(req):
        if not req.path.endswith("/events"):
            return Reply(404, {"error": "no"})
        connections.append(req)
        n = len(connections)
        if n == 1:
            return Reply(200, headers=SSE_HEADERS, chunks=[sse(ev(1, attr="value", value=0.1)),
                                                           sse(ev(2, attr="value", value=0.2))[:10],
                                                           sse(ev(2, attr="value", value=0.2))[10:]])
        if n == 2:
            return Reply(200, headers=SSE_HEADERS, chunks=[sse(ev(2, attr="value", value=0.2),
                                                               ev(3, attr="value", value=0.3))])
        if n == 3:
            return DROP
        release.wait(10)
        return Reply(200, headers=SSE_HEADERS, chunks=[sse(ev(4, attr="value", value=0.4))])

    seen = []
    with FakeServer(handler) as srv, Client(srv.url, "d", retry=FAST) as client:
        client._listener.max_backoff = 0.05
        client.on_change("lr", lambda e: seen.append((e.seq, e.value)))
        assert wait(lambda: len(connections) >= 4)
        release.set()
        assert wait(lambda: len(seen) == 4), seen
        assert seen == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]
        assert "last-event-id" not in connections[0].headers
        assert connections[0].headers["accept"] == "text/event-stream"
        assert connections[0].path == "/api/v1/documents/d/events"
        assert connections[1].headers["last-event-id"] == "2"
        assert connections[3].headers["last-event-id"] == "3"


def test_callbacks_filter_and_run_in_order_on_one_thread():
    events = [ev(1, "lr", attr="value", value=1), ev(2, "lr", attr="value_throttled", value=1),
              ev(3, "other", attr="value", value=5), ev(4, "stop", kind="event", event="button_click", values={}),
              ev(5, "lr", kind="event", event="tap", values={"x": 1}), {"seq": 6, "doc": "d", "view": "w",
                                                                         "kind": "view", "event": "open"}]

    gate = threading.Event()

    def handler(req):
        return Reply(200, headers=SSE_HEADERS, chunks=[sse(*events)], gate=gate)

    log, threads = [], set()

    def rec(tag):
        def cb(e):
            threads.add(threading.current_thread().name)
            log.append((tag, e.seq))
        return cb

    with FakeServer(handler) as srv, Client(srv.url, "d", retry=FAST) as client:
        client.on_change("lr", rec("lr-any"))
        client.on_change("id-lr", rec("lr-value"), attr="value")
        client.on_click("stop", rec("click"))
        client.on_event(rec("views"), kind="view")
        client.on_event(rec("all"))
        gate.set()
        assert wait(lambda: ("all", 6) in log)
    by_tag = {}
    for tag, seq in log:
        by_tag.setdefault(tag, []).append(seq)
    assert by_tag["lr-any"] == [1, 2] and by_tag["lr-value"] == [1] and by_tag["click"] == [4]
    assert by_tag["views"] == [6] and by_tag["all"] == [1, 2, 3, 4, 5, 6]
    assert threads == {"plotwire-events"}


def test_a_raising_callback_does_not_stop_the_stream():
    def handler(req):
        return Reply(200, headers=SSE_HEADERS, chunks=[sse(ev(1), ev(2))])

    seen = []

    def boom(e):
        seen.append(e.seq)
        raise RuntimeError("callback bug")

    with FakeServer(handler) as srv, Client(srv.url, "d", retry=FAST) as client:
        client.on_change("lr", boom)
        assert wait(lambda: seen[:2] == [1, 2])


def test_malformed_events_are_skipped():
    def handler(req):
        return Reply(200, headers=SSE_HEADERS, chunks=[b"data: not json\n\n", b"data: {\"seq\":1}\n\n", sse(ev(3))])

    seen = []
    with FakeServer(handler) as srv, Client(srv.url, "d", retry=FAST) as client:
        client.on_change("lr", lambda e: seen.append(e.seq))
        assert wait(lambda: seen[:1] == [3])


def test_on_change_of_a_missing_document_raises():
    def handler(req):
        return Reply(404, {"error": "no document named 'd'", "field": "name"})

    with FakeServer(handler) as srv, Client(srv.url, "d", retry=FAST) as client:
        with pytest.raises(NotFoundError) as info:
            client.on_change("lr", lambda e: None)
        assert info.value.status == 404 and info.value.field == "name"


def test_close_stops_the_event_thread_promptly():
    hold = threading.Event()
    with FakeServer(lambda req: Reply(200, headers=SSE_HEADERS, chunks=[b": open\n\n"], hold=hold)) as srv:
        client = Client(srv.url, "d", retry=FAST)
        client.on_change("lr", lambda e: None)
        assert client._listener.running
        started = time.monotonic()
        client.close()
        assert not client._listener.running
        assert time.monotonic() - started < 2
        hold.set()
