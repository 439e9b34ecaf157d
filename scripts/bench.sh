#!/usr/bin/env bash
# Benchmarks plotwire against `bokeh serve` 3.9.2 in the same run and prints a table of
# both figures and their ratio (the ratios are what matter on shared machines).
#
#   scripts/bench.sh            # full run (a few minutes)
#   scripts/bench.sh --quick    # smoke run, about a minute
#   scripts/bench.sh --only plotwire
#
# Needs `bokeh==3.9.2` (with numpy) on PATH unless --only plotwire. Extra arguments go to
# plotwire-bench (see `target/release/plotwire-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p plotwire -p plotwire-bench
exec target/release/plotwire-bench --plotwire-bin target/release/plotwire "$@"
