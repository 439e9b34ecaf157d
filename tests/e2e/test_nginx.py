"""plotwire behind Debian's nginx, run with the shipped docs/deploy/nginx.conf (its
upstream port and listen address templated in, nothing else changed), on loopback, with
plotwire started as that file says: ``--prefix /plots --use-xheaders``.

Through nginx: the Python client publishes and streams; Chromium renders the published
page and gets the streamed rows over its websocket; an SSE read gets a new row as it is
written; an export's URLs name nginx's address and the prefix. Directly: plotwire
believes forwarding headers from its loopback peer (the default trusted proxy), which
shows ``serve`` hands the peer address over. Untrusted peers are tested in Rust
(crates/plotwire-server/tests/forwarded.rs), as every test peer here is loopback.

nginx runs as its own process (``nginx -p <tmp> -c <tmp>/nginx.conf``, ``daemon off``),
never the system service; the test skips if nginx is not installed
(scripts/install-test-deps.sh installs it). Every wait is bounded.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from support import REPO_ROOT, ServerProcess, free_port, http_get, tcp_connectable, unique_id, wait_for, wait_value

pytestmark = pytest.mark.plotwire_only

SHIPPED = REPO_ROOT / "docs" / "deploy" / "nginx.conf"
PREFIX = "/plots"
RENDER_TIMEOUT_MS = 20000
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

JS_XS = """() => {
    const docs = window.Bokeh && Bokeh.documents;
    if (!docs || docs.length == 0) return null;
    const src = docs[0].get_model_by_name("src");
    if (src == null) return null;
    const data = src.data instanceof Map ? src.data : new Map(Object.entries(src.data));
    return Array.from(data.get("x"));
}"""


class PrefixedServer(ServerProcess):
    """plotwire under --prefix: its health check is under the prefix too."""

    def _health_url(self) -> str:
        return f"{self.base_url}{PREFIX}/healthz"


def templated(text: str, old: str, new: str) -> str:
    """``text`` with its one ``old`` replaced: the shipped file must hold it exactly once."""
    assert text.count(old) == 1, f"{SHIPPED} should hold {old!r} once"
    return text.replace(old, new)


class Nginx:
    """An nginx process with the shipped server block, in front of ``upstream_port``."""

    def __init__(self, tmp: Path, upstream_port: int) -> None:
        self.tmp = tmp
        self.port = free_port()
        site = SHIPPED.read_text()
        site = templated(site, "server 127.0.0.1:5006;", f"server 127.0.0.1:{upstream_port};")
        site = templated(site, "listen 80;", f"listen 127.0.0.1:{self.port};")
        (tmp / "plotwire.conf").write_text(site)
        temps = "\n".join(f"    {kind}_temp_path {tmp}/{kind}_temp;"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
{temps}
    include {tmp}/plotwire.conf;
}}
""")
        self.args = [str(NGINX), "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Nginx":
        check = subprocess.run([*self.args, "-t"], capture_output=True, timeout=30)
        assert check.returncode == 0, f"nginx -t: {check.stderr.decode()}"
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.proc.poll() is None and tcp_connectable(self.port), timeout=15,
                 desc=f"nginx on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}{path}"

    def log(self, name: str) -> str:
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Nginx]]:
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/install-test-deps.sh installs Debian's nginx)")
    tmp = tmp_path_factory.mktemp("nginx")
    server = PrefixedServer("plotwire", tmp / "plotwire.log",
                            extra_args=["--prefix", PREFIX, "--use-xheaders"])
    server.start()
    nginx = Nginx(tmp, server.port)
    try:
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.stop()


def bokeh_doc():
    """A figure of the ColumnDataSource "src" (float columns x, y)."""
    from bokeh.document import Document
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    doc = Document()
    doc.title = "behind nginx"
    src = ColumnDataSource(data={"x": np.asarray([0.0, 1.0], dtype=np.float64),
                                 "y": np.asarray([0.0, 1.0], dtype=np.float64)}, name="src")
    plot = figure(width=400, height=300, name="plot")
    plot.line("x", "y", source=src)
    doc.add_root(plot)
    return doc


