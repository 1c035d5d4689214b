#!/usr/bin/env bash
# Out of memory is a clear error, never a crash: a tiny run is resumed with the fault-injection hook
# INCV3_TEST_FAIL_ALLOC_AFTER=N (every allocation after the first N fails; kernels/alloc.h) at N values that
# hit the data loading, the model, the optimizer, the checkpoint loading and the training steps' kernels.
# Each must exit with status 1 (no signal) and "out of memory: could not allocate ... MiB for ...", and
# leave the run continuable: a final resume without the hook reaches an uninterrupted run's weights.
# (Out of memory on --resume names last.safetensors and says the checkpoints are untouched: N=0.)
# Usage: test_alloc_failure.sh INCV3 SOURCE_ROOT
set -u
exe=$1
data="$2/../shared/data/mnist"
if [ ! -d "$data" ]; then
    echo "SKIP: $data not found (the team's shared MNIST subset)"
    exit 77
fi
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is needed to compare weights"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME="$tmp/cache"
# An injected failure ends the process from inside a kernel: what it still held is not a leak.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0:allocator_may_return_null=1"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
digest() { python3 "$(dirname "$0")/tensor_digest.py" "$1"; }
tiny=(--data "$data" --image-size 75 --no-aux --width 0.125 --limit-train 96 --batch 16 --lr 2e-3 --seed 9
      --threads 2 --conv-algo direct --checkpoint-every 2)

"$exe" train "${tiny[@]}" --epochs 2 --out "$tmp/ref" >"$tmp/ref.log" 2>&1 || fail "reference run: $(tail -3 "$tmp/ref.log")"
"$exe" train "${tiny[@]}" --epochs 1 --out "$tmp/run" >"$tmp/run.log" 2>&1 || fail "first epoch: $(tail -3 "$tmp/run.log")"
for n in 0 3 40 400 1200 2500 6000 20000; do
    INCV3_TEST_FAIL_ALLOC_AFTER=$n "$exe" train --resume "$tmp/run" --epochs 2 >"$tmp/oom.log" 2>"$tmp/oom.err"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "N=$n: the run completed (fewer allocations than N); not a failure case"
        continue
    fi
    [ "$rc" -eq 1 ] || fail "N=$n: exit status $rc, expected 1: $(tail -3 "$tmp/oom.err")"
    grep -Eq "out of memory: could not allocate [0-9.]+ MiB for " "$tmp/oom.err" ||
        fail "N=$n: no out-of-memory message: $(tail -3 "$tmp/oom.err")"
    echo "N=$n: exit $rc, $(grep -m1 'out of memory' "$tmp/oom.err")"
    [ -s "$tmp/run/checkpoints/last.safetensors" ] || fail "N=$n: last.safetensors is gone"
    grep -q "damaged\|cannot be continued" "$tmp/oom.err" && fail "N=$n: out of memory reported as damage: $(tail -2 "$tmp/oom.err")"
done
# Every checkpoint left behind is intact: the run continues to the uninterrupted run's weights.
"$exe" train --resume "$tmp/run" --epochs 2 >"$tmp/final.log" 2>&1 || fail "resume after the failures: $(tail -3 "$tmp/final.log")"
a=$(digest "$tmp/ref/model.safetensors") b=$(digest "$tmp/run/model.safetensors")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "after the failures the run reached different weights ($a, $b)"

if [ "$fails" -gt 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "alloc_failure: all checks passed"
