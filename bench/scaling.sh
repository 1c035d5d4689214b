#!/bin/sh
# The thread-scaling run of issue 6 on a many-core machine, in one go, writing everything to OUTDIR:
#   bench/scaling.sh [--incv3 PATH] [--kbench PATH] [--lstopo PATH] [--threads LIST] [--threads299 LIST]
#                    [--profile LIST] [--torch MODES] [--no-machine] OUTDIR
# PATH defaults to build/incv3 and build/bench/incv3-kbench of this tree; a bundle made by scripts/bundle
# (for a machine without the libraries) has launchers BUNDLE/incv3, BUNDLE/incv3-kbench and, if it was
# given one, BUNDLE/lstopo-no-graphics. --threads defaults to 1,2,4,...,(cores); --threads299 to the counts of
# --threads from 4 up (none: skip 299); --profile to "1,(largest)" (the counts profiled at 75x75, none: no
# profile); --torch MODES (e.g. train75,train299) adds bench/compare_pytorch.py at the largest count.
# OUTDIR/machine.txt   lscpu, hwloc's view, `incv3 topo` for the largest count, the FMA peak per thread count
# OUTDIR/topology.xml  the machine as hwloc XML (with --lstopo), for `incv3 topo --xml` elsewhere
# OUTDIR/scaling75.jsonl, scaling299.jsonl  `incv3 bench --format json`, training step, batch 32, threads
#                      interleaved; the 299 run skips counts whose step would take too long
# OUTDIR/bench.log     the benches' progress and the per-layer profiles at 1 thread and at the largest count
# OUTDIR/torch.json    with --torch: bench/compare_pytorch.py at the largest count
# --no-machine skips machine.txt and topology.xml (a second run on the same machine).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
incv3=$here/build/incv3
kbench=$here/build/bench/incv3-kbench
lstopo=
threads=
threads299=default
profile=default
torch=
machine=1
while [ $# -gt 1 ]; do
    case "$1" in
    --incv3) incv3=$2; shift 2 ;;
    --kbench) kbench=$2; shift 2 ;;
    --lstopo) lstopo=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --threads299) threads299=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --torch) torch=$2; shift 2 ;;
    --no-machine) machine=0; shift ;;
    *) echo "bench/scaling.sh: unknown flag $1" >&2; exit 2 ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: bench/scaling.sh [--incv3 PATH] [--kbench PATH] [--lstopo PATH] [--threads LIST] [--threads299 LIST] [--profile LIST] [--torch MODES] [--no-machine] OUTDIR" >&2; exit 2; }
out=$1
mkdir -p "$out"
# The conv-algo choice is timed on this machine: keep its cache with the results.
export XDG_CACHE_HOME="$out/cache"
log=$out/bench.log
: >"$log"

cores=$("$incv3" topo --image-size 75 --no-aux 2>/dev/null | sed -n 's/.* \([0-9][0-9]*\) cores, .*/\1/p' | head -1)
[ -n "$cores" ] || cores=$(nproc)
if [ -z "$threads" ]; then
    threads=1; t=2
    while [ "$t" -lt "$cores" ]; do threads="$threads,$t"; t=$((t * 2)); done
    threads="$threads,$cores"
fi
max=${threads##*,}
smt=
[ "$max" -gt "$cores" ] && smt=--smt

[ "$profile" = default ] && profile="1,$max"
[ "$threads299" = default ] && threads299=$(echo "$threads" | tr ',' '\n' | awk '$1 >= 4' | paste -sd, -)

[ "$machine" = 1 ] && {
    echo "## date"; date -u
    echo "## nproc"; nproc
    echo "## lscpu"; lscpu 2>&1
    if [ -n "$lstopo" ]; then echo "## lstopo"; "$lstopo" --no-io 2>&1; fi
    echo "## incv3 topo --threads $max $smt (75x75, batch 32)"
    "$incv3" topo --image-size 75 --no-aux --batch 32 --threads "$max" $smt 2>&1
    for t in 1 "$max"; do echo "## incv3-kbench --peak --threads $t"; "$kbench" --peak --threads "$t" 2>&1; done
} >"$out/machine.txt" 2>&1
[ "$machine" = 1 ] && [ -n "$lstopo" ] && "$lstopo" --of xml "$out/topology.xml" 2>>"$log"

echo "== scaling 75x75 batch 32, threads $threads" | tee -a "$log"
timeout 300 "$incv3" bench --mode train --image-size 75 --no-aux --batch 32 --threads "$threads" $smt \
    --repeat 5 --format json >"$out/scaling75.jsonl" 2>>"$log"
cat "$out/scaling75.jsonl"

for t in $(echo "$profile" | tr ',' ' '); do
    echo "== profile 75x75 batch 32, $t threads" >>"$log"
    timeout 120 "$incv3" bench --mode train --image-size 75 --no-aux --batch 32 --threads "$t" $smt \
        --repeat 3 --profile --format json >/dev/null 2>>"$log"
done

# At 299 a 1-thread step takes ~15 s on a Zen 3 core: by default the counts from 4 up.
if [ -n "$threads299" ]; then
    echo "== scaling 299x299 batch 32 with the aux head, threads $threads299" | tee -a "$log"
    timeout 300 "$incv3" bench --mode train --image-size 299 --batch 32 --threads "$threads299" $smt \
        --repeat 3 --format json >"$out/scaling299.jsonl" 2>>"$log"
    cat "$out/scaling299.jsonl"
fi

if [ -n "$torch" ]; then
    echo "== PyTorch $torch, $max threads" | tee -a "$log"
    PYTHONUNBUFFERED=1 timeout 400 python3 "$here/bench/compare_pytorch.py" --incv3 "$incv3" \
        --modes "$torch" --threads "$max" --repeat 3 --rounds 2 --layout both --format json \
        >"$out/torch.json" 2>>"$log"
    cat "$out/torch.json"
fi
