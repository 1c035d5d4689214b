#!/usr/bin/env bash
# Install test: installs the build into a temporary root, then builds tests/install_consumer.c against the
# installed headers and library found through the installed incv3.pc only, runs it, and checks that every
# installed header compiles on its own (so none includes a header that is not installed).
#
# Usage (from meson test): test_install.sh BUILD_ROOT SOURCE_ROOT
set -euo pipefail

fail() {
    echo "test_install: FAIL: $*" >&2
    exit 1
}

if [ "$#" -ne 2 ]; then
    echo "usage: $0 BUILD_ROOT SOURCE_ROOT" >&2
    exit 2
fi
build_root=$1
source_root=$2
CC=${CC:-cc}

[ -d "$build_root" ] || fail "build folder $build_root does not exist"
[ -d "$source_root" ] || fail "source folder $source_root does not exist"
consumer_src=$(cd "$source_root" && pwd)/tests/install_consumer.c
[ -f "$consumer_src" ] || fail "consumer program $consumer_src does not exist"
command -v meson >/dev/null 2>&1 || fail "meson is not on PATH"
command -v pkg-config >/dev/null 2>&1 || fail "pkg-config is not on PATH"
command -v "$CC" >/dev/null 2>&1 || fail "C compiler '$CC' is not on PATH"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/incv3-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
destdir=$tmp/root

# 1. Install into the temporary root.
if ! meson install -C "$build_root" --destdir "$destdir" --no-rebuild --quiet >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    fail "meson install -C $build_root --destdir $destdir --no-rebuild failed (log above)"
fi

# 2. The installed pkg-config file, library and headers.
mapfile -t pcs < <(find "$destdir" -name incv3.pc -type f)
[ "${#pcs[@]}" -eq 1 ] || fail "expected one installed incv3.pc under $destdir, found ${#pcs[@]}: ${pcs[*]:-none}"
pc_dir=$(dirname "${pcs[0]}")
lib_dir=$(dirname "$pc_dir")
compgen -G "$lib_dir/libincv3.so*" >/dev/null || compgen -G "$lib_dir/libincv3.a" >/dev/null ||
    fail "no libincv3 next to ${pcs[0]} (looked in $lib_dir)"
mapfile -t graph_h < <(find "$destdir" -path '*/include/incv3/graph.h' -type f)
[ "${#graph_h[@]}" -eq 1 ] || fail "expected one installed include/incv3/graph.h under $destdir, found ${#graph_h[@]}"
inc_dir=$(dirname "$(dirname "${graph_h[0]}")")
for h in error.h tensor.h graph.h train.h model.h; do
    [ -f "$inc_dir/incv3/$h" ] || fail "public header incv3/$h is not installed (looked in $inc_dir/incv3)"
done

# 3. Compile and link the consumer with the flags of the installed incv3.pc.
if ! flags=$(PKG_CONFIG_PATH="$pc_dir" PKG_CONFIG_SYSROOT_DIR="$destdir" PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 \
    PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config --cflags --libs incv3 2>"$tmp/pkg-config.log"); then
    cat "$tmp/pkg-config.log" >&2
    fail "pkg-config --cflags --libs incv3 failed with PKG_CONFIG_PATH=$pc_dir (log above)"
fi
case " $flags " in
*" -I$destdir"*) ;;
*) fail "pkg-config flags do not point into the installed tree: $flags" ;;
esac
echo "test_install: pkg-config flags: $flags"
# Word splitting of $flags is intended: it is a list of compiler arguments.
# shellcheck disable=SC2086
if ! (cd "$tmp" && "$CC" -std=c11 -Wall -Wextra -o "$tmp/consumer" "$consumer_src" $flags) >"$tmp/cc.log" 2>&1; then
    cat "$tmp/cc.log" >&2
    fail "compiling $consumer_src against the installed library failed (log above)"
fi
if [ -s "$tmp/cc.log" ]; then
    cat "$tmp/cc.log" >&2
fi

# 4. Run it against the installed library.
export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if command -v ldd >/dev/null 2>&1; then
    resolved=$(ldd "$tmp/consumer" | awk '/libincv3/ {print $3}')
    case "$resolved" in
    "$destdir"/*) ;;
    *) fail "the consumer loads libincv3 from '$resolved', not from the installed $lib_dir" ;;
    esac
fi
status=0
"$tmp/consumer" >"$tmp/consumer.out" 2>"$tmp/consumer.err" || status=$?
cat "$tmp/consumer.out"
cat "$tmp/consumer.err" >&2
[ "$status" -eq 0 ] || fail "the consumer program exited with status $status"
for n in 0 1; do
    count=$(grep -cE "^logits\[$n\]:( -?[0-9]+\.[0-9]+){5}\$" "$tmp/consumer.out" || true)
    [ "$count" -eq 2 ] || fail "the consumer did not print finite logits for sample $n (twice): see its output above"
done
if grep -E '^(logits|loss)' "$tmp/consumer.out" | grep -qiwE 'nan|inf'; then
    fail "the consumer printed a non-finite value"
fi

# 5. Every installed header compiles alone, with only the installed include folder on the path.
bad=0
for header in "$inc_dir"/incv3/*.h; do
    name=incv3/$(basename "$header")
    if ! (cd "$tmp" && printf '#include <%s>\n' "$name" |
        "$CC" -std=c11 -Wall -Wextra -fsyntax-only -I"$inc_dir" -x c - >"$tmp/header.log" 2>&1); then
        cat "$tmp/header.log" >&2
        echo "test_install: FAIL: installed header $name does not compile on its own (it may include a header" \
            "that is not installed)" >&2
        bad=1
    fi
done
[ "$bad" -eq 0 ] || exit 1

echo "test_install: OK (installed into $destdir, consumer built with pkg-config and run)"
