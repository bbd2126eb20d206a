#!/usr/bin/env bash
# Runs each fuzz target of a CLEAVE_FUZZ build for a bounded time (ADR 0024):
#   run.sh <fuzz build dir> <seconds per target> <parallel jobs> [target...]
# Each target starts from its committed corpus (tests/fuzz/corpus/<t>) and its
# regression inputs, adds what it finds to <build>/fuzz-corpus/<t> (never to the tree),
# and writes a crashing input to <build>/fuzz-crashes/<t>/. Prints executions per target;
# fails when any target crashed, leaked or timed out on an input.
set -u
build=$1
seconds=$2
jobs=$3
shift 3
src=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=()
    for f in "$build"/bin/fuzz_*; do
        targets+=("$(basename "$f" | sed 's/^fuzz_//')")
    done
fi

run_one() {
    local t=$1
    local corpus=$build/fuzz-corpus/$t
    local crashes=$build/fuzz-crashes/$t
    local log=$build/fuzz-logs/$t.log
    local seeds=("$src/corpus/$t")

    mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
    if [ -d "$src/regressions/$t" ]; then
        seeds+=("$src/regressions/$t")
    fi
    # -timeout: an input that takes a second is a hang; -rss_limit_mb: a runaway allocation.
    "$build/bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" \
        >"$log" 2>&1
    local rc=$?
    local execs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    if [ $rc -eq 0 ]; then
        printf 'fuzz_%-12s %12s executions in %ss, no crash\n' "$t" "${execs:-?}" "$seconds"
    else
        printf 'fuzz_%-12s CRASHED (exit %d) after %s executions: see %s and %s\n' "$t" "$rc" \
            "${execs:-?}" "$log" "$crashes"
    fi
    return $rc
}

status=0
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || status=1
    done
    run_one "$t" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
    wait -n || status=1
done
exit $status
