#!/usr/bin/env bash
# Runs each test program given, then ends with one line "N passed, M failed" summing their test cases (each
# program's doctest listener prints its own counts in that form, with ", K skipped" when test cases skipped
# themselves: tests/skip.h, the real-CUDA program without a GPU). The skipped cases are counted on the line before
# the last, so that the last line keeps the form CI reads. A program that crashes or prints no counts adds a failure.
# Each `--skipped "what and why"` before the programs is a part of the suite that this machine cannot run (the
# Makefile says which): it is printed, so that a green run says what it did not test. Exits non-zero on any failure.
set -u
skipped_parts=()
while [ $# -gt 0 ] && [ "$1" = "--skipped" ]; do
    skipped_parts+=("$2")
    shift 2
done
counts_line='^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$'
passed=0
failed=0
skipped=0
for bin in "$@"; do
    log=$(mktemp)
    "$bin" --no-intro=true 2>&1 | tee "$log" | grep -v -E "$counts_line"
    rc=${PIPESTATUS[0]}
    counts=$(grep -E "$counts_line" "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$counts" ]; then
        echo "$bin ended without reporting its counts (exit code $rc): counted as one failure"
        failed=$((failed + 1))
        continue
    fi
    p=${counts%% passed*}
    f=${counts#*, }
    f=${f%% failed*}
    s=0
    case "$counts" in *skipped) s=${counts##*failed, }; s=${s%% skipped} ;; esac
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    if [ "$s" -gt 0 ]; then echo "$bin: $s test cases skipped on this machine (see its output above)"; fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$bin exited with code $rc although no test case failed: counted as one failure"
        failed=$((failed + 1))
    fi
done
for part in ${skipped_parts[@]+"${skipped_parts[@]}"}; do echo "skipped: $part"; done
if [ "$skipped" -gt 0 ]; then echo "skipped: $skipped test cases in all (not counted as passed)"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
