"""The example server (`plotwire serve --examples`, crates/plotwire-server/src/demos.rs)
in headless Chromium: the index lists the four example dashboards, each renders and
updates, the sensors page gets a downsampled copy, and the two-way widgets steer the
producer inside the server, whose answer reaches every page.

Everything is on 127.0.0.1; every wait is bounded (support.wait_value, Playwright
timeouts).
"""
from __future__ import annotations

import urllib.request

import pytest

from support import wait_value

pytestmark = pytest.mark.plotwire_only

NAMES = ["examples/random-walk", "examples/training", "examples/sensors", "examples/widgets"]
SOURCES = {"examples/random-walk": "walk", "examples/training": "train",
           "examples/sensors": "sensors", "examples/widgets": "wave"}

# Rows of the named source in the page, or None before the document is there.
JS_ROWS = """(name) => {
    const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
    const src = doc && doc.get_model_by_name(name);
    if (src == null) return null;
    const cols = Object.values(src.data instanceof Map ? Object.fromEntries(src.data) : src.data);
    return cols.length == 0 ? 0 : cols[0].length;
}"""

JS_LINE_COLOR = """() => {
    const doc = Bokeh.documents[0];
    const glyph = doc.get_model_by_id("plot:waveform:r0:glyph");
    if (glyph == null) return null;
    const c = glyph.line_color;  // a colour, or a value spec {value: colour}
    return c != null && typeof c === "object" ? c.value : c;
}"""


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    from conftest import _start_server, _stop_server
    srv = _start_server(tmp_path_factory.mktemp("examples"), "examples", ["--examples"], None, None)
    yield srv
    _stop_server(srv)


def rows(page, name: str):
    return page.evaluate(JS_ROWS, name)


def test_the_index_lists_every_example(examples):
    with urllib.request.urlopen(f"{examples.base_url}/", timeout=10) as resp:
        index = resp.read().decode()
    for name in NAMES:
        assert f"/d/{name}/" in index, name


@pytest.mark.parametrize("name", NAMES)
def test_each_example_renders_and_updates(examples, browser_page, name):
    page = browser_page.page
    page.goto(f"{examples.base_url}/d/{name}/", wait_until="load")
    source = SOURCES[name]
    first = wait_value(lambda: rows(page, source), lambda n: n is not None and n > 0, timeout=20,
                       desc=f"{name}: data in the page")
    wait_value(lambda: rows(page, source), lambda n: n != first, timeout=10, desc=f"{name}: the data updates")
    if name == "examples/sensors":
        # 900,000 points in the document; the page holds a copy for its width.
        assert rows(page, source) < 20_000
    browser_page.assert_no_errors()


def test_the_two_way_widgets_steer_the_producer_for_every_page(examples, browser_page):
    page = browser_page.page
    other = page.context.new_page()
    for p in (page, other):
        p.goto(f"{examples.base_url}/d/examples/widgets/", wait_until="load")
        wait_value(lambda p=p: rows(p, "wave"), lambda n: n is not None and n > 5, timeout=20,
                   desc="the wave in the page")
    # A viewer picks a colour: the producer sets it for every page.
    page.evaluate("""() => { Bokeh.documents[0].get_model_by_name("color").value = "#d62728"; }""")
    for p in (page, other):
        wait_value(lambda p=p: p.evaluate(JS_LINE_COLOR), lambda c: c == "#d62728", timeout=10,
                   desc="the chosen colour in every page")
    # Clear empties the wave, which then grows again.
    before = rows(other, "wave")
    page.locator("button", has_text="Clear").click()
    wait_value(lambda: rows(other, "wave"), lambda n: n is not None and n < min(before, 20), timeout=10,
               desc="the wave cleared in the other page")
    other.close()
    browser_page.assert_no_errors()
