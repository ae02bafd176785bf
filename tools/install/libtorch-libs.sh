#!/usr/bin/env bash
# Prints the libtorch libraries a built libcebra.so loads (resolved by the dynamic loader through the
# library's run path), one path per line: the files `make install` copies into <prefix>/lib/cebra.
# Usage: tools/install/libtorch-libs.sh path/to/libcebra.so
set -euo pipefail
lib=${1:?usage: libtorch-libs.sh LIBCEBRA_SO}
deps=$(ldd "$lib")
# The directory libtorch_cpu.so resolves to; everything loaded from there belongs to libtorch.
torch_dir=$(awk '$1 == "libtorch_cpu.so" && $3 ~ /^\// { print $3 }' <<<"$deps" | xargs -r dirname)
if [ -z "$torch_dir" ]; then
    echo "libtorch-libs: $lib does not resolve libtorch_cpu.so (ldd: $(grep -i 'not found' <<<"$deps" | tr '\n' ' '))" >&2
    exit 1
fi
awk -v dir="$torch_dir/" '$2 == "=>" && index($3, dir) == 1 { print $3 }' <<<"$deps"
