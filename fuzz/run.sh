#!/bin/sh
# Runs each libFuzzer target for a bounded time: fuzz/run.sh <build dir> <seconds per target> <target>...
#
# The corpus of target T grows in <build dir>/corpus/T (not committed), starting from the seeds in fuzz/seeds/T.
# An input that crashes T or trips a sanitizer is written to fuzz/regressions/T/ (libFuzzer's artifact prefix),
# where `make test` replays it from then on; commit it with the fix. Exits 1 when any target found something.
set -u
build=$1
seconds=$2
shift 2
failed=""
for t in "$@"; do
    corpus="$build/corpus/$t"
    mkdir -p "$corpus" "fuzz/regressions/$t"
    echo "== fuzz_$t for ${seconds}s"
    # -timeout: one input running longer than 10 s is a hang; -rss_limit_mb: more than 2 GB is a runaway
    # allocation. -jobs=1 keeps to one core.
    if ! "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
            -artifact_prefix="fuzz/regressions/$t/" "$corpus" "fuzz/seeds/$t" 2> "$build/fuzz_$t.log"; then
        tail -n 40 "$build/fuzz_$t.log"
        failed="$failed $t"
    else
        grep -E "^Done [0-9]+ runs" "$build/fuzz_$t.log" | tail -n 1
    fi
done
if [ -n "$failed" ]; then
    echo "fuzzing found problems in:$failed; the inputs are under fuzz/regressions/<target>/ (logs: $build/fuzz_<target>.log)"
    exit 1
fi
echo "fuzzing: no crash in $# target(s), ${seconds}s each"
