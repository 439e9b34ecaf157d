"""Malformed and hostile input on the websocket, from a raw protocol client.

For every case the server must answer with a clear ERROR (msgtype ERROR whose ``text``
names the problem) or close the connection with a valid status code (1000-4999; Bokeh
3.9.2 uses the invalid 10000/10001, protocol doc §3.5/§8.4), stay alive, and keep
serving a *different*, already-open pushed session (the "witness": a push client and a
pull client that exchange changes after every case).

Message-level failures (unknown model id, bad stream, ...) must be all-or-nothing:
nothing is applied and nothing is relayed. Bokeh 3.9.2 applies the events before a
failing one (§4, relay-probe.txt), so this whole module is plotwire_only.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from bokeh.util.token import generate_jwt_token, generate_session_id

from support import (
    CallbackRecorder,
    HandshakeRejected,
    RawClient,
    build_plot_doc,
    free_port,
    pull_snapshot,
    unique_id,
)

pytestmark = pytest.mark.plotwire_only

XCOL, YCOL = "xcol", "ycol"
X0 = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
Y0 = X0 ** 2
SECRET = "e2e-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


def unsigned_token(session_id: str, expiration: int = 300) -> str:
    return generate_jwt_token(session_id, secret_key=None, signed=False, expiration=expiration)


# ---------------------------------------------------------------------------
# fixtures: the target session, the witness session
# ---------------------------------------------------------------------------

class Target:
    """A pushed session with float64 columns xcol/ycol, a slider and a button; the pusher
    is live and records every slider value it sees."""

    def __init__(self, server, clients, prefix: str) -> None:
        self.server = server
        self.sid = unique_id(prefix)
        self.url = server.app_url()
        self.slider_seen = CallbackRecorder()
        doc = build_plot_doc(title="bad input target", data={XCOL: X0.copy(), YCOL: Y0.copy()}, fields=(XCOL, YCOL),
                             slider_cb=lambda attr, old, new: self.slider_seen(new))
        self.pusher = clients.push(doc, self.url, self.sid, name="target-pusher")
        self.ids = {name: doc.get_model_by_name(name).id for name in ("src", "slider", "button", "plot")}
        self._markers = 0
        self.initial = self.state()

    def raw(self) -> RawClient:
        raw = RawClient.connect(self.server.ws_url(), unsigned_token(self.sid))
        raw.expect_ack()
        return raw

    def state(self) -> dict:
        """Fresh pull of the session: slider, button label and the raw column bytes."""
        def extract(doc):
            src = doc.get_model_by_name("src")
            return {
                "slider": doc.get_model_by_name("slider").value,
                "label": doc.get_model_by_name("button").label,
                "columns": {k: (np.asarray(v).dtype.str, np.asarray(v).tobytes()) for k, v in src.data.items()},
            }
        return pull_snapshot(self.url, self.sid, extract)

    def assert_unchanged(self) -> None:
        now = self.state()
        assert now["slider"] == self.initial["slider"], f"slider changed to {now['slider']}"
        assert now["columns"] == self.initial["columns"], "column data changed"
        assert now["label"] == self.initial["label"] or now["label"].startswith("marker-")

    def assert_nothing_relayed(self, raw: RawClient) -> None:
        """Send a valid change from ``raw``; once the pusher has it, everything relayed
        before it has arrived too, so the pusher's document shows whether anything of the
        rejected message was relayed."""
        self._markers += 1
        marker = f"marker-{self._markers}"
        reply = raw.request("PATCH-DOC", {"events": [model_changed(self.ids["button"], "label", marker)]})
        assert reply is not None and reply["header"]["msgtype"] == "OK", f"valid PATCH-DOC after the error: {reply}"
        self.pusher.wait_doc(lambda d: d.get_model_by_name("button").label, lambda v: v == marker,
                             desc="the marker change")
        assert self.slider_seen.snapshot() == [], f"pusher saw slider values {self.slider_seen.snapshot()}"
        cols = self.pusher.get(lambda d: {k: np.asarray(v).tobytes() for k, v in d.get_model_by_name("src").data.items()})
        assert cols == {XCOL: X0.tobytes(), YCOL: Y0.tobytes()}, "pusher's columns changed"


class Witness:
    """Another pushed session, open before the bad input, checked after it."""

    def __init__(self, server, clients) -> None:
        self.server = server
        sid = unique_id("witness")
        url = server.app_url()
        self.pusher = clients.push(build_plot_doc(title="witness"), url, sid, name="witness-pusher")
        self.puller = clients.pull(url, sid, name="witness-puller")
        self.rounds = 0

    def check(self) -> None:
        assert self.server.alive(), f"server process exited with code {self.server.proc.returncode}"
        assert self.server.healthy(), "server no longer answers HTTP"
        self.rounds += 1
        label = f"pusher round {self.rounds}"
        self.pusher.call(lambda: setattr(self.pusher.doc.get_model_by_name("button"), "label", label))
        self.puller.wait_doc(lambda d: d.get_model_by_name("button").label, lambda v: v == label,
                             desc="witness pusher -> puller")
        title = f"puller round {self.rounds}"
        self.puller.call(lambda: setattr(self.puller.doc, "title", title))
        self.pusher.wait_doc(lambda d: d.title, lambda v: v == title, desc="witness puller -> pusher")
        self.pusher.call(lambda: self.pusher.doc.get_model_by_name("src").stream(dict(x=[100 + self.rounds],
                                                                                      y=[self.rounds])))
        self.puller.wait_doc(lambda d: list(d.get_model_by_name("src").data["x"])[-1],
                             lambda v: v == 100 + self.rounds, desc="witness stream")


@pytest.fixture
def witness(server, clients) -> Witness:
    return Witness(server, clients)


@pytest.fixture
def target(server, clients) -> Target:
    return Target(server, clients, "bad")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def model_changed(model_id: str, attr: str, new) -> dict:
    return {"kind": "ModelChanged", "model": {"id": model_id}, "attr": attr, "new": new}


def columns_streamed(src_id: str, data: dict, rollover=None) -> dict:
    return {"kind": "ColumnsStreamed", "model": {"id": src_id}, "attr": "data",
            "data": {"type": "map", "entries": [[k, v] for k, v in data.items()]}, "rollover": rollover}


def expect_rejection(raw: RawClient, msgid: str | None = None, timeout: float = 5.0):
    """The server's answer to a bad message: ("error", text) or ("close", code, reason)."""
    for _ in range(1000):
        try:
            msg = raw.recv_message(timeout)
        except TimeoutError:
            pytest.fail(f"the server neither answered with ERROR nor closed within {timeout}s")
        if msg is None:
            code = raw.close_code
            print(f"server answer: close {code} {raw.close_reason!r}")
            assert code is not None and 1000 <= code <= 4999, \
                f"closed with an invalid or missing status code {code!r} (reason {raw.close_reason!r})"
            return ("close", code, raw.close_reason)
        header = msg["header"]
        if header.get("msgtype") == "ERROR":
            if msgid is not None:
                assert header.get("reqid") == msgid, f"ERROR reqid {header.get('reqid')!r} != msgid {msgid!r}"
            text = msg["content"].get("text")
            print(f"server answer: ERROR {text!r}")
            assert isinstance(text, str) and text.strip(), f"ERROR without a text: {msg['content']}"
            return ("error", text)
        if header.get("msgtype") == "OK" and msgid is not None and header.get("reqid") == msgid:
            pytest.fail("the server accepted the bad message with OK")
        if header.get("msgtype") != "PATCH-DOC":
            pytest.fail(f"unexpected reply to a bad message: {header}")
    pytest.fail("too many messages")


