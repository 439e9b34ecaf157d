#!/usr/bin/env bash
# A KPI dashboard fed only by curl: publish a dashboard spec (docs/dashboard-spec.md),
# then stream one row of made-up KPIs per second as JSON columns (docs/rest-api.md).
#
#   plotwire serve --port 5006
#   examples/kpi_curl.sh [SERVER_URL] [DOCUMENT_NAME]    # default http://localhost:5006 kpi
#   COUNT=10 INTERVAL=0.2 examples/kpi_curl.sh           # 10 rows, 5 per second
#
# Every write carries an Idempotency-Key, and curl retries a refused connection, a
# timeout or a 5xx with that same key (--retry, --retry-connrefused), so a server
# restart neither loses nor doubles a row. A 4xx is final: curl prints the server's
# {"error", "field"} and the script stops.
set -euo pipefail

server="${1:-http://localhost:5006}"
name="${2:-kpi}"
count="${COUNT:-3600}"
interval="${INTERVAL:-1}"
api="$server/api/v1/documents/$name"

key() { cat /proc/sys/kernel/random/uuid 2>/dev/null || python3 -c 'import uuid; print(uuid.uuid4())'; }

send() {  # send METHOD PATH BODY
    curl --silent --show-error --fail-with-body --retry 5 --retry-connrefused --retry-delay 1 \
        -X "$1" -H "Content-Type: application/json" -H "Idempotency-Key: $(key)" \
        --data-binary "$3" "$api$2"
    echo
}

send PUT "" '{
  "title": "KPIs",
  "sources": {
    "kpi": {"columns": {"time": "datetime", "revenue": "float64", "users": "int32"}, "max_rows": 3600}
  },
  "plots": {
    "revenue": {"kind": "line", "source": "kpi", "x": "time", "y": "revenue", "title": "Revenue per minute",
                "x_axis": "datetime", "y_label": "EUR", "x_range": {"follow": 600000}},
    "users": {"kind": "step", "source": "kpi", "x": "time", "y": "users", "title": "Users online",
              "x_axis": "datetime", "mode": "after"}
  },
  "widgets": {
    "table": {"kind": "data_table", "source": "kpi", "columns": ["time", "revenue", "users"], "height": 200}
  },
  "layout": {"grid": {"revenue": [0, 0, 1, 1], "users": [0, 1, 1, 1], "table": [1, 0, 1, 2]}}
}'
echo "open $server/d/$name/"

revenue=100
users=40
for ((i = 0; i < count; i++)); do
    now_ms=$(date +%s%3N)
    revenue=$(( revenue + RANDOM % 21 - 10 )); (( revenue < 0 )) && revenue=0
    users=$(( users + RANDOM % 7 - 3 )); (( users < 0 )) && users=0
    send POST "/sources/kpi/stream" "{\"time\": [$now_ms], \"revenue\": [$revenue.5], \"users\": [$users]}"
    sleep "$interval"
done
