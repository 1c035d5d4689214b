#!/usr/bin/env bash
# Bitwise reproducibility of training: --deterministic gives the same weights on 1 and 2 threads (dropout
# included) and keeps doing so when a run is resumed on another thread count; without the flag, the same
# seed and thread count give the same weights when the kernel choice is the same (the machine's plan cache).
# Usage: test_determinism.sh INCV3 SOURCE_ROOT
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
export XDG_CACHE_HOME="$tmp/cache" # a fresh plan cache: the first run below times, the second reuses
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
digest() { python3 "$(dirname "$0")/tensor_digest.py" "$1"; }
tiny=(--data "$data" --image-size 75 --no-aux --width 0.125 --limit-train 96 --batch 16 --lr 2e-3 --seed 5
      --dropout 0.3)
train() { # NAME ARGS...: trains into $tmp/NAME; fails the test when the run fails
    local name=$1
    shift
    "$exe" train "$@" >"$tmp/$name.log" 2>&1 || fail "$name: run failed: $(tail -3 "$tmp/$name.log")"
}

train d1 "${tiny[@]}" --epochs 2 --threads 1 --deterministic --out "$tmp/d1"
train d2 "${tiny[@]}" --epochs 2 --threads 2 --deterministic --out "$tmp/d2"
grep -q '"deterministic": true' "$tmp/d1/config.json" || fail "config.json does not record deterministic"
a=$(digest "$tmp/d1/model.safetensors") b=$(digest "$tmp/d2/model.safetensors")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "--deterministic: 1 and 2 threads gave different weights ($a, $b)"

# The flag is a setting of the run: a resume on another thread count keeps it and reaches the same weights.
train r "${tiny[@]}" --epochs 1 --threads 1 --deterministic --out "$tmp/r"
train r2 --resume "$tmp/r" --epochs 2 --threads 2
grep -q "deterministic" "$tmp/r2.log" || fail "the resumed run did not keep --deterministic"
c=$(digest "$tmp/r/model.safetensors")
[ "$c" = "$a" ] || fail "--deterministic resumed on 2 threads differs from the uninterrupted run ($c, $a)"

# Without the flag: the same seed and thread count twice, the second run reusing the first's timed plan.
train s1 "${tiny[@]}" --epochs 1 --threads 2 --out "$tmp/s1"
train s2 "${tiny[@]}" --epochs 1 --threads 2 --out "$tmp/s2"
a=$(digest "$tmp/s1/model.safetensors") b=$(digest "$tmp/s2/model.safetensors")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "same seed and threads gave different weights ($a, $b)"
cmp -s "$tmp/s1/conv-plan.json" "$tmp/s2/conv-plan.json" || fail "the two runs chose different kernels"

if [ "$fails" -gt 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "determinism: all checks passed"
