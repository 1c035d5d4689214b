#!/usr/bin/env bash
# incv3 train end to end: learning on the real MNIST subset, kill-and-resume equivalence (SIGKILL and
# SIGTERM), the run directory's files, the trainer's refusals, --keep, the fallback from a damaged
# last.safetensors, and a full disk. (Many random kills: test_kill_resume.sh.)
# Usage: test_train.sh INCV3 SOURCE_ROOT
set -u
exe=$1
data="$2/../shared/data/mnist"
if [ ! -d "$data" ]; then
    echo "SKIP: $data not found (the team's shared MNIST subset); the trainer test needs real data"
    exit 77
fi
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is needed to compare checkpoints"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Tensors of a safetensors file (metadata ignored) as one digest.
digest() { python3 "$(dirname "$0")/tensor_digest.py" "$1"; }

tiny=(--data "$data" --image-size 75 --no-aux --width 0.1 --epochs 2 --limit-train 320 --batch 16 --lr 2e-3
      --checkpoint-every 3 --seed 7)

# 1. The reference run, uninterrupted.
"$exe" train "${tiny[@]}" --out "$tmp/a" >"$tmp/a.log" 2>&1 || fail "uninterrupted run failed: $(tail -3 "$tmp/a.log")"
for f in report.md metrics.csv config.json model.safetensors best.safetensors checkpoints/last.safetensors; do
    [ -s "$tmp/a/$f" ] || fail "run directory lacks $f"
done
grep -q "^|              | Training | Validation | Testing |$" "$tmp/a/report.md" || fail "report.md lacks the seed's results table"
grep -q "^|     Loss     |" "$tmp/a/report.md" && grep -q "^| Accuracy (%) |" "$tmp/a/report.md" ||
    fail "report.md lacks the Loss / Accuracy (%) rows"
grep -q "^| Class | Training Precision | Validation Precision | Testing Precision |" "$tmp/a/report.md" ||
    fail "report.md lacks the per-class table"
python3 - "$tmp/a/metrics.csv" <<'PY' || fail "metrics.csv does not parse as expected"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["split"] for r in rows] == ["train", "val"] * 2, rows
assert all(0 <= float(r["accuracy"]) <= 1 and float(r["loss"]) > 0 for r in rows)
PY
if command -v gnuplot >/dev/null; then
    for p in loss.png accuracy.png; do
        head -c 8 "$tmp/a/$p" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || fail "$p is not a PNG"
    done
fi
want=$(digest "$tmp/a/model.safetensors")

# incv3 eval reproduces the report's test accuracy, from incv3's file and from the same weights laid out as a
# PyTorch state_dict (no metadata, num_batches_tracked I64 tensors added).
report_acc=$(awk -F'|' '/^\| Accuracy \(%\) \|/ {gsub(/ /, "", $5); print $5; exit}' "$tmp/a/report.md")
eval_acc=$("$exe" eval --checkpoint "$tmp/a/model.safetensors" | awk -F'|' '/^\| Accuracy \(%\) \|/ {gsub(/ /, "", $5); print $5; exit}')
[ -n "$report_acc" ] && [ "$eval_acc" = "$report_acc" ] || fail "eval gave $eval_acc%, the report $report_acc%"
python3 - "$tmp/a/model.safetensors" "$tmp/state_dict.safetensors" <<'PY' || fail "could not write a state_dict"
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
header.pop("__metadata__", None)
tensors = {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
for k in list(header):
    if k.endswith(".running_var"):
        name = k[: -len("running_var")] + "num_batches_tracked"
        header[name] = {"dtype": "I64", "shape": [], "data_offsets": [0, 0]}
        tensors[name] = struct.pack("<q", 1234)
out, blob = {}, b""
for k in sorted(header):
    out[k] = {"dtype": header[k]["dtype"], "shape": header[k]["shape"], "data_offsets": [len(blob), len(blob) + len(tensors[k])]}
    blob += tensors[k]
h = json.dumps(out).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + blob)
PY
sd_acc=$("$exe" eval --checkpoint "$tmp/state_dict.safetensors" --image-size 75 --data "$data" |
    awk -F'|' '/^\| Accuracy \(%\) \|/ {gsub(/ /, "", $5); print $5; exit}')
[ "$sd_acc" = "$report_acc" ] || fail "eval of the state_dict gave $sd_acc%, expected $report_acc%"
err=$("$exe" eval --checkpoint "$tmp/nothing.safetensors" 2>&1 >/dev/null)
[ $? -eq 1 ] && grep -q "nothing.safetensors" <<<"$err" || fail "eval of a missing file did not name it: $err"

# 2. Killed with SIGKILL after a checkpoint, resumed: the same final weights.
"$exe" train "${tiny[@]}" --out "$tmp/b" >"$tmp/b.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    ls "$tmp/b/checkpoints/"epoch-*-step-6.safetensors >/dev/null 2>&1 && break
    sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ -s "$tmp/b/checkpoints/last.safetensors" ] || fail "no checkpoint before the kill"
