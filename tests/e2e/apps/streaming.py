# "streaming" app for E2E_SERVER=bokeh: empty, the target of examples/streaming_push.py
# (whose default URL is http://127.0.0.1:5006/streaming). plotwire serves any app path.
from bokeh.io import curdoc

curdoc()  # nothing to build
