#!/usr/bin/env bash
# Follows a log file into a live dashboard with nothing but the plotwire binary:
# `tail -F` (which survives log rotation), `awk` to turn each line into a CSV row, and
# `plotwire push` reading stdin, sending rows as they come (every 250 ms at most).
#
#   cargo run --release -p plotwire -- serve &
#   examples/tail_log.sh /var/log/app/latency.log      # lines like "1764590000123 42.5"
#   # open http://127.0.0.1:5006/d/ops/latency/
#
# Without a log to follow, `examples/tail_log.sh --demo` writes one (a line every 100 ms).
# PLOTWIRE_URL and PLOTWIRE (the binary, default `plotwire` on PATH) can be set.
set -euo pipefail

plotwire="${PLOTWIRE:-plotwire}"
log="${1:?usage: tail_log.sh LOGFILE | --demo}"
if [ "$log" = --demo ]; then
    log="$(mktemp -t plotwire-demo-XXXX.log)"
    ( for _ in $(seq 1 100000); do
          echo "$(date +%s%3N) $((RANDOM % 100)).$((RANDOM % 10))" >> "$log"
          sleep 0.1
      done ) &
    trap 'kill $! 2>/dev/null || true' EXIT
    echo "writing a demo log to $log" >&2
fi

spec="$(mktemp -t plotwire-spec-XXXX.json)"
cat > "$spec" <<'JSON'
{"title": "Latency",
 "sources": {"lat": {"columns": {"t": "datetime", "ms": "float64"}, "max_rows": 100000}},
 "plots": {"latency": {"kind": "scatter", "source": "lat", "x": "t", "y": "ms", "title": "latency, ms",
                        "x_axis": "datetime", "x_range": {"follow": 600000}}},
 "layout": {"grid": {"latency": [0, 0, 1, 1]}, "cell_width": 900, "cell_height": 400}}
JSON
"$plotwire" publish ops/latency "$spec"

# mawk (Debian's awk) reads its input in blocks unless told to read line by line.
awk=(awk)
if awk -W version 2>/dev/null | grep -q mawk; then awk=(awk -W interactive); fi

# The header row first, then one row per log line; fflush so each row leaves awk at once.
{ echo "t,ms"; tail -n 0 -F "$log" | "${awk[@]}" '{ print $1 "," $2; fflush() }'; } \
    | "$plotwire" push --format csv --rollover 100000 ops/latency lat -
