#!/usr/bin/env bash
# Checks an installed libcebra (`make install PREFIX=...`; run by `make install-test`):
#   1. the installed files are there (libcebra.so.<ABI> with its links, the libtorch libraries in
#      lib/cebra), and everything the library loads resolves inside the prefix;
#   2. bindings/c/examples/embed.c builds with `pkg-config --cflags --libs cebra` (and so does the C++
#      example bindings/cpp/examples/embed.cpp, over the installed cebra.hpp),
#      with CMake's `find_package(cebra)` + `cebra::cebra`, and with `cebra::cebra_static`;
#   3. each program, and the installed CLI, runs with an EMPTY environment (`env -i`: no
#      LD_LIBRARY_PATH, no HOME) and prints the expected output; when this runs as root, the programs
#      run as user `nobody`, for whom the builder's libtorch cache (under root's home) is out of reach.
# Usage: tools/install/test-install.sh PREFIX [WORKDIR]
set -euo pipefail

prefix=${1:?usage: test-install.sh PREFIX [WORKDIR]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/cebra-install-work.XXXXXX")}
mkdir -p "$work"
example="$root/bindings/c/examples"
# offset10-model weights for (7 neurons, 12 units, 3 outputs), as the reference initialises them after
# torch.manual_seed(1234): different from the program's own seeded initialisation.
weights="$root/tests/fixtures/init/offset10-model.safetensors"
CC=${CC:-cc}

abi=$(sed -n 's/^const ABI_VERSION: u32 = \([0-9]*\);/\1/p' "$root/build.rs")

# Expected output of embed (values to 1e-3). Seeded: `cebra_manual_seed(0)` then init, which gives the
# reference's torch.manual_seed(0) weights (tests/fixtures/models/offset10-model.safetensors).
# Loaded: the weights above; the same numbers come out of `cebra embed` on the same input.
expected_seeded='out_time = 7
embedding[0] = +0.0505 -0.8968 -0.4395'
expected_loaded='out_time = 7
embedding[0] = +0.2971 +0.9183 +0.2618'

failures=0
pass() { echo "install-test: ok   $*"; }
fail() { echo "install-test: FAIL $*" >&2; failures=$((failures + 1)); }

# Same words in the same order; numbers may differ by up to 1e-3.
same_output() {
    awk -v a="$1" -v e="$2" 'BEGIN {
        na = split(a, x, /[ \n]+/); ne = split(e, y, /[ \n]+/)
        if (na != ne) exit 1
        for (i = 1; i <= na; i++) {
            if (x[i] == y[i]) continue
            if (x[i] ~ /^[-+]?[0-9.]+$/ && y[i] ~ /^[-+]?[0-9.]+$/ && (x[i] - y[i]) ^ 2 <= 1e-6) continue
            exit 1
        }
    }'
}

# run_check NAME EXPECTED PROGRAM [ARGS...]: runs PROGRAM under `env -i` and compares its stdout.
run_check() {
    local name=$1 expected=$2 out rc=0
    shift 2
    out=$("${as_user[@]}" env -i "$@" 2>"$work/stderr") || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name: exit status $rc: $(cat "$work/stderr")"
    elif ! same_output "$out" "$expected"; then
        fail "$name: unexpected output"
        printf -- '--- expected\n%s\n--- got\n%s\n' "$expected" "$out" >&2
    else
        pass "$name ($(echo "$out" | tail -n 1))"
    fi
}

# 1. Layout.
for f in "lib/libcebra.so.$abi" lib/libcebra.so lib/libcebra.a include/cebra.h include/cebra.hpp bin/cebra lib/pkgconfig/cebra.pc \
         lib/cmake/cebra/cebraConfig.cmake lib/cmake/cebra/cebraConfigVersion.cmake lib/cebra/libtorch_cpu.so; do
    [ -e "$prefix/$f" ] || fail "missing $prefix/$f"
done
soname=$(readelf -d "$prefix/lib/libcebra.so.$abi" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libcebra.so.$abi" ] && pass "SONAME $soname" || fail "SONAME is '$soname', expected libcebra.so.$abi"
[ "$(readlink "$prefix/lib/libcebra.so")" = "libcebra.so.$abi" ] && pass "lib/libcebra.so -> libcebra.so.$abi" \
    || fail "lib/libcebra.so is not a link to libcebra.so.$abi"
runpath=$(readelf -d "$prefix/lib/libcebra.so.$abi" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p')
case "$runpath" in
    '$ORIGIN/cebra'*) pass "libcebra.so run path starts with \$ORIGIN/cebra ($runpath)" ;;
    *) fail "libcebra.so run path '$runpath' does not start with \$ORIGIN/cebra" ;;
esac
# Everything libtorch-related the installed library and CLI load comes from the prefix.
for bin in "lib/libcebra.so.$abi" bin/cebra; do
    outside=$(ldd "$prefix/$bin" | awk -v p="$prefix/" '($1 ~ /torch|c10|gomp|cuda|cupti/ && $2 == "=>" && index($3, p) != 1) || /not found/')
    [ -z "$outside" ] && pass "$bin loads libtorch from the prefix" || fail "$bin loads from outside the prefix: $outside"
