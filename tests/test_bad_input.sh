#!/usr/bin/env bash
# The bad-input catalog of the README ("## Bad input"): every bad file, flag and environment value tried, one
# check per row. Each check asserts the exit status (2 usage error, 1 other failure, 0 where the program
# warns and carries on), that stderr names the file, flag or variable at fault, and that nothing good was
# lost (a refused --out keeps its files, a failed --resume leaves the run byte-identical, a failed new run
# leaves no half-made run directory behind). Inputs are tiny and generated here (python3): no ../shared data.
# Usage: test_bad_input.sh INCV3 KBENCH SOURCE_ROOT
set -u
exe=$(realpath "$1")
kb=$(realpath "$2")
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is needed to write the test inputs"
    exit 77
fi
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
# The machine cache of the convolution plan goes here, never to the user's.
export XDG_CACHE_HOME="$tmp/cache"
unset OMP_NUM_THREADS

fails=0 rows=0
# result ROW-ID DESCRIPTION PROBLEM: PROBLEM empty means the row passed.
result() {
    local id=$1 what=$2 problem=$3
    rows=$((rows + 1))
    if [ -n "$problem" ]; then
        fails=$((fails + 1))
        echo "FAIL $id $what: $problem"
    else
        echo "ok   $id $what -> $status: $(head -c 200 err | tr '\n' ' ')"
    fi
}
# check ROW-ID DESCRIPTION STATUS PATTERN... -- command...: runs the command (stdout in ./out, stderr in ./err)
# and checks its status and that stderr holds every pattern (fixed strings).
status=0
problem=""
run_check() {
    local want=$1
    shift
    local pats=()
    while [ "$1" != "--" ]; do
        pats+=("$1")
        shift
    done
    shift
    "$@" >out 2>err </dev/null
    status=$?
    problem=""
    if [ "$status" -ne "$want" ]; then
        problem="exited $status, expected $want; stderr: $(head -c 400 err)"
        return
    fi
    local p
    for p in "${pats[@]}"; do
        grep -qF -- "$p" err || { problem="stderr does not name '$p': $(head -c 400 err)"; return; }
    done
}
check() {
    local id=$1 what=$2
    shift 2
    run_check "$@"
    result "$id" "$what" "$problem"
}
# Digest of every file under a directory (names and bytes), to show it was left alone.
snap() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) 2>/dev/null | sha256sum; }

# ---- inputs ----------------------------------------------------------------------------------------------
python3 - <<'EOF' || { echo "FAIL: writing the inputs"; exit 1; }
import gzip, json, os, random, shutil, struct, zlib
random.seed(1)
def images(n, rows=28, cols=28):
    return struct.pack(">IIII", 0x803, n, rows, cols) + bytes(random.randrange(256) for _ in range(n * rows * cols))
def labels(n):
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))
def w(p, b):
    open(p, "wb").write(b)
os.mkdir("data")
for split, n in (("train", 64), ("t10k", 16)):
    w("data/%s-images-idx3-ubyte" % split, images(n))
    w("data/%s-labels-idx1-ubyte" % split, labels(n))
# One damaged copy of the data set per case.
def variant(name):
    shutil.copytree("data", name)
    return name + "/"
os.remove(variant("d_missing") + "t10k-labels-idx1-ubyte")
w(variant("d_magic") + "train-images-idx3-ubyte", open("data/train-labels-idx1-ubyte", "rb").read())
w(variant("d_trunc") + "train-images-idx3-ubyte", open("data/train-images-idx3-ubyte", "rb").read()[:1000])
w(variant("d_trail") + "train-images-idx3-ubyte", open("data/train-images-idx3-ubyte", "rb").read() + b"\0\0\0")
w(variant("d_count") + "train-labels-idx1-ubyte", labels(63))
w(variant("d_label") + "train-labels-idx1-ubyte", struct.pack(">II", 0x801, 64) + bytes([10] + [i % 10 for i in range(63)]))
w(variant("d_zero") + "train-images-idx3-ubyte", struct.pack(">IIII", 0x803, 0, 28, 28))
d = variant("d_gz"); os.remove(d + "train-images-idx3-ubyte"); w(d + "train-images-idx3-ubyte.gz", b"\x1f\x8b" + b"garbage" * 9)
w(variant("d_dim0") + "train-images-idx3-ubyte", struct.pack(">IIII", 0x803, 64, 0, 28))
d = variant("d_isdir"); os.remove(d + "train-images-idx3-ubyte"); os.mkdir(d + "train-images-idx3-ubyte")
w("afile", b"a regular file\n")

