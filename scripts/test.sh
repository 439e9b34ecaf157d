#!/usr/bin/env bash
# Runs every plotwire test on a fresh machine: installs what the tests need (Debian
# chromium, Python bokeh==3.9.2, Playwright, pytest, numpy), installs the Python client
# (clients/python) and runs its unit tests, then formatting and lint checks, the Rust
# unit, property and integration tests, and the end-to-end tests that drive the real
# bokeh.client, the Python client and real BokehJS in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean build gains nothing from incremental state, which doubles the target folder.
export CARGO_INCREMENTAL=0

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
scripts/install-test-deps.sh

step "Python client: pip install ./clients/python, then its unit tests (no server needed)"
python3 -m pip install -q --disable-pip-version-check -r clients/python/requirements-test.txt ./clients/python
(cd clients/python && python3 -m pytest tests -q -p no:cacheprovider)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

step "Rust tests (unit, property, fixture and protocol integration)"
cargo test --workspace --locked

# `cargo test` built the binaries and examples the next steps run (a separate `cargo
# build` would resolve features differently and build every dependency a second time).
step "checking the binaries cargo test built for the end-to-end tests and the bench"
for built in target/debug/plotwire target/debug/plotwire-bench target/debug/examples/system_metrics target/debug/examples/embed_in_axum; do
    test -x "$built" || { echo "missing $built: cargo test did not build it" >&2; exit 1; }
done
export PLOTWIRE_BIN="$PWD/target/debug/plotwire"
export PLOTWIRE_EXAMPLES="$PWD/target/debug/examples"

step "end-to-end tests: bokeh.client ${BOKEH_VERSION:-3.9.2} and BokehJS in Chromium"
python3 -m pytest tests/e2e -q -p no:cacheprovider

step "bench smoke run: level of detail (plotwire-lod in-process) at 2e6 points"
target/debug/plotwire-bench lod --points 2000000 --queries 50

step "bench smoke run: exported pages (50 pages polling for 3 s, the export of 1e5 rows), correctness only"
target/debug/plotwire-bench exports --plotwire-bin target/debug/plotwire --pages 50 --seconds 3 --warmup 2 --points 100000 --export-runs 1

step "bench smoke run: fan-out and ingest with and without TLS (10 viewers, 2 s each), correctness only"
target/debug/plotwire-bench tls --plotwire-bin target/debug/plotwire --viewers 10 --seconds 2 --ingest-seconds 2 --ingest-batches 20

step "bench smoke run: access control off and on (REST ingest, 10 views fan-out, 2 s each), correctness only"
target/debug/plotwire-bench access --plotwire-bin target/debug/plotwire --rounds 1 --ingest-seconds 2 --viewers 10 --fanout-seconds 2

step "bench smoke run: sizing (RSS per view, per LOD view, per point held) at small counts, correctness only"
target/debug/plotwire-bench sizing --plotwire-bin target/debug/plotwire --views 0,20 --lod-points 200000 --lod-views 0,5 --points 200000,400000

step "bench smoke run: streaming into a LOD source with 10 views open (2 s, stored), correctness only"
target/debug/plotwire-bench lod-views --plotwire-bin target/debug/plotwire --views 10 --seconds 2 --rounds 1 --stored

step "bench smoke run: every workload on plotwire and bokeh serve, correctness only"
target/debug/plotwire-bench --quick --plotwire-bin target/debug/plotwire --python python3
