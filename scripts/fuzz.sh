#!/usr/bin/env bash
# Long runs of the property-based fuzz targets (proptest on stable Rust; see README
# "Fuzzing"):
#
#   scripts/fuzz.sh                         # every target, about 10 minutes each
#   scripts/fuzz.sh --minutes 2 frames apply
#   nice -n 19 scripts/fuzz.sh --cpu-minutes 60 apply   # a CPU budget, for a busy machine
#
# Targets: frames, messages, events, tokens (plotwire-protocol) and apply
# (plotwire-document), i.e. the `fuzz_*` tests of crates/*/tests/fuzz_<target>.rs.
# Builds them in release mode, then runs each chosen target, one process at a time, for
# about N minutes (or until its runs have used N CPU-minutes, with --cpu-minutes): a bounded loop of runs of its `fuzz_*` properties, each run with fresh
# random seeds and PLOTWIRE_FUZZ_CASES cases per property (adapted so that a run takes
# about a minute). A run is killed after a hard timeout, which counts as a hang. A target
# stops at its first failure: proptest has then saved the failing seed in
# crates/*/tests/fuzz_<target>.proptest-regressions (commit it) and the log is kept in
# target/fuzz-logs/. Prints per target: runs, cases (every execution of a property, shrink
# steps included), wall time, CPU time and failures. Exits non-zero if a target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

minutes=10
budget_kind=wall
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes)
        minutes="${2:?--minutes needs a number}"
        shift 2
        ;;
    --minutes=*)
        minutes="${1#--minutes=}"
        shift
        ;;
    --cpu-minutes)
        minutes="${2:?--cpu-minutes needs a number}"
        budget_kind=cpu
        shift 2
        ;;
    -h | --help)
        sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    frames | messages | events | tokens | apply)
        targets+=("$1")
        shift
        ;;
    *)
        echo "fuzz.sh: unknown argument $1 (targets: frames messages events tokens apply)" >&2
        exit 2
        ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(frames messages events tokens apply)
case "$minutes" in
'' | *[!0-9]*) echo "fuzz.sh: --minutes wants a whole number" >&2 && exit 2 ;;
esac

crate_of() {
    case "$1" in
    apply) echo plotwire-document ;;
    *) echo plotwire-protocol ;;
    esac
}

# --- build ---------------------------------------------------------------------------------
declare -A bin
for t in "${targets[@]}"; do
    crate="$(crate_of "$t")"
    echo "==> building fuzz_$t ($crate, release)"
    out="$(cargo test --release --locked -p "$crate" --test "fuzz_$t" --no-run 2>&1)" || {
        echo "$out" >&2
        exit 1
    }
    path="$(echo "$out" | sed -n "s/.*Executable tests\/fuzz_$t\.rs (\(.*\))/\1/p" | tail -n1)"
    [ -n "$path" ] && [ -x "$path" ] || {
        echo "$out" >&2
        echo "fuzz.sh: no test binary for fuzz_$t" >&2
        exit 1
    }
    bin[$t]="$root/$path"
done

logs="$root/target/fuzz-logs"
mkdir -p "$logs"
summary=()
failed=0

# --- run -----------------------------------------------------------------------------------
for t in "${targets[@]}"; do
    crate="$(crate_of "$t")"
    budget=$((minutes * 60))
    start=$(date +%s)
    cases_per_run=2000 # per property; adapted after each run
    runs=0 cases=0 failures=0 wall=0 cpu=0 note=""
    echo "==> fuzz_$t: about $minutes $budget_kind min"
    while :; do
        now=$(date +%s)
        if [ "$budget_kind" = cpu ]; then
            # Wall time is no guide on a busy machine: plan by the CPU time still to use,
            # and allow the run up to ten times that in wall time.
            left=$(awk -v b="$budget" -v c="$cpu" 'BEGIN {print int(b - c)}')
            [ "$left" -gt 5 ] || break
            limit=$((left * 10 + 600))
        else
            left=$((start + budget - now))
            [ "$left" -gt 5 ] || break
            limit=$((left * 2 + 120))
        fi
        # Expect the run to take ~60 s at the current rate; never plan past the budget.
        log="$logs/$t-$runs.log"
        tf="$(mktemp)"
        rc=0
        TIMEFORMAT='%R %U %S'
        # The binary runs in its crate's directory, as under cargo test, so that proptest
        # finds tests/*.proptest-regressions.
        { time (cd "$root/crates/$crate" && PLOTWIRE_FUZZ_CASES=$cases_per_run \
            timeout --kill-after=10 "$limit" "${bin[$t]}" fuzz_ --nocapture --test-threads=1 \
            >"$log" 2>&1); } 2>"$tf" || rc=$?
        read -r r u s <"$tf" || true
        rm -f "$tf"
        runs=$((runs + 1))
        run_cases=$(sed -n 's/.*fuzz-stats [^ ]* cases=\([0-9]*\).*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
        cases=$((cases + run_cases))
        wall=$(awk -v a="$wall" -v b="$r" 'BEGIN {print a + b}')
        cpu=$(awk -v a="$cpu" -v b="$u" -v c="$s" 'BEGIN {print a + b + c}')
        if [ "$rc" -ne 0 ]; then
            failures=$((failures + 1))
            if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
                note="hang: run $runs killed after ${limit}s"
            else
                note="failure (exit $rc)"
            fi
            echo "    run $runs: $note; log kept in ${log#"$root"/}"
            grep -E "Test failed|minimal failing input|panicked|overflow" "$log" | head -n 5 | sed 's/^/    | /' || true
            break
        fi
        rm -f "$log"
        echo "    run $runs: $run_cases cases in ${r}s (PLOTWIRE_FUZZ_CASES=$cases_per_run)"
        # Aim for ~60 s per run, and for the last run to end near the budget.
        if [ "$budget_kind" = cpu ]; then
            left=$(awk -v b="$budget" -v c="$cpu" 'BEGIN {print int(b - c)}')
            r=$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')
        else
            left=$((start + budget - $(date +%s)))
        fi
        target_s=$((left < 60 ? left : 60))
        cases_per_run=$(awk -v c="$cases_per_run" -v r="$r" -v t="$target_s" \
            'BEGIN {n = int(c * t / (r > 0.5 ? r : 0.5)); if (n > 4 * c) n = 4 * c; if (n < 50) n = 50; if (n > 10000000) n = 10000000; print n}')
    done
    line=$(printf '%-9s runs %4d  cases %10d  wall %7.1fs  cpu %7.1fs  failures %d %s' \
        "$t" "$runs" "$cases" "$wall" "$cpu" "$failures" "$note")
    echo "    $line"
    summary+=("$line")
    [ "$failures" -eq 0 ] || failed=1
done

echo
echo "==> fuzz summary ($minutes $budget_kind min per target)"
printf '    %s\n' "${summary[@]}"
exit "$failed"