def expect_error(raw: RawClient, msgid: str, must_mention: str | re.Pattern) -> str:
    outcome = expect_rejection(raw, msgid)
    assert outcome[0] == "error", f"expected an ERROR reply with the connection kept open, got {outcome}"
    text = outcome[1]
    if isinstance(must_mention, str):
        assert must_mention in text, f"ERROR text does not name the problem ({must_mention!r}): {text!r}"
    else:
        assert must_mention.search(text), f"ERROR text does not name the problem ({must_mention.pattern!r}): {text!r}"
    # the connection stays usable after an ERROR
    reply = raw.request("SERVER-INFO-REQ", {})
    assert reply is not None and reply["header"]["msgtype"] == "SERVER-INFO-REPLY", f"after ERROR: {reply}"
    return text


def expect_no_ack_and_closed(raw: RawClient) -> None:
    frames = raw.wait_closed(5.0)
    assert frames == [], f"the server sent frames to a rejected connection: {frames[:3]}"
    assert raw.close_code is None or 1000 <= raw.close_code <= 4999, raw.close_code


# ---------------------------------------------------------------------------
# malformed fragments
# ---------------------------------------------------------------------------

def test_invalid_json_header(target, witness):
    raw = target.raw()
    raw.send_text('{"msgid": "1", "msgtype": "PULL-DOC-REQ"')  # truncated JSON
    raw.send_text("{}")
    raw.send_text("{}")
    expect_rejection(raw)
    witness.check()
    target.assert_unchanged()


