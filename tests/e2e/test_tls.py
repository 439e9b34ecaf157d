"""TLS end to end (docs/tls.md): the real server with ``--ssl-certfile``/``--ssl-keyfile``
and a self-signed certificate made here with the ``openssl`` command line. Chromium
(ignoring certificate errors) renders a published page over https:// and receives
streamed rows over wss://; the Python client publishes, streams and reads over https
(trusting the certificate with ``ca_file``); an SSE read works; a SIGHUP to the process
swaps the certificate for new handshakes while the open page keeps updating, and a
SIGHUP with a broken key keeps the certificate in use.

Everything is on 127.0.0.1; every wait is bounded (support.wait_for / wait_value,
Playwright timeouts, socket timeouts).
"""
from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from support import unique_id, wait_for, wait_value

from plotwire import NO_RETRY, Client, ConnectionError

pytestmark = pytest.mark.plotwire_only

RENDER_TIMEOUT_MS = 20000

# Records the URL of every websocket the page opens.
WS_URL_RECORDER = """
(() => {
  const Orig = window.WebSocket;
  window.__e2e_ws_urls = [];
  class Recorded extends Orig {
    constructor(url, protocols) {
      super(url, protocols);
      window.__e2e_ws_urls.push(String(url));
    }
  }
  window.WebSocket = Recorded;
})();
"""

JS_ROWS = """() => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const m = docs[0].get_model_by_name('src');
    if (m == null) return null;
    const x = m.data instanceof Map ? m.data.get('x') : m.data['x'];
    return x == null ? null : Array.from(x);
}"""


