"""The raw side of bench/lod_page.py: one 900x320 figure with a ``line`` of a
ColumnDataSource holding the whole random walk (float64 x = arange, y = cumsum of standard
normals, seed 1), sent to the browser as it is, as ``bokeh serve`` does without any level of
detail.

    python -m bokeh serve bench/apps/lod_raw.py --args --points 10000000

The series is made once per server process and shared by every session's document (a
module cached in ``sys.modules``; an app script itself runs again for each session), so a
session costs what serving it costs, not the making of the data.
"""
from __future__ import annotations

import argparse
import sys
import types

import numpy as np
from bokeh.io import curdoc
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

PLOT_W, PLOT_H = 900, 320
SEED = 1

ap = argparse.ArgumentParser(prog="lod_raw.py")
ap.add_argument("--points", type=int, default=10_000_000)
args = ap.parse_args(sys.argv[1:])

cache = sys.modules.setdefault("_bench_lod_raw_cache", types.ModuleType("_bench_lod_raw_cache"))
if getattr(cache, "points", None) != args.points:
    cache.x = np.arange(args.points, dtype=np.float64)
    cache.y = np.cumsum(np.random.default_rng(SEED).standard_normal(args.points))
    cache.points = args.points

source = ColumnDataSource(data={"x": cache.x, "y": cache.y}, name="s")
plot = figure(width=PLOT_W, height=PLOT_H, title="lod raw", name="p")
plot.line("x", "y", source=source)
doc = curdoc()
doc.title = "lod raw"
doc.add_root(plot)
