"""A simulated training run that publishes its own dashboard and reads a slider back.

    plotwire serve --port 5006
    python examples/training_run.py --url localhost:5006 --name runs/demo

It publishes a dashboard spec (docs/dashboard-spec.md): a loss line (log y axis, following
the newest 500 steps), an accuracy line, a learning-rate slider and a stop button. Then
it "trains": every step the loss falls by an amount that depends on the learning rate,
with noise, and every ``--batch`` steps the new rows are streamed. Moving the slider in
any browser that has the page open changes the rate the loop uses from the next step on
(``Client.on_change``); the stop button ends the run (``Client.on_click``). The loop also
sets the slider's title for every view, so all viewers see the rate in use.

Each change of rate is printed as ``lr <value> from view <view id>``, and the run ends
with ``done <steps> steps``.
"""
from __future__ import annotations

import argparse
import math
import random
import threading
import time

from plotwire import Client, Event

SPEC = {
    "title": "Training run",
    "sources": {
        "metrics": {"columns": {"step": "float64", "loss": "float64", "accuracy": "float64"}},
    },
    "plots": {
        "loss": {"kind": "line", "source": "metrics", "x": "step", "y": "loss", "title": "Loss",
                 "x_label": "step", "y_label": "loss", "y_axis": "log", "x_range": {"follow": 500}},
        "accuracy": {"kind": "line", "source": "metrics", "x": "step", "y": "accuracy", "title": "Accuracy",
                     "x_label": "step", "y_range": {"start": 0, "end": 1}, "color": "green"},
    },
    "widgets": {
        "lr": {"kind": "slider", "title": "learning rate", "start": 0.001, "end": 0.1, "step": 0.001,
               "value": 0.01},
        "stop": {"kind": "button", "label": "Stop", "button_type": "danger"},
    },
    "layout": {"grid": {"loss": [0, 0, 1, 1], "accuracy": [0, 1, 1, 1], "lr": [1, 0, 1, 1], "stop": [1, 1, 1, 1]}},
}


class Run:
    """The state the event thread shares with the training loop."""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.stopped = threading.Event()

    def on_lr(self, event: Event) -> None:
        """Slider callback: runs on the client's event thread."""
        self.lr = float(event.value)
        print(f"lr {self.lr:g} from view {event.view}", flush=True)

    def on_stop(self, event: Event) -> None:
        """Stop-button callback."""
        print(f"stop from view {event.view}", flush=True)
        self.stopped.set()


def train(client: Client, steps: int, batch: int, interval: float) -> int:
    """Run up to ``steps`` steps; return how many ran."""
    run = Run(lr=SPEC["widgets"]["lr"]["value"])
    client.on_change("lr", run.on_lr, attr="value")
    client.on_click("stop", run.on_stop)
    loss, rows = 2.5, {"step": [], "loss": [], "accuracy": []}
    shown_lr = None
    step = 0
    for step in range(1, steps + 1):
        if run.stopped.is_set():
            break
        lr = run.lr
        loss = max(1e-3, loss * (1 - min(lr, 0.1) * 0.5) + random.gauss(0, 0.002) + (0.02 if lr > 0.08 else 0))
        rows["step"].append(step)
        rows["loss"].append(loss)
        rows["accuracy"].append(1 - math.exp(-3 / (1 + loss)) * 0.9)
        if step % batch == 0:
            client.stream("metrics", rows)
            rows = {"step": [], "loss": [], "accuracy": []}
            if lr != shown_lr:
                client.set("lr", "title", f"learning rate (in use: {lr:g})")
                shown_lr = lr
        time.sleep(interval)
    if rows["step"]:
        client.stream("metrics", rows)
    return step


def main() -> None:
    """Parse the command line, publish, train."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="localhost:5006", help="the plotwire server (host:port or URL)")
    parser.add_argument("--name", default="runs/demo", help="the document name")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10, help="steps per stream request")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds per step")
    args = parser.parse_args()
    with Client(args.url, args.name) as client:
        published = client.publish(SPEC)
        print(f"published {published.url}", flush=True)
        steps = train(client, args.steps, args.batch, args.interval)
        print(f"done {steps} steps", flush=True)


if __name__ == "__main__":
    main()