# Images for predict.
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
raw = b"".join(b"\0" + bytes((x * 9 + y) % 256 for x in range(28)) for y in range(28))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
w("good.png", png)
w("good.pgm", b"P5\n28 28\n255\n" + bytes(range(28)) * 28)
w("trunc.png", png[:len(png) // 2])
w("badchunk.png", png[:40] + bytes([png[40] ^ 0xff]) + png[41:])
w("notes.txt", b"not an image\n")
w("max0.pgm", b"P5\n28 28\n0\n" + bytes(28 * 28))
w("huge.pgm", b"P5\n100000 100000\n255\n" + bytes(16))
w("short.pgm", b"P5\n28 28\n255\n" + bytes(100))
w("garbage.safetensors", b"hello, this is not a safetensors file at all\n")
w("garbage.json", b'{"plan": {')
w("noplan.json", b'{"cpu": "x"}')
EOF

# A tiny run for the checkpoint, resume and predict rows (75x75, width 0.1, 64 images: about a second).
tiny=(--image-size 75 --no-aux --width 0.1 --epochs 1 --batch 16 --threads 1)
"$exe" train --data data "${tiny[@]}" --out run >train.log 2>&1 || { tail -5 train.log; echo "FAIL: the tiny run"; exit 1; }
model=run/model.safetensors
[ -s "$model" ] && [ -s run/checkpoints/last.safetensors ] || { echo "FAIL: the tiny run wrote no model"; exit 1; }

# Damaged copies of the model. The "checksum" metadata entry (incv3's own files) is dropped so each file
# reaches the check it is meant for, as a PyTorch state_dict or an older incv3 file would.
mutate() { # kind out
    python3 - "$model" "$2" "$1" <<'EOF'
import json, struct, sys
src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
meta = h.pop("__metadata__", {})
meta.pop("checksum", None)
raw = None
if kind == "truncdata":
    data = data[:len(data) // 2]
elif kind == "hdrlen":
    pass
elif kind == "numel":
    t = h["fc.bias"]; a, e = t["data_offsets"]; t["data_offsets"] = [a, e - 4]; t["shape"] = [t["shape"][0] - 1]
elif kind == "shape":
    h["fc.weight"]["shape"] = h["fc.weight"]["shape"][::-1]
elif kind == "dtype":
    h["fc.bias"]["dtype"] = "F16"
elif kind == "i64":
    t = h["fc.bias"]; a, e = t["data_offsets"]; t["dtype"] = "I64"; t["shape"] = [(e - a) // 8]
elif kind == "overlap":
    a = h["fc.weight"]["data_offsets"][0]; h["fc.bias"]["data_offsets"] = [a, a + 4 * h["fc.bias"]["shape"][0]]
elif kind == "missing":
    del h["fc.bias"]
elif kind == "dup":
    items = [json.dumps(k) + ": " + json.dumps(v) for k, v in h.items()]
    items += ['"fc.bias": ' + json.dumps(h["fc.bias"]), '"__metadata__": ' + json.dumps(meta)]
    raw = ("{" + ", ".join(items) + "}").encode()
elif kind == "badjson":
    raw = b'{"fc.bias": {"dtype": "F32", '
if raw is None:
    h["__metadata__"] = meta
    raw = json.dumps(h).encode()
raw += b" " * (-len(raw) % 8)
length = len(raw) if kind != "hdrlen" else len(raw) + len(data) + 1
open(dst, "wb").write(struct.pack("<Q", length) + raw + data)
EOF
}
for k in truncdata hdrlen numel shape dtype i64 overlap missing dup badjson; do
    mutate "$k" "st_$k.safetensors" || { echo "FAIL: writing st_$k.safetensors"; exit 1; }
done
# One flipped bit in the tensor data of an intact incv3 file (its checksum stays).
python3 - "$model" flipped.safetensors <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[-5] ^= 0x10; open(sys.argv[2], "wb").write(bytes(b))
EOF

ev=(eval --data data --threads 1 --checkpoint)

# ---- data files (incv3 train --data) --------------------------------------------------------------------
# Each must fail before any work and leave no run directory behind (so the same --out works next time).
data_row() { # id what dir pattern...
    local id=$1 what=$2 dir=$3
    shift 3
    run_check 1 "$@" -- "$exe" train --data "$dir" "${tiny[@]}" --out "out_$id"
    [ -z "$problem" ] && [ -e "out_$id" ] && problem="left a run directory out_$id behind: $(ls -R "out_$id" | tr '\n' ' ')"
    result "$id" "$what" "$problem"
}
data_row D1 "--data directory missing" nowhere "nowhere" "cannot open MNIST directory"
data_row D2 "--data is a regular file" afile "afile" "not a directory"
data_row D3 "one of the four files missing" d_missing "t10k-labels-idx1-ubyte"
data_row D4 "wrong IDX magic (a labels file as images)" d_magic "train-images-idx3-ubyte" "bad magic"
data_row D5 "truncated images file" d_trunc "train-images-idx3-ubyte" "truncated"
data_row D6 "trailing bytes after the images" d_trail "train-images-idx3-ubyte" "trailing"
data_row D7 "image and label counts differ" d_count "count mismatch" "train-images-idx3-ubyte" "train-labels-idx1-ubyte"
data_row D8 "a label of 10" d_label "train-labels-idx1-ubyte" "label 10"
data_row D9 "zero images" d_zero "train-images-idx3-ubyte" "no images"
data_row D10 "garbage .gz" d_gz "train-images-idx3-ubyte.gz" "corrupt gzip"
data_row D11 "an image dimension of 0" d_dim0 "train-images-idx3-ubyte" "rows 0"
data_row D12 "a directory where a data file should be" d_isdir "train-images-idx3-ubyte" "is a directory"
# The same --out works once the data is fixed.
check D13 "--out of a run that failed on its data, reused" 0 -- "$exe" train --data data "${tiny[@]}" --out out_D3

# ---- checkpoints and weights (incv3 eval/predict --checkpoint, incv3 train --resume) ---------------------
check C1 "--checkpoint missing" 1 "nosuch.safetensors" "cannot open" -- "$exe" "${ev[@]}" nosuch.safetensors
check C2 "--checkpoint is a directory" 1 "run: not a regular file" -- "$exe" "${ev[@]}" run
check C3 "not safetensors (text)" 1 "garbage.safetensors" "not a safetensors file" -- "$exe" "${ev[@]}" garbage.safetensors
check C4 "truncated in the tensor data" 1 "st_truncdata.safetensors" "truncated" -- "$exe" "${ev[@]}" st_truncdata.safetensors
check C5 "header length larger than the file" 1 "st_hdrlen.safetensors" "header length" "exceeds" -- "$exe" "${ev[@]}" st_hdrlen.safetensors
check C6 "header not JSON" 1 "st_badjson.safetensors" "not valid JSON" -- "$exe" "${ev[@]}" st_badjson.safetensors
check C7 "a tensor with the wrong element count" 1 "st_numel.safetensors" "fc.bias" "expected 10" -- "$exe" "${ev[@]}" st_numel.safetensors
check C8 "a tensor of the right size but the wrong shape" 1 "st_shape.safetensors" "fc.weight" -- "$exe" "${ev[@]}" st_shape.safetensors
check C9 "an unsupported dtype (F16)" 1 "st_dtype.safetensors" "fc.bias" "F16" -- "$exe" "${ev[@]}" st_dtype.safetensors
check C10 "the wrong dtype (I64 for F32)" 1 "st_i64.safetensors" "fc.bias" "expected F32" -- "$exe" "${ev[@]}" st_i64.safetensors
check C11 "overlapping data_offsets" 1 "st_overlap.safetensors" "overlap" -- "$exe" "${ev[@]}" st_overlap.safetensors
check C12 "a tensor name twice" 1 "st_dup.safetensors" "duplicate" -- "$exe" "${ev[@]}" st_dup.safetensors
check C13 "a tensor missing" 1 "st_missing.safetensors" "fc.bias is missing" -- "$exe" "${ev[@]}" st_missing.safetensors
check C14 "one flipped bit in an incv3 file" 1 "flipped.safetensors" "checksum" -- "$exe" "${ev[@]}" flipped.safetensors
check C15 "--resume on a directory without a checkpoint" 1 "--resume data" "no checkpoint" -- "$exe" train --resume data
resume_row() { # id what dir status pattern... -- extra args: the run must come out byte-identical
    local id=$1 what=$2 dir=$3 want=$4
    shift 4
    local pats=()
    while [ "$1" != "--" ]; do pats+=("$1"); shift; done
    shift
    local before
    before=$(snap "$dir")
    run_check "$want" "${pats[@]}" -- "$exe" train --resume "$dir" "$@"
    [ -z "$problem" ] && [ "$(snap "$dir")" != "$before" ] && problem="the run directory $dir changed"
    result "$id" "$what" "$problem"
}
resume_row C16 "--resume with a flag it cannot change" run 2 "--lr" -- --lr 0.1
cp -a run r_ckpt
for f in r_ckpt/checkpoints/*.safetensors; do head -c 3000 "$f" >"$f.cut" && mv "$f.cut" "$f"; done
resume_row C17 "--resume with every checkpoint damaged" r_ckpt 1 "--resume r_ckpt" "last.safetensors" -- --epochs 2
cp -a run r_plan && printf '{"plan": ' >r_plan/conv-plan.json
resume_row C18 "--resume with the run's conv-plan.json damaged" r_plan 1 "r_plan/conv-plan.json" -- --epochs 2
# The run's data set is gone: config.json names it by its absolute path, so move a copy's source away.
cp -r data data_gone && "$exe" train --data data_gone "${tiny[@]}" --out r_data >/dev/null 2>&1 && rm -rf data_gone
resume_row C19 "--resume when the run's data is gone" r_data 1 "data_gone" -- --epochs 2

# ---- images (incv3 predict) -----------------------------------------------------------------------------
pr=(predict --threads 1 --checkpoint "$model")
check I1 "image missing" 1 "nosuch.png" "cannot open" -- "$exe" "${pr[@]}" nosuch.png
check I2 "not a PGM or PNG (text)" 1 "notes.txt: not a PGM or PNG" -- "$exe" "${pr[@]}" notes.txt
check I3 "truncated PNG" 1 "trunc.png: truncated PNG" -- "$exe" "${pr[@]}" trunc.png
check I4 "PNG with a damaged chunk" 1 "badchunk.png: corrupt PNG" -- "$exe" "${pr[@]}" badchunk.png
check I5 "PGM with maxval 0" 1 "max0.pgm" "maxval 0" -- "$exe" "${pr[@]}" max0.pgm
check I6 "PGM of 100000x100000" 1 "huge.pgm" "dimensions" -- "$exe" "${pr[@]}" huge.pgm
check I7 "PGM with fewer pixels than its header says" 1 "short.pgm: truncated PGM data" -- "$exe" "${pr[@]}" short.pgm
check I8 "a directory as the image" 1 "run:" -- "$exe" "${pr[@]}" run
run_check 1 "notes.txt" "trunc.png" -- "$exe" "${pr[@]}" good.png notes.txt trunc.png good.pgm
[ -z "$problem" ] && ! { grep -q "^good.png: " out && grep -q "^good.pgm: " out; } &&
    problem="the good images were not all classified: $(cat out)"
result I9 "bad images among good ones (the good ones are still classified)" "$problem"

# ---- flags ----------------------------------------------------------------------------------------------
# Usage errors: exit 2 naming the flag, before any work (no run directory made).
flag_row() { # id what pattern -- train args...
    local id=$1 what=$2 pat=$3
    shift 4
    run_check 2 "$pat" -- "$exe" train --data data --out "out_$id" "$@" # a later --out wins
    [ -z "$problem" ] && [ -e "out_$id" ] && problem="made out_$id"
    result "$id" "$what" "$problem"
}
flag_row F1 "unknown flag" "unknown flag --frobnicate" -- "${tiny[@]}" --frobnicate
check F2 "flag without its value" 2 "--epochs needs a value" -- "$exe" train --data data --out out_F2 --epochs
flag_row F3 "non-numeric value" "--epochs three" -- "${tiny[@]}" --epochs three
flag_row F4 "--epochs 0" "--epochs 0" -- "${tiny[@]}" --epochs 0
flag_row F5 "--batch 0" "--batch 0" -- "${tiny[@]}" --batch 0
flag_row F6 "--lr -1" "--lr -1" -- "${tiny[@]}" --lr -1
flag_row F7 "--width 0" "--width 0" -- "${tiny[@]}" --width 0
flag_row F8 "--image-size 50" "--image-size 50" -- "${tiny[@]}" --image-size 50
flag_row F9 "--image-size 100 with the aux head" "--image-size 100" -- --width 0.1 --image-size 100
flag_row F10 "--val-fraction 1" "--val-fraction 1" -- "${tiny[@]}" --val-fraction 1
flag_row F11 "--threads 0" "--threads 0" -- "${tiny[@]}" --threads 0
flag_row F12 "--bind x" "--bind x" -- "${tiny[@]}" --bind x
flag_row F13 "--conv-algo bogus" "--conv-algo bogus" -- "${tiny[@]}" --conv-algo bogus
flag_row F14 "--isa bogus" "--isa bogus" -- "${tiny[@]}" --isa bogus
flag_row F15 "a stray argument" "unexpected argument 'stray'" -- "${tiny[@]}" stray
check F16 "predict --top 0" 2 "--top 0" -- "$exe" "${pr[@]}" --top 0 good.png
check F17 "predict --top 11 (more than the classes)" 2 "--top 11" -- "$exe" "${pr[@]}" --top 11 good.png
check F18 "predict --top with --logits" 2 "--logits" -- "$exe" "${pr[@]}" --top 2 --logits good.png
check F19 "predict without --checkpoint" 2 "--checkpoint" -- "$exe" predict good.png
check F20 "summary --plan without --kernels" 2 "--plan run/conv-plan.json" "--kernels" -- "$exe" summary --plan run/conv-plan.json
check F21 "unknown command" 2 "frobnicate" -- "$exe" frobnicate
# --out: an existing run is refused and kept as it was.
before=$(snap run)
run_check 2 "--out run" "not empty" -- "$exe" train --data data "${tiny[@]}" --out run
[ -z "$problem" ] && [ "$(snap run)" != "$before" ] && problem="the existing run directory changed"
result F22 "--out an existing non-empty directory (kept untouched)" "$problem"
flag_row F23 "--out a regular file" "--out afile" -- "${tiny[@]}" --out afile
[ "$(cat afile)" = "a regular file" ] || { fails=$((fails + 1)); echo "FAIL F23: afile was changed"; }
flag_row F24 "--out under a regular file" "--out afile/run" -- "${tiny[@]}" --out afile/run
if [ "$(id -u)" -ne 0 ]; then
    mkdir ro && chmod 555 ro
    flag_row F25 "--out in a read-only directory" "--out ro/run" -- "${tiny[@]}" --out ro/run
else
    echo "skip F25 --out in a read-only directory: running as root, where chmod does not restrict (F24 covers it)"
fi

# ---- environment ----------------------------------------------------------------------------------------
# Bad values are warned about and the run goes on with the default.
check E1 "OMP_NUM_THREADS=abc" 0 'OMP_NUM_THREADS="abc"' "ignored" -- env OMP_NUM_THREADS=abc "$exe" predict --checkpoint "$model" good.png
check E2 "OMP_NUM_THREADS=0" 0 'OMP_NUM_THREADS="0"' "ignored" -- env OMP_NUM_THREADS=0 "$exe" predict --checkpoint "$model" good.png
# --conv-algo auto times layer shapes it has not seen and caches the choice; a cache it cannot use never
# stops a command. The timing runs for shapes new to the cache, so each row gets a fresh cache location.
ks=(summary --kernels --image-size 75 --no-aux --width 0.1 --batch 1)
check E3 "XDG_CACHE_HOME under a regular file" 0 "could not cache" "$tmp/afile/cache" -- env XDG_CACHE_HOME="$tmp/afile/cache" "$exe" "${ks[@]}"
mkdir -p dmg/incv3 && printf '{"cpus": {' >dmg/incv3/conv-plan.json
run_check 0 "ignoring the damaged convolution-plan cache" "$tmp/dmg/incv3/conv-plan.json" -- env XDG_CACHE_HOME="$tmp/dmg" "$exe" "${ks[@]}"
[ -z "$problem" ] && ! python3 -c "import json; json.load(open('dmg/incv3/conv-plan.json'))" 2>/dev/null &&
    problem="the damaged cache was not rebuilt"
result E4 "a damaged conv-plan.json cache (ignored, rebuilt)" "$problem"
check E5 "HOME and XDG_CACHE_HOME unset" 0 "could not cache" "XDG_CACHE_HOME or HOME" -- env -u HOME -u XDG_CACHE_HOME "$exe" "${ks[@]}"
if [ "$(id -u)" -ne 0 ]; then
    mkdir -p rocache && chmod 555 rocache
    check E6 "XDG_CACHE_HOME read-only" 0 "could not cache" "$tmp/rocache" -- env XDG_CACHE_HOME="$tmp/rocache" "$exe" "${ks[@]}"
else
    echo "skip E6 XDG_CACHE_HOME read-only: running as root, where chmod does not restrict (E3 covers it)"
fi

# ---- convolution plan files (incv3 summary --kernels --plan) --------------------------------------------
python3 - <<'EOF'
import json
d = json.load(open("run/conv-plan.json"))
k = next(iter(d["plan"]))
d["plan"][k] = "conv_fwd_f32_winograd_f8x8__neon"
json.dump(d, open("alien.json", "w"))
EOF
check P1 "--plan file missing" 1 "--plan nosuch.json" "unable to open" -- "$exe" "${ks[@]}" --plan nosuch.json
check P2 "--plan garbage JSON" 1 "--plan garbage.json" "not a readable convolution plan" -- "$exe" "${ks[@]}" --plan garbage.json
check P3 "--plan without a plan object" 1 "--plan noplan.json" "no \"plan\" object" -- "$exe" "${ks[@]}" --plan noplan.json
check P4 "--plan naming a kernel this build lacks" 1 "alien.json" "conv_fwd_f32_winograd_f8x8__neon" "does not have" -- "$exe" "${ks[@]}" --plan alien.json

# ---- memory (incv3 train's estimate against the limits, before any step) ---------------------------------
mem_row() { # id what pattern... -- command...: refused with status 1 and no run directory left behind
    local id=$1 what=$2
    shift 2
    run_check 1 "$@"
    [ -z "$problem" ] && [ -e "out_$id" ] && problem="left a run directory out_$id behind"
    result "$id" "$what" "$problem"
}
if [ -n "${INCV3_SANITIZER_PASS:-}" ]; then
    echo "skip M1 ulimit -v: AddressSanitizer maps terabytes of shadow memory, which no small ulimit -v allows"
else
    mem_row M1 "299x299 under ulimit -v 3000000" "needs an estimated" "GiB is available" "ulimit -v" "--batch" "--image-size" \
        -- bash -c 'ulimit -v 3000000 && exec "$@"' _ "$exe" train --data data --image-size 299 --epochs 1 --threads 1 --out out_M1
fi
mem_row M2 "--batch 4096 at 299x299" "--batch 4096" "needs an estimated" "lower --batch or --image-size" \
    -- "$exe" train --data data --image-size 299 --batch 4096 --epochs 1 --threads 1 --out out_M2

# ---- incv3-kbench ---------------------------------------------------------------------------------------
check K1 "kbench --shape with a non-number" 2 "--shape 1,2,x" -- "$kb" --shape 1,2,x
check K2 "kbench --shape whose kernel does not fit" 2 "--shape 3,4,4,8,7,7,1,0,0" -- "$kb" --shape 3,4,4,8,7,7,1,0,0
if "$kb" --algo winograd --shape 16,9,9,16,3,3,1,1,1 --batch 1 --repeat 1 --format json >/dev/null 2>&1; then
    check K3 "kbench --algo winograd-f4x4 on a stride-2 shape" 1 "winograd-f4x4" "stride-1" -- "$kb" --algo winograd-f4x4 --shape 16,9,9,16,3,3,2,1,1 --batch 1 --repeat 1
else
    echo "skip K3: no Winograd kernels on this CPU/build"
fi
check K4 "kbench --format xml" 2 "--format xml" -- "$kb" --format xml --shape 8,8,8,8,3,3,1,1,1
check K5 "kbench --threads 0" 2 "--threads 0" -- "$kb" --threads 0 --shape 8,8,8,8,3,3,1,1,1

echo "$rows rows: $((rows - fails)) passed, $fails failed"
if [ "$fails" -ne 0 ]; then
    exit 1
fi
echo "all bad-input checks passed"