@pytest.fixture
def published(stack):
    from plotwire import Client

    _, nginx = stack
    name = "e2e/" + unique_id("nginx")
    with Client(nginx.url(), name) as client:
        assert client.publish(bokeh_doc()).created
        yield client


def test_the_python_client_publishes_and_streams_through_nginx(published):
    written = published.stream("src", {"x": [2.0, 3.0], "y": [4.0, 9.0]})
    assert written.seq > 0
    read = published.data("src")
    assert read.data == {"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 4.0, 9.0]}


def test_chromium_renders_the_page_and_gets_streamed_rows_over_the_websocket(stack, published, chromium):
    _, nginx = stack
    context = chromium.new_context(viewport={"width": 800, "height": 600})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(nginx.url(f"/d/{published.name}/"), wait_until="load", timeout=RENDER_TIMEOUT_MS)
        page.wait_for_function(f"() => ({JS_XS})() != null", timeout=RENDER_TIMEOUT_MS)
        page.locator("canvas").first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        assert page.evaluate(JS_XS) == [0.0, 1.0]
        published.stream("src", {"x": [7.0], "y": [49.0]})
        xs = wait_value(lambda: page.evaluate(JS_XS), lambda v: v is not None and 7.0 in v,
                        timeout=15, desc="the streamed row in the page")
        assert xs == [0.0, 1.0, 7.0]
        assert not errors, errors
    finally:
        context.close()
    # The page's websocket went through nginx: its upgrade is in the access log, written
    # once the socket has closed.
    ws_path = f"{PREFIX}/d/{published.name}/ws"
    wait_for(lambda: any(ws_path in line and '" 101 ' in line for line in nginx.log("access.log").splitlines()),
             timeout=10, desc=f"the websocket upgrade of {ws_path} in nginx's access log")


def read_until(sock: socket.socket, buf: bytearray, needle: bytes, deadline: float) -> None:
    """Reads from ``sock`` into ``buf`` until ``needle`` is in it, before ``deadline``."""
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} did not arrive; got {bytes(buf)[-400:]!r}"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, f"the stream ended before {needle!r}; got {bytes(buf)[-400:]!r}"
        buf.extend(chunk)


def test_an_sse_read_gets_a_new_row_through_nginx_as_it_is_written(stack, published):
    _, nginx = stack
    path = f"{PREFIX}/api/v1/documents/{published.name}/sources/src?since=0"
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{nginx.port}\r\n"
                     f"Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray()
        read_until(sock, buf, b"\r\n\r\n", time.monotonic() + 10)
        head = bytes(buf).split(b"\r\n\r\n", 1)[0].decode()
        assert head.split()[1] == "200", head
        assert "text/event-stream" in head
        # The first message holds the rows so far; then one arrives per write.
        read_until(sock, buf, b"data:", time.monotonic() + 10)
        marker = 123456.5
        published.stream("src", {"x": [marker], "y": [0.0]})
        read_until(sock, buf, str(marker).encode(), time.monotonic() + 5)


def test_an_export_through_nginx_links_to_nginx_and_the_prefix(stack, published):
    _, nginx = stack
    status, _, body = http_get(nginx.url(f"/api/v1/documents/{published.name}/export.html"), timeout=30)
    assert status == 200, body[:300]
    page = body.decode()
    assert f"http://127.0.0.1:{nginx.port}{PREFIX}/api/v1/documents/{published.name}" in page


def test_plotwire_believes_its_loopback_peer_by_default(stack, published):
    server, _ = stack
    url = f"{server.base_url}{PREFIX}/api/v1/documents/{published.name}/export.html"
    status, _, body = http_get(url, timeout=30, headers={"X-Forwarded-Proto": "https",
                                                         "X-Forwarded-Host": "plots.example.com"})
    assert status == 200, body[:300]
    page = body.decode()
    assert f"https://plots.example.com{PREFIX}/api/v1/documents/{published.name}" in page
    assert f"127.0.0.1:{server.port}" not in page
