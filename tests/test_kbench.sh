#!/usr/bin/env bash
# incv3-kbench smoke test: one tiny shape per op and format, the documented JSON fields, and flag errors.
# (Timings are not judged here: performance is measured, never asserted in tests.)
set -u
kb=$1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

for op in conv-fwd conv-bwd-data conv-bwd-weights; do
    for isa in scalar auto; do
        out=$("$kb" --op "$op" --isa "$isa" --shape 5,9,7,11,3,3,2,1,1 --batch 2 --repeat 1 --format json 2>/tmp/kbench_err.$$)
        status=$?
        [ "$status" -eq 0 ] || fail "$op --isa $isa exited $status: $(cat /tmp/kbench_err.$$)"
        [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "$op --isa $isa: expected exactly one JSON line, got: $out"
        for key in kernel op algo isa c h w k kh kw stride pad_h pad_w batch threads median_ms min_ms gflops \
            pct_peak speedup_vs_ref; do
            grep -q "\"$key\":" <<<"$out" || fail "$op --isa $isa: JSON lacks \"$key\": $out"
        done
        grep -q "\"op\":\"$op\"" <<<"$out" || fail "$op: wrong op field: $out"
        echo "ok: $op --isa $isa: $out"
    done
done
rm -f /tmp/kbench_err.$$
for args in "--op pool --shape 13,9,7,13,3,3,2,0,0" "--op pool --shape 5,8,8,5,3,3,1,1,1" "--op adamw --count 1001" "--op gemm --mnk 7,17,33" \
    "--op conv-bn-relu-fwd --shape 5,9,7,11,3,3,2,1,1" "--op bn-relu-bwd --shape 5,9,7,11,3,3,2,1,1"; do
    for isa in scalar auto; do
        # shellcheck disable=SC2086
        out=$("$kb" $args --isa "$isa" --batch 2 --repeat 1 --format json 2>/dev/null) || fail "$args --isa $isa failed"
        grep -q '"gflops":' <<<"$out" && grep -q '"gbytes_per_s":' <<<"$out" || fail "$args: JSON lacks fields: $out"
        echo "ok: $args --isa $isa"
    done
done

# Winograd: every tile by name and the family, with the direct-equivalent rate and the speed-up over direct;
# a shape it cannot serve (stride 2) is a clear error.
if "$kb" --algo winograd --shape 16,9,9,16,3,3,1,1,1 --batch 1 --repeat 1 --format json >/dev/null 2>&1; then
    for algo in winograd winograd-f2x2 winograd-f4x4 winograd-f6x6; do
        out=$("$kb" --algo "$algo" --op conv-bwd-data --shape 13,11,9,21,3,3,1,1,1 --batch 2 --repeat 1 --format json 2>/dev/null) ||
            fail "--algo $algo failed"
        grep -q '"kernel":"conv_bwd_data_f32_winograd_' <<<"$out" && grep -q '"speedup_vs_direct":' <<<"$out" ||
            fail "--algo $algo: no Winograd row with its speed-up over direct: $out"
    done
    for algo in winograd-f2 winograd-f4; do
        out=$("$kb" --algo "$algo" --shape 12,8,8,16,1,7,1,0,3 --batch 2 --repeat 1 --format json 2>/dev/null) ||
            fail "--algo $algo on 1x7 failed"
        grep -q '"kernel":"conv_fwd_f32_winograd_f[24]_1x7__avx2"' <<<"$out" || fail "--algo $algo on 1x7: $out"
    done
    err=$("$kb" --algo winograd-f4x4 --shape 16,9,9,16,3,3,2,1,1 --batch 1 --repeat 1 2>&1 >/dev/null)
    [ $? -eq 1 ] && grep -q "winograd-f4x4" <<<"$err" && grep -q "stride-1" <<<"$err" ||
        fail "Winograd on a stride-2 shape was not a clear error: $err"
    echo "ok: winograd"
else
    echo "no Winograd kernels on this CPU/build: skipped"
fi

out=$("$kb" --shape 16,8,8,16,1,7,1,0,3 --batch 1 --repeat 1 --format csv 2>/dev/null)
[ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ] || fail "csv: expected a header and one row, got: $out"
out=$("$kb" --shape 16,8,8,16,1,1,1,0,0 --batch 1 --repeat 1 2>/dev/null)
grep -q "GFLOP/s" <<<"$out" || fail "table: no header: $out"
peak=$("$kb" --peak)
awk -v p="$peak" 'BEGIN { exit !(p > 0) }' || fail "--peak printed '$peak'"

expect_usage() { # pattern args...
    local pattern=$1
    shift
    local err
    err=$("$kb" "$@" 2>&1 >/dev/null)
    local status=$?
    [ "$status" -eq 2 ] || fail "incv3-kbench $* exited $status, expected 2"
    grep -q -- "$pattern" <<<"$err" || fail "incv3-kbench $*: stderr does not mention '$pattern': $err"
}
expect_usage "--shape" --shape 1,2,3
expect_usage "--shape" --shape 3,4,4,8,7,7,1,0,0
expect_usage "--op" --op conv-sideways --shape 8,8,8,8,3,3,1,1,1
expect_usage "--isa" --isa sparc --shape 8,8,8,8,3,3,1,1,1
expect_usage "--batch" --batch 0 --shape 8,8,8,8,3,3,1,1,1
expect_usage "--suite" --suite nothing
expect_usage "--format" --format xml --shape 8,8,8,8,3,3,1,1,1
expect_usage "unknown flag" --frobnicate

if [ "$fails" -ne 0 ]; then
    echo "$fails kbench checks failed"
    exit 1
fi
echo "all kbench checks passed"
