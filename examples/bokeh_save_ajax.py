"""A standalone Bokeh page, saved with ``bokeh.io.save``, that reads a plotwire source.

Bokeh users keep their own way of making pages: point an ``AjaxDataSource`` at plotwire's
read-back URL and the saved file stays live wherever it is opened (docs/exports.md).

    plotwire serve &
    plotwire publish runs/exp42 examples/specs/training-run.json
    python examples/bokeh_save_ajax.py --url http://127.0.0.1:5006 --doc runs/exp42 \\
        --source train --x step --y loss -o mine.html

The page has two plots of the same source:
- "new rows": an ``AjaxDataSource`` in append mode with the cursor adapter, so each row
  arrives once (``?since=<cursor>``; the answer's ``reset`` starts over);
- "whole content": an ``AjaxDataSource`` in replace mode reading ``?format=columns``, no
  JavaScript at all, the whole content on every poll.

Both use ``method="GET"`` and ``content_type="text/plain"``: a simple CORS request, with
no preflight, from any origin and from ``file://``. BokehJS is inlined (``INLINE``), so
the file works offline.
"""
from __future__ import annotations

import argparse

from bokeh.io import save
from bokeh.layouts import row
from bokeh.models import AjaxDataSource, CustomJS
from bokeh.plotting import figure
from bokeh.resources import INLINE

# The cursor adapter: drop a stale answer, move the cursor, start over on a reset.
ADAPTER = """
const r = cb_data.response;
const u = new URL(cb_obj.data_url);
if (String(r.since) !== u.searchParams.get("since")) return {};
u.searchParams.set("since", String(r.next));
cb_obj.data_url = u.toString();
if (r.reset) { cb_obj.data = r.data; return {}; }
return r.data;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5006", help="the plotwire server")
    parser.add_argument("--doc", default="runs/exp42", help="the published document")
    parser.add_argument("--source", default="train", help="the source's name or id")
    parser.add_argument("--x", default="step", help="the x column")
    parser.add_argument("--y", default="loss", help="the y column")
    parser.add_argument("--interval", type=int, default=1000, help="polling interval, ms")
    parser.add_argument("-o", "--output", default="plotwire-ajax.html", help="the file to write")
    args = parser.parse_args()

    base = f"{args.url.rstrip('/')}/api/v1/documents/{args.doc}/sources/{args.source}"
    columns = {args.x: [], args.y: []}
    new_rows = AjaxDataSource(name="new_rows", data_url=f"{base}?since=0", method="GET",
                              content_type="text/plain", polling_interval=args.interval,
                              mode="append", max_size=100_000, adapter=CustomJS(code=ADAPTER),
                              data=dict(columns))
    whole = AjaxDataSource(name="whole", data_url=f"{base}?format=columns", method="GET",
                           content_type="text/plain", polling_interval=args.interval,
                           mode="replace", data=dict(columns))

    appended = figure(title="new rows (cursor)", width=450, height=300)
    appended.line(args.x, args.y, source=new_rows)
    replaced = figure(title="whole content (replace)", width=450, height=300)
    replaced.scatter(args.x, args.y, source=whole)
    save(row(appended, replaced), filename=args.output, resources=INLINE,
         title=f"{args.doc} from plotwire")
    print(args.output)


if __name__ == "__main__":
    main()
