#!/usr/bin/env bash
# CLI conventions: usage errors name the flag on stderr and exit 2; help and version exit 0.
set -u
exe=$1
fails=0
check() { # expected-status stderr-pattern args...
    local want=$1 pattern=$2
    shift 2
    local err status
    err=$("$exe" "$@" 2>&1 >/dev/null)
    status=$?
    if [ "$status" -ne "$want" ]; then
        echo "FAIL: incv3 $* exited $status, expected $want (stderr: $err)"
        fails=$((fails + 1))
    elif [ -n "$pattern" ] && ! grep -q -- "$pattern" <<<"$err"; then
        echo "FAIL: incv3 $*: stderr does not mention '$pattern': $err"
        fails=$((fails + 1))
    else
        echo "ok: incv3 $* -> $status ${err:+($err)}" | head -c 300
        echo
    fi
}
check 2 "--bogus" summary --bogus
check 2 "--image-size" summary --image-size 50
check 2 "--width" summary --width abc
check 2 "--width" summary --width 0
check 2 "--width" summary --width -1
check 2 "--classes" summary --classes 1
check 2 "--image-size" summary --image-size
check 2 "--image-size 75" summary --image-size 75
check 2 "--no-aux" summary --image-size 75
check 2 "unknown command" frobnicate
check 2 "" check-golden
check 1 "missing.safetensors" check-golden /nonexistent/missing.safetensors
check 2 "--isa" check-golden --isa sparc /nonexistent/x.safetensors
check 2 "--conv-algo" check-golden --conv-algo magic /nonexistent/x.safetensors
check 2 "--mode" bench --mode fly
check 2 "--batch" bench --batch 0
check 2 "--width" bench --width 9
check 0 "" --help
check 0 "" summary --help
check 0 "" check-golden --help
check 0 "" summary --image-size 75 --no-aux --width 0.25

out=$("$exe" summary)
grep -q "25,212,020" <<<"$out" || { echo "FAIL: summary lacks the total 25,212,020"; fails=$((fails + 1)); }
grep -q "7,347,949,664" <<<"$out" || { echo "FAIL: summary lacks the MAC count"; fails=$((fails + 1)); }
# The last of a repeated flag wins.
out=$("$exe" summary --image-size 50 --image-size 75 --no-aux)
grep -q "\[-1, 32, 37, 37\]" <<<"$out" || { echo "FAIL: repeated --image-size: last one did not win"; fails=$((fails + 1)); }
out=$("$exe" summary --kernels --isa scalar --image-size 75 --no-aux)
grep -q "| stem.0.conv .*conv_fwd_f32_ref__scalar .*conv_bwd_data_f32_ref__scalar .*conv_bwd_weights_f32_ref__scalar" <<<"$out" ||
    { echo "FAIL: summary --kernels --isa scalar does not list the reference kernels"; fails=$((fails + 1)); }
check 2 "--isa" summary --kernels --isa sparc
out=$("$exe" summary --memory --conv-algo direct --image-size 75 --no-aux --width 0.25 --batch 4)
grep -q "total at the peak" <<<"$out" && grep -q "activations at the peak" <<<"$out" ||
    { echo "FAIL: summary --memory lacks the plan's total or activations"; fails=$((fails + 1)); }
check 2 "--memory and --kernels" summary --memory --kernels
"$exe" --version | grep -q "ISA the graph uses by default" || { echo "FAIL: --version lacks the ISA line"; fails=$((fails + 1)); }

# incv3 topo on machines described to hwloc (binding is a no-op there).
server="pack:2 l3:4(size=32MiB) l2:8(size=512KiB) l1d:1(size=32KiB) core:1 pu:2"
check 1 "pack:2 bogus:3" topo --synthetic "pack:2 bogus:3"
check 1 "/nonexistent/machine.xml" topo --xml /nonexistent/machine.xml
check 2 "--threads" topo --synthetic "$server" --threads 0
check 2 "--threads" topo --synthetic "$server" --threads many
check 2 "--policy" topo --policy sideways
check 2 "--bind" topo --bind socket
check 2 "--xml" topo --synthetic "$server" --xml /nonexistent/machine.xml
check 2 "--image-size" topo --synthetic "$server" --image-size 75
check 0 "--threads 9" topo --synthetic "pack:1 l2:4(size=1MiB) core:1 pu:2" --threads 9 --image-size 75 --no-aux
check 0 "" topo --help
out=$("$exe" topo --synthetic "$server" --image-size 299)
grep -q "team: 64 threads (one per core) on 64 cores of 2 packages" <<<"$out" ||
    { echo "FAIL: topo on the 2x32-core server does not make 64 threads"; fails=$((fails + 1)); }
grep -q "cores 0-7: L2 512 KiB, L1d 32 KiB, 2 PUs each" <<<"$out" ||
    { echo "FAIL: topo does not show the server's cores"; fails=$((fails + 1)); }
grep -q "^mixed17.0.b1.conv .*fwd" <<<"$out" && grep -q "bwd-weights" <<<"$out" ||
    { echo "FAIL: topo lacks the plan of mixed17.0.b1.conv"; fails=$((fails + 1)); }
out=$(OMP_NUM_THREADS=6 "$exe" topo --synthetic "$server" --image-size 75 --no-aux)
grep -q "team: 6 threads (OMP_NUM_THREADS) on 6 cores of 2 packages, policy spread" <<<"$out" ||
    { echo "FAIL: topo ignores OMP_NUM_THREADS or does not spread"; fails=$((fails + 1)); }

# incv3 bench --format json: one object per thread count and line, nothing else on standard output, the
# issue's fields; a small model (width 1/8, batch 2) so that it takes a second.
if command -v python3 >/dev/null; then
    cache=$(mktemp -d)
    if ! out=$(XDG_CACHE_HOME=$cache "$exe" bench --mode train --image-size 75 --no-aux --width 0.125 --batch 2 \
        --threads 1,1 --repeat 2 --format json 2>/dev/null); then
        echo "FAIL: bench --format json failed"
        fails=$((fails + 1))
    elif ! python3 - "$out" <<'PY'
import json, sys
lines = sys.argv[1].split("\n")
assert len(lines) == 2, f"{len(lines)} lines, expected one per thread count"
for line in lines:
    o = json.loads(line)
    for k in ("mode", "image_size", "batch", "threads", "conv_algo", "median_ms_per_step", "images_per_s",
              "peak_rss_mib", "other_load_cores_max"):
        assert k in o, f"no {k} in {line}"
    assert o["mode"] == "train" and o["image_size"] == 75 and o["batch"] == 2 and o["threads"] == 1, line
    assert o["median_ms_per_step"] > 0 and o["images_per_s"] > 0 and o["peak_rss_mib"] > 0, line
    other = o["other_load_cores_max"]
    assert other is None or other >= 0, line
PY
    then
        echo "FAIL: bench --format json output: $out"
        fails=$((fails + 1))
    else
        echo "ok: bench --format json: 2 objects with the issue's fields"
    fi
    rm -rf "$cache"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails CLI checks failed"
    exit 1
fi
echo "all CLI checks passed"
