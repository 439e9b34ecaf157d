#!/usr/bin/env bash
# How fast `plotwire push` sends a file (issue 8): a 3-column numeric CSV and the same rows
# as NDJSON, 1,000,000 rows each by default, into a server it starts; prints rows/s end to
# end (read, parse, send, every answer). Target: CSV at least 2 M rows/s.
#
#   bench/cli_push.sh [ROWS]        # builds the release binary first
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
cargo build --release --locked -p plotwire >&2
bin=target/release/plotwire
dir="$(mktemp -d -t plotwire-cli-bench-XXXX)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" serve --port "$port" --data-dir "$dir/data" --log-level warn >"$dir/server.log" 2>&1 &
server=$!
export PLOTWIRE_URL="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -sf "$PLOTWIRE_URL/healthz" >/dev/null && break; sleep 0.1; done
python3 - "$dir" "$rows" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
with open(f"{d}/rows.csv", "w") as f:
    f.write("a,b,c\n")
    f.writelines(f"{i},{i * 0.5},{i % 7}\n" for i in range(n))
with open(f"{d}/rows.ndjson", "w") as f:
    f.writelines(json.dumps({"a": i, "b": i * 0.5, "c": i % 7}) + "\n" for i in range(n))
spec = {"sources": {"s": {"columns": {"a": "float64", "b": "float64", "c": "float64"}}},
        "plots": {"p": {"kind": "line", "source": "s", "x": "a", "y": "b"}},
        "layout": {"grid": {"p": [0, 0, 1, 1]}}}
json.dump(spec, open(f"{d}/spec.json", "w"))
PY
for format in csv ndjson; do
    "$bin" publish "bench/$format" "$dir/spec.json" >/dev/null
    start=$(date +%s.%N)
    "$bin" push "bench/$format" s "$dir/rows.$format" --batch-rows 100000 --rollover "$rows" 2>/dev/null
    end=$(date +%s.%N)
    python3 -c "import sys; r, t = int(sys.argv[1]), float(sys.argv[3]) - float(sys.argv[2]); print(f'$format: {r} rows in {t:.2f} s: {r / t / 1e6:.2f} M rows/s')" "$rows" "$start" "$end"
done
