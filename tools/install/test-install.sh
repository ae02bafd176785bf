#!/usr/bin/env bash
# Checks an installed libcebra (`make install PREFIX=...`; run by `make install-test`):
#   1. the installed files are there, and libcebra.so's run path reaches libtorch;
#   2. bindings/c/examples/embed.c builds with `pkg-config --cflags --libs cebra`,
#      with CMake's `find_package(cebra)` + `cebra::cebra`, and with `cebra::cebra_static`;
#   3. each program, and the installed CLI, runs with an EMPTY environment (`env -i`: no
#      LD_LIBRARY_PATH, no HOME) and prints the expected output.
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
    out=$(env -i "$@" 2>"$work/stderr") || rc=$?
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
for f in lib/libcebra.so lib/libcebra.a include/cebra.h bin/cebra lib/pkgconfig/cebra.pc \
         lib/cmake/cebra/cebraConfig.cmake lib/cmake/cebra/cebraConfigVersion.cmake; do
    [ -f "$prefix/$f" ] || fail "missing $prefix/$f"
done
runpath=$(readelf -d "$prefix/lib/libcebra.so" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p')
found=
IFS=: read -r -a dirs <<< "$runpath"
for d in "${dirs[@]}"; do [ -f "$d/libtorch_cpu.so" ] && found=$d; done
if [ -n "$found" ]; then pass "libcebra.so run path reaches libtorch ($found)"
else fail "libcebra.so run path '$runpath' has no directory with libtorch_cpu.so"; fi

# 2a. pkg-config.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
if flags=$(pkg-config --cflags --libs cebra); then
    "$CC" -std=c99 -Wall -Wextra -Werror -pedantic -o "$work/embed-pkgconfig" "$example/embed.c" $flags \
        && pass "embed.c built with pkg-config ($flags)" || fail "embed.c does not build with pkg-config"
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
for bin in embed-pkgconfig cmake-shared/embed cmake-static/embed; do
    [ -x "$work/$bin" ] || continue
    run_check "$bin (seeded init)" "$expected_seeded" "$work/$bin"
    run_check "$bin $(basename "$weights")" "$expected_loaded" "$work/$bin" "$weights"
done
if [ -x "$work/embed-pkgconfig" ]; then
    # The program reports a failed status with the library's message and exits 1.
    if env -i "$work/embed-pkgconfig" "$work/no-such-file.safetensors" >/dev/null 2>"$work/stderr"; then
        fail "embed with a missing weights file succeeded"
    elif grep -q "cebra_model_load.*no-such-file" "$work/stderr"; then
        pass "embed with a missing weights file: $(cat "$work/stderr")"
    else
        fail "embed with a missing weights file printed: $(cat "$work/stderr")"
    fi
fi
run_check "bin/cebra list --limit 3" $'offset10-model\noffset10-model-mse\noffset5-model' \
    "$prefix/bin/cebra" list --limit 3

if [ "$failures" -ne 0 ]; then
    echo "install-test: $failures check(s) failed" >&2
    exit 1
fi
echo "install-test: all checks passed"