"$exe" train --resume "$tmp/b" >>"$tmp/b.log" 2>&1 || fail "resume after SIGKILL failed: $(tail -3 "$tmp/b.log")"
[ "$(digest "$tmp/b/model.safetensors")" = "$want" ] || fail "SIGKILL + resume gave different weights"

# 3. SIGTERM: finishes the batch, checkpoints, exits 0; resuming gives the same weights.
"$exe" train "${tiny[@]}" --out "$tmp/c" >"$tmp/c.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    ls "$tmp/c/checkpoints/"epoch-*-step-3.safetensors >/dev/null 2>&1 && break
    sleep 0.05
done
kill -TERM "$pid"
wait "$pid"
status=$?
[ "$status" -eq 0 ] || fail "SIGTERM: exit status $status, expected 0"
grep -q "resume with" "$tmp/c.log" || fail "SIGTERM: no resume hint in the output"
"$exe" train --resume "$tmp/c" >>"$tmp/c.log" 2>&1 || fail "resume after SIGTERM failed"
[ "$(digest "$tmp/c/model.safetensors")" = "$want" ] || fail "SIGTERM + resume gave different weights"

# 4. Refusals, before any work.
err=$("$exe" train "${tiny[@]}" --out "$tmp/a" 2>&1 >/dev/null)
[ $? -eq 2 ] && grep -q -- "--out" <<<"$err" || fail "a non-empty --out was not refused: $err"
err=$("$exe" train --resume "$tmp/a" --lr 0.1 2>&1 >/dev/null)
[ $? -eq 2 ] && grep -q -- "--lr" <<<"$err" || fail "--resume with --lr was not refused: $err"
err=$("$exe" train --data "$tmp/nowhere" --out "$tmp/d" 2>&1 >/dev/null)
[ $? -eq 1 ] && grep -q "nowhere" <<<"$err" || fail "a missing data directory did not name it: $err"
mkdir -p "$tmp/bad" && printf 'garbage' | gzip >"$tmp/bad/train-images-idx3-ubyte.gz"
cp "$data"/train-labels-idx1-ubyte.gz "$data"/t10k-* "$tmp/bad/"
err=$("$exe" train --data "$tmp/bad" --out "$tmp/e" 2>&1 >/dev/null)
[ $? -eq 1 ] && grep -q "train-images-idx3-ubyte.gz" <<<"$err" || fail "a corrupt images file was not named: $err"

# 4b. Checkpoint integrity. --keep 2 leaves the newest two epoch-E-step-S files (plus last) and the same weights.
"$exe" train "${tiny[@]}" --checkpoint-every 2 --keep 2 --out "$tmp/k" >"$tmp/k.log" 2>&1 || fail "--keep run failed: $(tail -3 "$tmp/k.log")"
n=$(ls "$tmp/k/checkpoints/" | grep -c '^epoch-.*\.safetensors$')
[ "$n" -eq 2 ] && [ -s "$tmp/k/checkpoints/last.safetensors" ] || fail "--keep 2 left $n epoch checkpoints: $(ls "$tmp/k/checkpoints")"
[ "$(digest "$tmp/k/model.safetensors")" = "$want" ] || fail "the --keep run gave different weights"
# A damaged last.safetensors (truncated) is refused and --resume falls back to the newest intact epoch file,
# naming both; the run (finished, so it re-reports) keeps its weights.
newest=$(ls "$tmp/k/checkpoints/" | grep '^epoch-' | sort -t- -k4 -n | tail -1)
truncate -s -100 "$tmp/k/checkpoints/last.safetensors"
out=$("$exe" train --resume "$tmp/k" 2>&1)
[ $? -eq 0 ] && grep -q "last.safetensors: .*truncated" <<<"$out" && grep -q "resuming from the newest intact checkpoint .*$newest" <<<"$out" ||
    fail "no fallback from a truncated last.safetensors to $newest: $(grep 'incv3 train' <<<"$out")"
[ "$(digest "$tmp/k/model.safetensors")" = "$want" ] || fail "resuming from the fallback checkpoint changed the weights"
# Every checkpoint damaged (one flipped byte each): refused, naming the problem.
for f in "$tmp/k/checkpoints/"*.safetensors; do
    python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-3] ^= 1; open(p, "wb").write(b)' "$f"
done
err=$("$exe" train --resume "$tmp/k" 2>&1 >/dev/null)
[ $? -eq 1 ] && grep -q "checksum mismatch: the file is damaged" <<<"$err" && grep -q "no intact" <<<"$err" ||
    fail "a run whose checkpoints are all damaged was not refused clearly: $err"
err=$("$exe" eval --checkpoint "$tmp/k/checkpoints/$newest" 2>&1 >/dev/null)
[ $? -eq 1 ] && grep -q "$newest: checksum mismatch" <<<"$err" || fail "eval of a damaged file: $err"