@pytest.mark.parametrize("where", ["header", "metadata", "content"])
def test_binary_fragment_where_text_expected(target, witness, where):
    raw = target.raw()
    parts = [json.dumps({"msgid": "b1", "msgtype": "PULL-DOC-REQ"}), "{}", "{}"]
    for i, name in enumerate(["header", "metadata", "content"]):
        if name == where:
            raw.send_binary(b"\x00\x01\x02\xff binary")
            break
        raw.send_text(parts[i])
    expect_rejection(raw, None)
    witness.check()
    target.assert_unchanged()


def test_buffer_payload_before_buffer_header(target, witness):
    """A PATCH-DOC announcing one buffer sends the binary payload before its {"id"} header."""
    raw = target.raw()
    payload = np.array([5.0, 6.0]).tobytes()
    ta = {"type": "typed_array", "array": {"type": "bytes", "data": {"id": "buf1"}}, "order": "little", "dtype": "float64"}
    content = {"events": [columns_streamed(target.ids["src"], {XCOL: ta, YCOL: [25.0, 36.0]})]}
    raw.send_text(json.dumps({"msgid": "order1", "msgtype": "PATCH-DOC", "num_buffers": 1}))
    raw.send_text("{}")
    raw.send_text(json.dumps(content))
    raw.send_binary(payload)               # payload first ...
    raw.send_text(json.dumps({"id": "buf1"}))  # ... then its header
    expect_rejection(raw, None)
    witness.check()
    target.assert_unchanged()


def test_buffer_header_as_first_fragment(target, witness):
    raw = target.raw()
    raw.send_text(json.dumps({"id": "buf1"}))
    raw.send_binary(b"\x00" * 16)
    raw.send_text("{}")
    expect_rejection(raw, None)
    witness.check()
    target.assert_unchanged()


def test_unknown_msgtype(target, witness):
    raw = target.raw()
    msgid = raw.send_message("FROBNICATE-DOC", {})
    outcome = expect_rejection(raw, msgid)
    if outcome[0] == "error":
        assert "FROBNICATE-DOC" in outcome[1], f"ERROR text does not name the msgtype: {outcome[1]!r}"
    witness.check()
    target.assert_unchanged()


# ---------------------------------------------------------------------------
# tokens and origins
# ---------------------------------------------------------------------------

