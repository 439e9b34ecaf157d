"""Access control end to end (docs/access.md): the real binary started with
``--auth-file``, its keys made with ``plotwire keys init`` and ``plotwire keys add``.

- the Python client writes only with a key (``key=``), and reads a public document
  without one;
- the unmodified ``bokeh.client`` pushes only with its key in ``arguments``, and without
  it gets the server's refusal as an error;
- ``plotwire share`` makes a link that opens a private dashboard in Chromium, whose
  websocket then receives streamed rows; without the link the page is refused;
- SIGHUP rereads the file: a key added while the server runs works after it.

Everything is on 127.0.0.1; every wait is bounded (support.wait_for/wait_value,
Playwright timeouts, subprocess timeouts).
"""
from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from support import APP, PLOTWIRE_BIN, run_bounded, unique_id, wait_value

pytestmark = pytest.mark.plotwire_only

SPEC = {
    "title": "private board",
    "sources": {"train": {"columns": {"step": "int32", "loss": "float64"}}},
    "plots": {"loss": {"kind": "line", "source": "train", "x": "step", "y": "loss"}},
    "layout": {"grid": {"loss": [0, 0, 1, 1]}},
}

JS_ROWS = """() => {
    const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
    const src = doc && doc.get_model_by_name("train");
    if (src == null) return null;
    const data = src.data instanceof Map ? Object.fromEntries(src.data) : src.data;
    return data.step == null ? 0 : data.step.length;
}"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLOTWIRE_BIN), *args], env={"PATH": "/usr/bin:/bin", **(env or {})},
                          capture_output=True, text=True, timeout=60)


def add_key(auth, name: str, *scopes: str) -> str:
    args = ["keys", "add", str(auth), name]
    for s in scopes:
        args += ["--scope", s]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("pwk_"), done.stdout
    assert key not in auth.read_text(), "the auth file must keep only the key's hash"
    return key


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    from conftest import _start_server, _stop_server
    tmp = tmp_path_factory.mktemp("access")
    auth = tmp / "auth.toml"
    done = cli("keys", "init", str(auth), "--private", "team/*")
    assert done.returncode == 0, done.stderr
    assert oct(auth.stat().st_mode & 0o777) == "0o600"
    keys = {
        "producer": add_key(auth, "producer", "publish:*"),
        "pusher": add_key(auth, "pusher", f"write:{APP}/*"),
    }
    listed = cli("keys", "list", str(auth))
    assert "producer\tpublish:*" in listed.stdout and keys["producer"] not in listed.stdout
    srv = _start_server(tmp, "access", ["--auth-file", str(auth)], None, None)
    srv.auth_file = auth
    srv.keys = keys
    yield srv
    _stop_server(srv)
    log = srv.log_path.read_text(errors="replace")
    for key in keys.values():
        assert key not in log, "a key reached the server's log"


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_python_client_writes_with_its_key_and_reads_public_documents_without(secured):
    import plotwire
    name = "runs/" + unique_id("py")
    with plotwire.Client(secured.base_url, name) as anonymous:
        with pytest.raises(plotwire.ClientError) as denied:
            anonymous.publish(SPEC)
        assert denied.value.status == 401, denied.value
        assert "Authorization: Bearer" in str(denied.value)
    with plotwire.Client(secured.base_url, name, key=secured.keys["producer"]) as producer:
        producer.publish(SPEC)
        producer.stream("train", {"step": [1, 2, 3], "loss": [0.9, 0.8, 0.7]})
    with plotwire.Client(secured.base_url, name) as reader:
        assert reader.data("train").data["step"] == [1, 2, 3]
        with pytest.raises(plotwire.ClientError) as denied:
            reader.stream("train", {"step": [4], "loss": [0.6]})
        assert denied.value.status == 401
        assert reader.data("train").data["step"] == [1, 2, 3], "a denied write changed the data"
    # The key from the environment, as the CLI and CI use it.
    os.environ["PLOTWIRE_KEY"] = secured.keys["producer"]
    try:
        with plotwire.Client(secured.base_url, name) as from_env:
            from_env.stream("train", {"step": [4], "loss": [0.6]})
    finally:
        del os.environ["PLOTWIRE_KEY"]


def test_bokeh_client_pushes_with_its_key_in_arguments(secured):
    from bokeh.client import ClientSession
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource

    def doc():
        d = Document()
        d.add_root(ColumnDataSource(data={"x": [1, 2, 3]}, name="pushed"))
        return d

    # Each session is made, used and closed inside one bounded thread, as
    # support.connect_push does: its IOLoop is that thread's.
    def refused_without_key():
        session = ClientSession(session_id=unique_id("nokey"), websocket_url=secured.ws_url())
        session.connect()
        try:
            session.push(doc())
        except RuntimeError as e:
            return str(e)
        finally:
            session.close()
        return "pushed"
    assert "plotwire_key" in run_bounded(refused_without_key, 30, "push without a key")

    sid = unique_id("withkey")

    def pushed_with_key_then_pulled():
        pusher = ClientSession(session_id=sid, websocket_url=secured.ws_url(),
                               arguments={"plotwire_key": secured.keys["pusher"]})
        pusher.connect()
        pusher.push(doc())
        # Anyone may pull what was pushed, as a browser does.
        puller = ClientSession(session_id=sid, websocket_url=secured.ws_url())
        puller.pull()
        x = list(puller.document.get_model_by_name("pushed").data["x"])
        puller.close()
        pusher.close()
        return x
    assert run_bounded(pushed_with_key_then_pulled, 30, "push with a key, then pull") == [1, 2, 3]


def test_a_share_link_opens_a_private_dashboard_that_keeps_streaming(secured, browser_page):
    import plotwire
    name = "team/" + unique_id("board")
    producer = plotwire.Client(secured.base_url, name, key=secured.keys["producer"])
    producer.publish(SPEC)
    producer.stream("train", {"step": [1], "loss": [1.0]})
    page_url = f"{secured.base_url}/d/{name}/"
    assert status_of(page_url) == 401
    assert status_of(f"{secured.base_url}/api/v1/documents/{name}/sources/train") == 401
    assert status_of(f"{secured.base_url}/d/team/{unique_id('absent')}/") == 401, "a missing private name must look the same"

    done = cli("share", name, "--expires", "1h",
               env={"PLOTWIRE_URL": secured.base_url, "PLOTWIRE_KEY": secured.keys["producer"]})
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert link.startswith(page_url + "?grant=g1."), link
    tampered = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
    assert status_of(tampered) == 401

    page = browser_page.page
    response = page.goto(link)
    assert response is not None and response.status == 200
    wait_value(lambda: page.evaluate(JS_ROWS), lambda n: n == 1, timeout=20, desc="the shared page renders")
    producer.stream("train", {"step": [2, 3], "loss": [0.9, 0.8]})
    wait_value(lambda: page.evaluate(JS_ROWS), lambda n: n == 3, timeout=20,
               desc="streamed rows reach the shared page over its websocket")
    producer.close()
    browser_page.assert_no_errors()


def test_sighup_rereads_the_auth_file(secured):
    import plotwire
    name = "runs/" + unique_id("reload")
    late = add_key(secured.auth_file, "late", "publish:runs/*")
    with plotwire.Client(secured.base_url, name, key=late) as client:
        with pytest.raises(plotwire.ClientError) as denied:
            client.publish(SPEC)
        assert denied.value.status == 401, "a key added to the file works before the reload"
        secured.proc.send_signal(signal.SIGHUP)

        def publish():
            try:
                client.publish(SPEC)
                return True
            except plotwire.ClientError as e:
                assert e.status == 401, e
                return False
        wait_value(publish, lambda ok: ok, timeout=10, desc="the new key works after SIGHUP")
    assert secured.proc.poll() is None, "SIGHUP stopped the server"
