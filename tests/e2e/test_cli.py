"""The command line's client subcommands end to end (issue 8): `plotwire publish` of a
dashboard spec and `plotwire push` of a 100,000-row CSV into it, run as the real binary;
headless Chromium then shows the page with all 100,000 rows, and `plotwire get` reads
them back."""
from __future__ import annotations

import json
import subprocess

import pytest

from support import PLOTWIRE_BIN, unique_id

pytestmark = pytest.mark.plotwire_only

ROWS = 100_000
SPEC = {
    "title": "pushed from the command line",
    "sources": {"train": {"columns": {"step": "int32", "loss": "float64"}}},
    "plots": {"loss": {"kind": "line", "source": "train", "x": "step", "y": "loss", "title": "loss"}},
    "layout": {"grid": {"loss": [0, 0, 1, 1]}},
}


def cli(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLOTWIRE_BIN), *args], env={"PLOTWIRE_URL": server.base_url, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_a_pushed_csv_shows_in_the_page_whole(server, browser_page, tmp_path):
    name = f"e2e/{unique_id('cli')}"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    published = cli(server, "publish", name, str(spec))
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == f"{server.base_url}/d/{name}/"

    rows = tmp_path / "train.csv"
    rows.write_text("step,loss\n" + "".join(f"{i},{1.0 / (i + 1)!r}\n" for i in range(ROWS)))
    pushed = cli(server, "push", name, "train", str(rows), "--batch-rows", "25000")
    assert pushed.returncode == 0, pushed.stderr
    assert f"{ROWS} rows sent" in pushed.stderr, pushed.stderr

    page = browser_page.page
    page.goto(f"{server.base_url}/d/{name}/", wait_until="load", timeout=30000)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                           "Bokeh.documents[0].get_model_by_name('train') != null", timeout=30000)
    page.locator("canvas").first.wait_for(state="visible", timeout=30000)
    got = page.evaluate("""() => {
        const data = Bokeh.documents[0].get_model_by_name('train').data;
        const col = (k) => Array.from(data instanceof Map ? data.get(k) : data[k]);
        const step = col('step'), loss = col('loss');
        return {n: step.length, first: [step[0], loss[0]], last: [step[step.length - 1], loss[loss.length - 1]],
                ordered: step.every((s, i) => s === i)};
    }""")
    assert got["n"] == ROWS, got
    assert got["ordered"], "the rows arrived in order"
    assert got["first"] == [0, 1.0] and got["last"] == [ROWS - 1, 1.0 / ROWS], got
    browser_page.assert_no_errors()

    back = cli(server, "get", name, "train", "--format", "csv")
    assert back.returncode == 0, back.stderr
    assert len(back.stdout.splitlines()) == ROWS + 1


def test_the_events_command_resumes_across_a_server_restart(server_factory, browser_page, tmp_path):
    """`plotwire events` (the Rust client's event stream) keeps running through a
    restart of a server with a data dir, and prints what viewers do after it."""
    import threading
    import time

    from support import wait_value

    srv = server_factory()
    name = f"cli/{unique_id('events')}"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    assert cli(srv, "publish", name, str(spec)).returncode == 0
    proc = subprocess.Popen([str(PLOTWIRE_BIN), "events", "--url", srv.base_url, name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def opened() -> list[dict]:
        return [e for e in lines if e.get("kind") == "view" and e.get("event") == "open"]

    try:
        page = browser_page.page
        page.goto(f"{srv.base_url}/d/{name}/", wait_until="load")
        first = wait_value(opened, lambda v: len(v) == 1, timeout=20, desc="the first view's open event")
        srv.stop()
        time.sleep(1)
        srv.start()
        other = page.context.new_page()
        other.goto(f"{srv.base_url}/d/{name}/", wait_until="load")
        after = wait_value(opened, lambda v: any(e["seq"] > first[0]["seq"] and e["view"] != first[0]["view"]
                                                 for e in v[1:]),
                           timeout=30, desc="an open event from after the restart")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        seqs = [e["seq"] for e in lines]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert after[-1]["doc"] == name
        other.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_export_data_writes_parquet_that_pyarrow_and_pandas_read(server, tmp_path):
    """`plotwire export-data --format parquet` of a stored source, read back by the
    readers people use: pyarrow and pandas (the server is still running)."""
    import pandas as pd
    import pyarrow.parquet as pq

    name = f"e2e/{unique_id('parquet')}"
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    assert cli(server, "publish", name, str(spec)).returncode == 0
    rows = tmp_path / "train.csv"
    n = 1000
    rows.write_text("step,loss\n" + "".join(f"{i},{1.0 / (i + 1)!r}\n" for i in range(n)))
    pushed = cli(server, "push", name, "train", str(rows))
    assert pushed.returncode == 0, pushed.stderr

    out = tmp_path / "train.parquet"
    assert server.data_dir, "the e2e server stores its documents"
    exported = cli(server, "export-data", name, "train", "--format", "parquet", "-o", str(out),
                   "--data-dir", server.data_dir)
    assert exported.returncode == 0, exported.stderr
    assert f"{n} rows" in exported.stderr, exported.stderr

    table = pq.read_table(out)
    assert table.num_rows == n
    assert table.column("step").to_pylist() == list(range(n))
    assert table.column("loss").to_pylist() == [1.0 / (i + 1) for i in range(n)]
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["loss", "step"]
    assert frame["step"].iloc[-1] == n - 1