def test_garbage_token(server, target, witness):
    try:
        raw = RawClient.connect(server.ws_url(), "garbage-token-that-is-not-base64-json")
    except HandshakeRejected as exc:
        assert 400 <= exc.code < 500, exc
    else:
        try:
            expect_no_ack_and_closed(raw)
        finally:
            raw.close()
    witness.check()


def test_expired_token_is_closed_without_ack(server, target, witness):
    # control: a valid token for the same session gets ACK
    ok = RawClient.connect(server.ws_url(), unsigned_token(target.sid))
    ok.expect_ack()
    # an expired token cannot create a session
    expired = RawClient.connect(server.ws_url(), unsigned_token(generate_session_id(), expiration=-60))
    assert expired.selected_subprotocol == "bokeh"
    expect_no_ack_and_closed(expired)
    # the valid connection is unaffected
    reply = ok.request("SERVER-INFO-REQ", {})
    assert reply is not None and reply["header"]["msgtype"] == "SERVER-INFO-REPLY"
    ok.close()
    witness.check()


def test_expired_token_rejoins_a_live_session(server, target, witness):
    # BokehJS reconnects with its page's token however old the page is, so an expired token
    # joins a session that is still live (Bokeh 3.9.2 refuses it: the reconnect then fails).
    rejoin = RawClient.connect(server.ws_url(), unsigned_token(target.sid, expiration=-60))
    rejoin.expect_ack()
    reply = rejoin.request("PULL-DOC-REQ", {})
    assert reply is not None and reply["header"]["msgtype"] == "PULL-DOC-REPLY"
    rejoin.close()
    witness.check()


def test_origin_not_in_allowlist_gets_403(server_factory, clients):
    allowed_port = free_port()
    srv = server_factory(["--allow-websocket-origin", f"127.0.0.1:{allowed_port}"])
    wit = Witness(srv, clients)
    sid = unique_id("origin")
    token = unsigned_token(sid)
    other_port = allowed_port + 1 if allowed_port + 1 != srv.port else allowed_port + 2
    for origin in ("http://evil.example", f"http://127.0.0.1:{other_port}", f"http://localhost:{allowed_port}"):
        with pytest.raises(HandshakeRejected) as info:
            RawClient.connect(srv.ws_url(), token, origin=origin).close()
        assert info.value.code == 403, f"Origin {origin}: {info.value}"
    # controls: the allowlisted origin and the server's own origin are accepted
    for origin in (f"http://127.0.0.1:{allowed_port}", f"http://127.0.0.1:{srv.port}"):
        raw = RawClient.connect(srv.ws_url(), token, origin=origin)
        raw.expect_ack()
        raw.close()
    wit.check()


def test_signed_server_rejects_bad_signatures(server_factory):
    srv = server_factory(["--session-ids", "signed"], secret_key=SECRET)
    sid = generate_session_id(secret_key=SECRET.encode(), signed=True)
    good = RawClient.connect(srv.ws_url(), generate_jwt_token(sid, secret_key=SECRET.encode(), signed=True))
    good.expect_ack()
    bad_tokens = {
        "signed with another key": generate_jwt_token(sid, secret_key=b"some-other-key-0123456789abcdefghijk", signed=True),
        "unsigned": unsigned_token(sid),
        "signed token, unsigned session id": generate_jwt_token("plain-id", secret_key=SECRET.encode(), signed=True),
    }
    for what, token in bad_tokens.items():
        try:
            raw = RawClient.connect(srv.ws_url(), token)
        except HandshakeRejected as exc:
            assert 400 <= exc.code < 500, f"{what}: {exc}"
            continue
        try:
            expect_no_ack_and_closed(raw)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None
        finally:
            raw.close()
    assert srv.healthy()
    reply = good.request("SERVER-INFO-REQ", {})
    assert reply is not None and reply["header"]["msgtype"] == "SERVER-INFO-REPLY"
    good.close()


# ---------------------------------------------------------------------------
# size limit
# ---------------------------------------------------------------------------

