#!/usr/bin/env bash
# Soak: thousands of training steps of a tiny model, sampling the resident memory (VmRSS) of the process;
# a leak of even a few bytes per step shows as growth. The RSS after the first 10% of the training (once
# every buffer exists) must be within 2 MiB of the largest RSS of its last 10%. Not in the default suite:
# meson test -C build --suite soak. Prints the numbers.
# One thread by default (SOAK_THREADS=2 for two): on a busy 2-core machine two threads spin at every
# layer's barrier and the same steps take minutes.
# Usage: test_soak.sh INCV3 SOURCE_ROOT [EPOCHS]
set -u
exe=$1
epochs=${3:-150}
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is needed to write the test data"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Generated digits (200 training, 20 test: the final test pass stays short); what is learnt does not matter.
data="$tmp/data"
python3 - "$data" <<'PY' || { echo "FAIL: writing the data"; exit 1; }
import os, random, struct, sys
d = sys.argv[1]
os.makedirs(d)
rng = random.Random(1)
for split, n in (("train", 200), ("t10k", 20)):
    with open(f"{d}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(rng.randrange(256) for _ in range(n * 784)))
    with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(rng.randrange(10) for _ in range(n)))
PY
export XDG_CACHE_HOME="$tmp/cache"
# 200 images, 180 trained at batch 2: 90 steps an epoch.
"$exe" train --data "$data" --image-size 75 --no-aux --width 0.0625 --batch 2 --limit-train 200 --epochs "$epochs" \
    --threads "${SOAK_THREADS:-1}" --conv-algo direct --keep 1 --out "$tmp/run" >"$tmp/log" 2>&1 &
pid=$!
: >"$tmp/rss"
t0=$(date +%s.%N)
# Sample until the final weights appear: after that the run only evaluates the test set.
while kill -0 "$pid" 2>/dev/null && [ ! -e "$tmp/run/model.safetensors" ]; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$rss" ] && echo "$(date +%s.%N) $rss" >>"$tmp/rss"
    sleep 0.05
done
wait "$pid"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "FAIL: the run failed ($rc): $(tail -3 "$tmp/log")"
    exit 1
fi
steps=$((epochs * 90))
awk -v t0="$t0" -v steps="$steps" '
    { t[NR] = $1 - t0; r[NR] = $2 }
    END {
        if (NR < 20) { print "FAIL: only " NR " RSS samples"; exit 1 }
        T = t[NR]
        for (i = 1; i <= NR && t[i] < 0.1 * T; i++) early = r[i]
        late = 0
        for (i = 1; i <= NR; i++) if (t[i] >= 0.9 * T && r[i] > late) late = r[i]
        min = r[1]; max = r[1]
        for (i = 1; i <= NR; i++) { if (r[i] < min) min = r[i]; if (r[i] > max) max = r[i] }
        growth = (late - early) / 1024
        printf "soak: %d steps in %.0f s, %d RSS samples: %.1f MiB after 10%%, %.1f MiB at most in the last 10%%, growth %.2f MiB (range %.1f..%.1f MiB)\n",
            steps, T, NR, early / 1024, late / 1024, growth, min / 1024, max / 1024
        if (growth >= 2) { print "FAIL: the resident memory grew by 2 MiB or more"; exit 1 }
    }' "$tmp/rss"
