#!/usr/bin/env bash
# Runs each test program given, then prints one line "N passed, M failed" summing their test cases (each program's
# doctest listener prints its own counts in that form). A program that crashes or prints no counts adds a failure.
# Exits non-zero on any failure.
set -u
passed=0
failed=0
for bin in "$@"; do
    log=$(mktemp)
    "$bin" --no-intro=true 2>&1 | tee "$log" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
    rc=${PIPESTATUS[0]}
    counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$counts" ]; then
        echo "$bin ended without reporting its counts (exit code $rc): counted as one failure"
        failed=$((failed + 1))
        continue
    fi
    p=${counts%% passed*}
    f=${counts#*, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$bin exited with code $rc although no test case failed: counted as one failure"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
