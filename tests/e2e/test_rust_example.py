"""The Rust client's example service (crates/plotwire-client/examples/system_metrics.rs,
issue 8) end to end: it publishes its dashboard and streams a sample every second; a
click on "Reset" in headless Chromium reaches it as a viewer event, and it clears the
source, which the page shows."""
from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from support import REPO_ROOT, wait_for, wait_value

pytestmark = pytest.mark.plotwire_only

EXAMPLE = Path(os.environ.get("PLOTWIRE_EXAMPLES", str(REPO_ROOT / "target" / "debug" / "examples"))) / "system_metrics"
NAME = "host/metrics"


def rows(server) -> int:
    with urllib.request.urlopen(f"{server.base_url}/api/v1/documents/{NAME}/sources/host", timeout=5) as resp:
        return json.loads(resp.read())["rows"]


def test_the_metrics_service_streams_and_its_reset_button_clears(server, browser_page):
    assert EXAMPLE.exists(), f"{EXAMPLE} is missing: cargo build -p plotwire-client --example system_metrics"
    service = subprocess.Popen([str(EXAMPLE), server.base_url, "--seconds", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: rows_or_zero(server) >= 3, timeout=20, desc="three samples")
        page = browser_page.page
        page.goto(f"{server.base_url}/d/{NAME}/", wait_until="load", timeout=20000)
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                               "Bokeh.documents[0].get_model_by_name('host') != null", timeout=20000)
        shown = lambda: page.evaluate("""() => {
            const data = Bokeh.documents[0].get_model_by_name('host').data;
            return Array.from(data instanceof Map ? data.get('cpu') : data.cpu).length;
        }""")
        before = wait_value(shown, lambda n: n >= 3, timeout=10, desc="the page's samples")
        button = page.locator("button", has_text="Reset")
        button.wait_for(state="visible", timeout=10000)
        button.click()
        # Cleared: the page starts over from at most a sample or two.
        wait_value(shown, lambda n: n < before and n <= 2, timeout=10, desc="the samples cleared in the page")
        assert rows(server) <= 3, "the source was cleared"
        browser_page.assert_no_errors()
    finally:
        service.kill()
        out, _ = service.communicate(timeout=10)
    assert "pressed Reset" in out, out


def rows_or_zero(server) -> int:
    try:
        return rows(server)
    except OSError:
        return 0
