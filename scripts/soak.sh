#!/usr/bin/env bash
# Soak run (issue 6), outside CI: `plotwire serve` (release build) for an hour at 50
# batches/s of 100 float64 points (rollover 100 000), with 90 steady viewers that check
# every batch, 10 viewers that connect and disconnect in a loop and 1 stalled viewer that
# never reads (the server must close it; it then reconnects and stalls again).
#
#   scripts/soak.sh                 # 60 minutes
#   scripts/soak.sh --minutes 3     # a quick check
#
# Prints a line per minute (RSS, open fds, batches, deliveries, errors, churn cycles,
# stalled-viewer closes) and a summary: RSS at the start (after a 180 s warm-up), the
# maximum and the end, the slope of a linear fit (KiB/min), and every error. The summary
# also goes to target/bench/soak.json. Exit status 0 only with no error and a flat RSS.
# Other arguments go to `plotwire-bench soak` (see `target/release/plotwire-bench soak --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=60
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --minutes=*) minutes="${1#--minutes=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
case "$minutes" in
    ''|*[!0-9]*) echo "soak: --minutes takes a whole number" >&2; exit 2 ;;
esac

# About 110 descriptors are needed in the bench and in the server (a child: it inherits
# the limit); raise it anyway so the limit is never what fails.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 65536 ]; then
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fi
echo "soak: open files limit $(ulimit -n)" >&2

cargo build --release --locked -p plotwire -p plotwire-bench >&2
exec target/release/plotwire-bench soak --plotwire-bin target/release/plotwire \
    --duration "$((minutes * 60))" "${args[@]}"
