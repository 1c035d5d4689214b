#!/usr/bin/env bash
# Fault injection: a tiny training run is killed with SIGKILL at random moments (a checkpoint after every batch,
# and the test hook INCV3_TEST_SLOW_CHECKPOINT_MS holding each complete temporary file before its rename, so
# that many kills land inside checkpoint writes), then continued with --resume, KILLS times in a row. Every run
# that completes must end with the same weights as an uninterrupted run (tensor bytes only) and leave no
# temporary file; a run that completes before the kills are used up is checked and a fresh one started.
# Usage: test_kill_resume.sh INCV3 SOURCE_ROOT [KILLS]   (KILLS default 50)
set -u
exe=$1
data="$2/../shared/data/mnist"
kills=${3:-50}
if [ ! -d "$data" ]; then
    echo "SKIP: $data not found (the team's shared MNIST subset)"
    exit 77
fi
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is needed to compare checkpoints"
    exit 77
fi
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Tensors of a safetensors file (metadata ignored) as one digest.
digest() { python3 "$(dirname "$0")/tensor_digest.py" "$1"; }

recipe=(--data "$data" --image-size 75 --no-aux --width 0.1 --epochs 2 --limit-train 320 --batch 16 --lr 2e-3
        --checkpoint-every 1 --keep 3 --seed 11)
start=$(date +%s)

"$exe" train "${recipe[@]}" --out "$tmp/ref" >"$tmp/ref.log" 2>&1 || { echo "FAIL: the reference run failed"; tail -5 "$tmp/ref.log"; exit 1; }
want=$(digest "$tmp/ref/model.safetensors")

export INCV3_TEST_SLOW_CHECKPOINT_MS=${INCV3_TEST_SLOW_CHECKPOINT_MS:-100}
runs=0 done_kills=0 checked=0 fresh_restarts=0
dir=
launch_fresh() {
    runs=$((runs + 1))
    dir="$tmp/run$runs"
    "$exe" train "${recipe[@]}" --out "$dir" >>"$tmp/run$runs.log" 2>&1 &
    pid=$!
}
# A completed run: its weights and its directory.
check_run() {
    local got
    got=$(digest "$dir/model.safetensors" 2>/dev/null)
    [ "$got" = "$want" ] || fail "run $runs: the weights differ from the uninterrupted run's after kills and resumes"
    [ -z "$(find "$dir" -name '*.tmp.*')" ] || fail "run $runs: temporary files left: $(find "$dir" -name '*.tmp.*')"
    local n
    n=$(find "$dir/checkpoints" -name 'epoch-*.safetensors' | wc -l)
    [ "$n" -le 3 ] || fail "run $runs: $n epoch checkpoints with --keep 3"
    checked=$((checked + 1))
}

launch_fresh
while [ "$done_kills" -lt "$kills" ] && [ "$fails" -eq 0 ]; do
    ms=$((200 + RANDOM % 1300)) # 0.2 to 1.5 s: mostly past the start-up, inside the training loop
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    if kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        done_kills=$((done_kills + 1))
        if [ -e "$dir/checkpoints/last.safetensors" ] || ls "$dir/checkpoints/"epoch-*.safetensors >/dev/null 2>&1; then
            "$exe" train --resume "$dir" --keep 3 >>"$tmp/run$runs.log" 2>&1 &
            pid=$!
        else
            # Killed before its first checkpoint: nothing to resume; such a run is started again.
            rm -rf "$dir"
            fresh_restarts=$((fresh_restarts + 1))
            runs=$((runs - 1))
            launch_fresh
        fi
    else
        wait "$pid"
        status=$?
        if [ "$status" -ne 0 ]; then
            fail "run $runs exited with status $status: $(tail -3 "$tmp/run$runs.log")"
            break
        fi
        check_run
        launch_fresh
    fi
done
wait "$pid"
status=$?
pid=
if [ "$fails" -eq 0 ]; then
    [ "$status" -eq 0 ] && check_run || fail "the last run exited with status $status: $(tail -3 "$tmp/run$runs.log")"
fi
torn=$(cat "$tmp"/run*.log | grep -c "left by an interrupted write")
echo "$done_kills kills ($fresh_restarts before a first checkpoint; $torn temporary files of interrupted writes" \
     "cleaned up on resume), $checked runs completed and checked, in $(($(date +%s) - start)) s"
if [ "$fails" -ne 0 ]; then
    echo "kill/resume test failed"
    exit 1
fi
echo "kill/resume test passed"
