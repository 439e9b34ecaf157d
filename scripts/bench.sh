#!/usr/bin/env bash
# Benchmarks plotwire against `bokeh serve` 3.9.2 in the same run: six workloads (ingest,
# fan-out, big document, browser, slow viewer, pull interference), a table of both figures,
# their ratio and plotwire's targets on stdout, and the same as JSON in
# target/bench/results.json.
#
#   scripts/bench.sh                    # full run, release build
#   scripts/bench.sh --quick            # smoke run: correctness only, a few seconds per workload
#   scripts/bench.sh --only plotwire    # skip Bokeh (also: --workload fanout, ...)
#
# Installs what it needs first: a virtual environment .bench-venv with
# tests/e2e/requirements.txt (bokeh==3.9.2, Playwright, numpy; skipped when already
# satisfied) and Debian's chromium for the browser workload (scripts/install-test-deps.sh).
# Extra arguments go to plotwire-bench (see `target/release/plotwire-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.bench-venv
req=tests/e2e/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
    echo "bench: creating $venv (python3 -m venv)" >&2
    python3 -m venv "$venv"
    # The venv ignores itself, so git never sees it.
    printf '*\n' > "$venv/.gitignore"
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x /usr/bin/chromium ] \
    && "$venv/bin/python" -c 'import bokeh, playwright, numpy' 2>/dev/null; then
    echo "bench: $venv and chromium already satisfied" >&2
else
    # Debian chromium if missing, and the pinned packages into the venv.
    PYTHON="$venv/bin/python" scripts/install-test-deps.sh >&2
    printf '%s\n' "$want" > "$stamp"
fi

# Fan-out with 1000 viewers needs about 1100 descriptors in the bench and in each server
# (the servers are children, so they inherit the limit).
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 65536 ]; then
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
echo "bench: open files limit $(ulimit -n)" >&2

cargo build --release --locked -p plotwire -p plotwire-bench >&2
exec target/release/plotwire-bench --plotwire-bin target/release/plotwire \
    --python "$venv/bin/python" "$@"