def make_cert(directory: Path, common_name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={common_name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture
def tls_server(server_factory, tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is missing (scripts/install-test-deps.sh installs it)",
                    pytrace=False)
    served = tmp_path / "served"
    cert, key = make_cert(served, "plotwire e2e A")
    srv = server_factory(extra_args=["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)])
    assert srv.base_url.startswith("https://")
    return srv, cert, key


def bokeh_doc():
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    doc = Document()
    doc.title = "tls doc"
    src = ColumnDataSource(data={"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 4.0]}, name="src")
    plot = figure(title="over TLS", width=500, height=300, name="plot")
    plot.line("x", "y", source=src, name="line")
    doc.add_root(plot)
    return doc


def peer_subject(port: int, trusted: Path) -> str:
    """The common name of the certificate a new handshake gets, verified against ``trusted``."""
    context = ssl.create_default_context(cafile=str(trusted))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
        with context.wrap_socket(tcp, server_hostname="127.0.0.1") as tls:
            subject = dict(pair[0] for pair in tls.getpeercert()["subject"])
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
            return subject["commonName"]


def open_page(chromium, url: str):
    context = chromium.new_context(ignore_https_errors=True, viewport={"width": 900, "height": 600})
    context.set_default_timeout(15000)
    context.add_init_script(WS_URL_RECORDER)
    page = context.new_page()
    page.goto(url, wait_until="load", timeout=RENDER_TIMEOUT_MS)
    wait_value(lambda: page.evaluate(JS_ROWS), lambda rows: rows is not None and len(rows) >= 3,
               timeout=20, desc="the page to render the published source")
    return context, page


def test_a_page_renders_over_https_and_streams_over_wss(tls_server, chromium):
    srv, cert, _ = tls_server
    with Client(srv.base_url, "e2e/" + unique_id("tls-page"), ca_file=str(cert)) as client:
        client.publish(bokeh_doc())
        assert client.url.startswith("https://")
        context, page = open_page(chromium, client.url)
        try:
            assert page.evaluate("() => location.protocol") == "https:"
            urls = page.evaluate("() => window.__e2e_ws_urls")
            assert urls and all(u.startswith(f"wss://127.0.0.1:{srv.port}/") for u in urls), urls
            client.stream("src", {"x": [3.0, 4.0], "y": [9.0, 16.0]})
            wait_value(lambda: page.evaluate(JS_ROWS), lambda rows: rows == [0.0, 1.0, 2.0, 3.0, 4.0],
                       timeout=15, desc="the streamed rows in the page")
            box = page.evaluate("""() => {
                const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('plot'));
                const r = v.el.getBoundingClientRect(); return [r.width, r.height]; }""")
            assert box[0] > 100 and box[1] > 100, box
        finally:
            context.close()


def test_rest_and_sse_over_https_with_the_python_client(tls_server):
    srv, cert, _ = tls_server
    name = "e2e/" + unique_id("tls-rest")
    with Client(srv.base_url, name, ca_file=str(cert)) as client:
        published = client.publish(bokeh_doc())
        assert published.created
        w = client.stream("src", {"x": [3.0], "y": [9.0]})
        assert w.rows == 4
        assert client.data("src").data["x"] == [0.0, 1.0, 2.0, 3.0]

        # The live export's URLs come from the Host header: https here.
        status, body = get(srv, f"/api/v1/documents/{name}/json_item?root=plot")
        assert status == 200, body
        assert f"https://127.0.0.1:{srv.port}/api/v1/documents/" in body
        assert f"http://127.0.0.1:{srv.port}" not in body

        # An SSE read of the source: its first message holds every row.
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=10, context=srv.ssl_context)
        try:
            conn.request("GET", f"/api/v1/documents/{name}/sources/src",
                         headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Content-Type", "").startswith("text/event-stream")
            data = None
            for _ in range(50):
                line = resp.fp.readline().decode().rstrip("\n")
                if line.startswith("data:"):
                    data = json.loads(line[len("data:"):])
                    break
            assert data is not None, "no data: line in the first 50 lines"
            assert data == {"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 4.0, 9.0]}, data
        finally:
            conn.close()

    # A client that does not trust the certificate is refused, with an SSL error.
    with Client(srv.base_url, name, retry=NO_RETRY) as untrusting:
        with pytest.raises(ConnectionError) as refused:
            untrusting.info()
        assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError), refused.value


def get(srv, path: str) -> tuple[int, str]:
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=10, context=srv.ssl_context)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_sighup_swaps_the_certificate_while_an_open_page_keeps_updating(tls_server, chromium, tmp_path):
    srv, cert_a, key = tls_server
    served_a = cert_a.read_bytes()
    name = "e2e/" + unique_id("tls-reload")
    with Client(srv.base_url, name, ca_file=str(cert_a)) as client:
        client.publish(bokeh_doc())
        context, page = open_page(chromium, client.url)
    try:
        assert peer_subject(srv.port, cert_a) == "plotwire e2e A"

        new_b, new_key = make_cert(tmp_path / "b", "plotwire e2e B")
        shutil.copyfile(new_key, key)
        shutil.copyfile(new_b, cert_a)  # the served paths now hold B
        cert_b = tmp_path / "b" / "cert.pem"
        trusted_a = tmp_path / "a-cert.pem"
        trusted_a.write_bytes(served_a)
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "certificates reloaded" in srv.log_tail(400), timeout=10,
                 desc="the reload to be logged")
        assert srv.alive()
        assert peer_subject(srv.port, cert_b) == "plotwire e2e B"
        with pytest.raises(ssl.SSLCertVerificationError):
            peer_subject(srv.port, trusted_a)

        # The page's websocket, opened under A, still carries the stream.
        with Client(srv.base_url, name, ca_file=str(cert_b)) as client:
            client.stream("src", {"x": [3.0], "y": [9.0]})
        wait_value(lambda: page.evaluate(JS_ROWS), lambda rows: rows == [0.0, 1.0, 2.0, 3.0],
                   timeout=15, desc="the streamed row in the page opened before the reload")
        assert len(page.evaluate("() => window.__e2e_ws_urls")) == 1, "the page reconnected"

        # A reload that cannot read the key keeps B, and says why.
        key.write_text("not a key\n")
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "certificates not reloaded" in srv.log_tail(400), timeout=10,
                 desc="the failed reload to be logged")
        assert "no private key in" in srv.log_tail(400)
        assert srv.alive()
        assert peer_subject(srv.port, cert_b) == "plotwire e2e B"
    finally:
        context.close()
