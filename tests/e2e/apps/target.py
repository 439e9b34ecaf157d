# "target" app for E2E_SERVER=bokeh: deliberately empty, like the fixtures' apps/target.py.
# Sessions of /target are created by a bokeh.client push_session(), whose PUSH-DOC
# replaces this empty document. (plotwire serves any app path as such an empty app.)
from bokeh.io import curdoc

curdoc()  # nothing to build