def test_oversized_message_closes_1009(server_factory, clients):
    srv = server_factory(["--websocket-max-message-size", "65536"])
    wit = Witness(srv, clients)
    tgt = Target(srv, clients, "oversize")
    raw = tgt.raw()
    # control: a 40 KB fragment is fine and is relayed
    label = "L" * 40000
    reply = raw.request("PATCH-DOC", {"events": [model_changed(tgt.ids["button"], "label", label)]})
    assert reply is not None and reply["header"]["msgtype"] == "OK", reply
    tgt.pusher.wait_doc(lambda d: len(d.get_model_by_name("button").label), lambda n: n == 40000, desc="40 KB label")
    # a 100 KB content fragment is over the limit
    big = "B" * 100000
    raw.send_message("PATCH-DOC", {"events": [model_changed(tgt.ids["button"], "label", big)]})
    frames = raw.wait_closed(5.0)
    assert frames == [], f"expected no reply to an oversized message, got {frames[:2]}"
    assert raw.close_code == 1009, f"close code {raw.close_code} reason {raw.close_reason!r}"
    wit.check()
    assert tgt.state()["label"] == label, "the oversized change must not be applied"


# ---------------------------------------------------------------------------
# semantically bad PATCH-DOCs: ERROR, nothing applied, nothing relayed
# ---------------------------------------------------------------------------

def test_patch_doc_unknown_model_id(target, witness):
    raw = target.raw()
    msgid = raw.send_message("PATCH-DOC", {"events": [model_changed("no-such-model-4711", "value", 5)]})
    expect_error(raw, msgid, "no-such-model-4711")
    target.assert_nothing_relayed(raw)
    target.assert_unchanged()
    witness.check()


def test_stream_strings_into_numeric_column(target, witness):
    raw = target.raw()
    ev = columns_streamed(target.ids["src"], {XCOL: ["a", "b"], YCOL: ["c", "d"]})
    msgid = raw.send_message("PATCH-DOC", {"events": [ev]})
    expect_error(raw, msgid, re.compile(rf"{XCOL}|{YCOL}|type|numeric|number|float|string", re.I))
    target.assert_nothing_relayed(raw)
    target.assert_unchanged()
    witness.check()


def test_stream_columns_of_different_lengths(target, witness):
    raw = target.raw()
    ev = columns_streamed(target.ids["src"], {XCOL: [5.0, 6.0], YCOL: [25.0, 36.0, 49.0]})
    msgid = raw.send_message("PATCH-DOC", {"events": [ev]})
    expect_error(raw, msgid, re.compile(r"length", re.I))
    target.assert_nothing_relayed(raw)
    target.assert_unchanged()
    witness.check()


@pytest.mark.parametrize("second", ["unknown model id", "columns of different lengths", "strings into numeric column"])
def test_two_event_patch_doc_is_all_or_nothing(target, witness, second):
    """[valid slider.value=9, bad event]: ERROR, and the slider change is neither applied
    nor relayed (Bokeh 3.9.2 keeps it applied on the server when the 2nd event fails while
    being applied, and relays nothing: relay-probe.txt)."""
    raw = target.raw()
    bad = {
        "unknown model id": model_changed("no-such-model-4712", "label", "x"),
        "columns of different lengths": columns_streamed(target.ids["src"], {XCOL: [5.0, 6.0], YCOL: [25.0]}),
        "strings into numeric column": columns_streamed(target.ids["src"], {XCOL: ["a"], YCOL: ["b"]}),
    }[second]
    msgid = raw.send_message("PATCH-DOC", {"events": [model_changed(target.ids["slider"], "value", 9), bad]})
    outcome = expect_rejection(raw, msgid)
    assert outcome[0] == "error", f"expected ERROR, got {outcome}"
    target.assert_nothing_relayed(raw)
    assert target.state()["slider"] == 1, "the first event of a failed PATCH-DOC was applied"
    target.assert_unchanged()
    witness.check()
