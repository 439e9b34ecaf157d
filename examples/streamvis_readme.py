"""The streamvis README example, run against plotwire with nothing changed but the import.

Source: the README of https://github.com/hrbigelow/streamvis at commit db440c0
(2023-04-15), section "Overview", the block under "In your client app (for example,
`my-app-client.py`)"; the same block is in the README up to commit b57e7d6. The only
change is its first line: ``from streamvis import Client`` became
``from plotwire import Client``.

That snippet uses ``rest_uri`` and ``run_name`` without defining them, and ``np``,
``math`` and ``sleep`` without importing them: streamvis's own ``my-app-client.py`` takes
them from its command line and imports them, and so does the preamble here.

    plotwire serve --port 5006
    python examples/streamvis_readme.py localhost:5006 myrun      # then open /d/myrun/

It runs for 10,000 steps of 0.2 s, as the README's loop does; stop it with Ctrl-C.
"""
import math
import sys
from time import sleep

import numpy as np

rest_uri = sys.argv[1] if len(sys.argv) > 1 else "localhost:5006"
run_name = sys.argv[2] if len(sys.argv) > 2 else "streamvis"

# ---- the README block, unchanged but for the import ------------------------------------
from plotwire import Client

# point your client to the running sv_rest_server service
client = Client(rest_uri, run_name)

# clear the data on the REST server associated with run_name
client.clear()

# specifies rectangular packing layout of plots
grid_map = dict(
        top_plot=(0,0,1,2), # (top,left,height,width)
        low_left_plot=(1,0,2,1),
        low_right_plot=(1,1,2,2)
        )

# set the physical layout in the page for your plots
client.set_layout(grid_map)

# Generate some data 
N = 1000
left_data = np.random.randn(N, 2)

for step in range(10000):
    sleep(0.2)
    top_data = [
            step,
            math.sin(1 + step / 10),
            0.5 * math.sin(1.5 + step / 20),
            1.5 * math.sin(2 + step / 15) 
            ]

    left_data = left_data + np.random.randn(N, 2) * 0.1

    client.tandem_lines('top_plot', top_data) 
    client.scatter('low_left_plot', left_data.tolist(), spatial_dim=1, append=False)