done
if size=$(du -shL "$prefix/lib/libcebra.so.$abi" "$prefix/lib/libcebra.a" "$prefix/bin/cebra" 2>/dev/null); then
    pass "sizes: $(echo "$size" | awk '{ printf "%s %s; ", $1, $2 }')"
fi

# The programs run as `nobody` when we are root: the builder's libtorch (in root's home) is then out of
# reach, so only the installed copy can be loaded. Everything they read must be readable by nobody.
as_user=()
if [ "$(id -u)" -eq 0 ] && command -v runuser >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
    cp "$weights" "$work/weights.safetensors"
    # Only our own temporary directories are opened up (make install-test puts both in one).
    chmod -R a+rX "$prefix" "$work"
    chmod a+x "$(dirname "$prefix")" "$(dirname "$work")" 2>/dev/null || true
    if runuser -u nobody -- test -x "$prefix/bin/cebra" -a -r "$work/weights.safetensors"; then
        weights="$work/weights.safetensors"
        as_user=(runuser -u nobody --)
        if runuser -u nobody -- test -r "${LIBTORCH:-/nonexistent}/lib/libtorch_cpu.so"; then
            echo "install-test: note: the build's libtorch ($LIBTORCH) is readable by nobody too" >&2
        else
            pass "programs run as nobody, who cannot read the build's libtorch"
        fi
    else
        echo "install-test: note: nobody cannot reach $prefix; running the programs as $(id -un)" >&2
    fi
fi

# 2a. pkg-config.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
if flags=$(pkg-config --cflags --libs cebra); then
    "$CC" -std=c99 -Wall -Wextra -Werror -pedantic -o "$work/embed-pkgconfig" "$example/embed.c" $flags \
        && pass "embed.c built with pkg-config ($flags)" || fail "embed.c does not build with pkg-config"
    # The training example (fit, transform, stream).
    "$CC" -std=c99 -Wall -Wextra -Werror -pedantic -o "$work/train-pkgconfig" "$example/train.c" $flags -lm \
        && pass "train.c built with pkg-config" || fail "train.c does not build with pkg-config"
    # The C++ example over the installed cebra.hpp, with the same flags.
    "${CXX:-c++}" -std=c++17 -Wall -Wextra -Werror -pedantic -o "$work/embed-cpp-pkgconfig" \
        "$root/bindings/cpp/examples/embed.cpp" $flags \
        && pass "embed.cpp built with pkg-config and cebra.hpp" || fail "embed.cpp does not build with pkg-config"
else
    fail "pkg-config does not find cebra in $PKG_CONFIG_PATH"
fi

# 2b. CMake, shared and static.
for variant in shared static; do
    static=OFF; [ "$variant" = static ] && static=ON
    if cmake -S "$example" -B "$work/cmake-$variant" -DCMAKE_PREFIX_PATH="$prefix" -DEMBED_STATIC=$static \
            -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Release >"$work/cmake-$variant.log" 2>&1 \
        && cmake --build "$work/cmake-$variant" >>"$work/cmake-$variant.log" 2>&1; then
        pass "embed.c built with CMake find_package(cebra) ($variant)"
    else
        fail "embed.c does not build with CMake ($variant); log:"; cat "$work/cmake-$variant.log" >&2
    fi
done

# 3. Run everything with an empty environment.
for bin in embed-pkgconfig embed-cpp-pkgconfig cmake-shared/embed cmake-static/embed; do
    [ -x "$work/$bin" ] || continue
    run_check "$bin (seeded init)" "$expected_seeded" "$work/$bin"
    run_check "$bin $(basename "$weights")" "$expected_loaded" "$work/$bin" "$weights"
done
if [ -x "$work/embed-pkgconfig" ]; then
    # The program reports a failed status with the library's message and exits 1.
    if "${as_user[@]}" env -i "$work/embed-pkgconfig" "$work/no-such-file.safetensors" >/dev/null 2>"$work/stderr"; then
        fail "embed with a missing weights file succeeded"
    elif grep -q "cebra_model_load.*no-such-file" "$work/stderr"; then
        pass "embed with a missing weights file: $(cat "$work/stderr")"
    else
        fail "embed with a missing weights file printed: $(cat "$work/stderr")"
    fi
fi
for bin in train-pkgconfig cmake-shared/train cmake-static/train; do
    [ -x "$work/$bin" ] || continue
    if out=$("${as_user[@]}" env -i "$work/$bin" 2>"$work/stderr") && echo "$out" | grep -q '^20 steps, loss' \
        && echo "$out" | grep -q '^streamed 291 samples'; then
        pass "$bin ($(echo "$out" | grep '^20 steps'))"
    else
        fail "$bin: $(cat "$work/stderr") $out"
    fi
done
run_check "bin/cebra list --limit 3" $'offset10-model\noffset10-model-mse\noffset5-model' \
    "$prefix/bin/cebra" list --limit 3

if [ "$failures" -ne 0 ]; then
    echo "install-test: $failures check(s) failed" >&2
    exit 1
fi
echo "install-test: all checks passed"