# 4c. A full disk (here a file-size limit: write() fails with EFBIG, SIGXFSZ is ignored): the checkpoint write
# fails naming the file and the cause, the run stops non-zero saying how to resume, the previous checkpoint is
# intact, and resuming without the limit ends with the uninterrupted run's weights. Checkpoints (~2.8 MB with
# the AdamW moments) exceed the limit, the weights-only model file (~1 MB) and the logs do not.
"$exe" train "${tiny[@]}" --epochs 1 --out "$tmp/full" >"$tmp/full.log" 2>&1 || fail "1-epoch run failed"
cp "$tmp/full/checkpoints/last.safetensors" "$tmp/full-last"
(ulimit -f 1500; exec "$exe" train --resume "$tmp/full" --epochs 2) >"$tmp/full2.log" 2>&1
status=$?
[ $status -eq 1 ] && grep -q "epoch-2-step-.*\.safetensors: .*File too large" "$tmp/full2.log" &&
    grep -q "previous checkpoint .*last.safetensors is intact.*incv3 train --resume" "$tmp/full2.log" ||
    fail "full disk: status $status, $(tail -1 "$tmp/full2.log")"
cmp -s "$tmp/full-last" "$tmp/full/checkpoints/last.safetensors" || fail "full disk: last.safetensors changed"
[ -z "$(find "$tmp/full" -name '*.tmp.*')" ] || fail "full disk: temporary files left behind"
"$exe" train --resume "$tmp/full" --epochs 2 >>"$tmp/full.log" 2>&1 || fail "resume after the full disk failed"
[ "$(digest "$tmp/full/model.safetensors")" = "$want" ] || fail "full disk + resume gave different weights"

# 5. Learning: the issue's recipe reaches at least 90% on the real test set (PyTorch: 95.6%). The sanitizer
# pass of CI checks memory, not accuracy, and skips this longest run.
if [ -n "${INCV3_SANITIZER_PASS:-}" ]; then
    echo "learning run skipped in the sanitizer pass (run by the release pass)"
elif ! "$exe" train --data "$data" --image-size 75 --no-aux --width 0.25 --epochs 3 --limit-train 6000 --lr 2e-3 \
    --out "$tmp/learn" >"$tmp/learn.log" 2>&1; then
    fail "learning run failed: $(tail -3 "$tmp/learn.log")"
else
    acc=$(awk -F'|' '/^\| Accuracy \(%\) \|/ {gsub(/ /, "", $5); print $5; exit}' "$tmp/learn/report.md")
    echo "learning run: test accuracy $acc%"
    awk -v a="$acc" 'BEGIN { exit !(a >= 90) }' || fail "test accuracy $acc% < 90%"
fi

# 6. Fashion-MNIST (Debian's dataset-fashion-mnist), with its own default normalization, learns too.
# --deterministic: with --conv-algo auto the kernels are chosen by timing, so another machine (or another
# cache) trains with other float roundings, and 3 epochs at lr 2e-3 end anywhere between 68% and 78% test
# accuracy (measured: the final epoch's eval-mode accuracy swings by 10 points with the kernel choice, the
# same weights evaluating alike under every kernel). The fixed kernel rule makes the run, and this
# check, the same on every machine.
fashion=/usr/share/datasets/fashion-mnist
if [ -n "${INCV3_SANITIZER_PASS:-}" ]; then
    echo "fashion-mnist run skipped in the sanitizer pass"
elif [ ! -f "$fashion/train-images-idx3-ubyte.gz" ]; then
    echo "fashion-mnist run skipped: $fashion not found (apt-get install dataset-fashion-mnist)"
elif ! "$exe" train --dataset fashion-mnist --image-size 75 --no-aux --width 0.25 --epochs 3 --limit-train 6000 \
    --lr 2e-3 --deterministic --out "$tmp/fashion" >"$tmp/fashion.log" 2>&1; then
    fail "fashion-mnist run failed: $(tail -3 "$tmp/fashion.log")"
else
    python3 - "$tmp/fashion/config.json" <<'PY' || fail "fashion-mnist run did not use its normalization"
import json, sys
c = json.load(open(sys.argv[1]))
assert abs(c["mean"] - 0.2860) < 1e-12 and abs(c["std"] - 0.3530) < 1e-12, (c["mean"], c["std"])
PY
    acc=$(awk -F'|' '/^\| Accuracy \(%\) \|/ {gsub(/ /, "", $5); print $5; exit}' "$tmp/fashion/report.md")
    echo "fashion-mnist run: test accuracy $acc%"
    # 3 epochs on 5,400 images of a width-0.25 model: about 79% validation accuracy here.
    awk -v a="$acc" 'BEGIN { exit !(a >= 72) }' || fail "fashion-mnist test accuracy $acc% < 72%"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails trainer checks failed"
    exit 1
fi
echo "all trainer checks passed"
