#!/usr/bin/env bash
# Installs a CPU libtorch 2.13.0 taken from PyPI wheels into a cache outside the clone and prints its path.
# A no-op when the directory is already complete, or when LIBTORCH points at an existing libtorch.
set -euo pipefail

TORCH_VERSION=2.13.0
CUDART_VERSION=13.0.96   # libtorch_cpu.so links libcudart.so.13 even for CPU work
CUPTI_VERSION=13.0.85    # ... and libcupti.so.13

if [ -n "${LIBTORCH:-}" ] && [ -f "$LIBTORCH/lib/libtorch_cpu.so" ]; then
    echo "$LIBTORCH"; exit 0
fi
dest="${LIBTORCH:-${XDG_CACHE_HOME:-$HOME/.cache}/cebra/libtorch-$TORCH_VERSION-cpu}"
if [ -f "$dest/.complete" ]; then echo "$dest"; exit 0; fi

python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/cebra-libtorch.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "fetching libtorch $TORCH_VERSION (CPU) from PyPI wheels into $dest" >&2
# The wheels' C++ libraries do not depend on the Python version, so ask for one fixed CPython tag and
# the manylinux platforms these wheels are published for, whatever Python runs pip (PyPI has no
# torch 2.13 wheel for e.g. Python 3.9, and pip would otherwise ask for the host's tag).
# pip matches manylinux_2_N tags exactly, hence the list.
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheels" \
    --python-version 3.12 --implementation cp --abi cp312 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_25_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    "torch==$TORCH_VERSION" "nvidia-cuda-runtime==$CUDART_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION" >&2

mkdir -p "$work/unpacked"
for whl in "$work"/wheels/*.whl; do
    "$python" -m zipfile -e "$whl" "$work/unpacked" >&2
done

rm -rf "$dest.partial"
mkdir -p "$dest.partial/lib"
cp -r "$work/unpacked/torch/include" "$dest.partial/include"
cp -r "$work/unpacked/torch/share" "$dest.partial/share" 2>/dev/null || true
# CPU libtorch: everything but the CUDA, NVSHMEM, NVRTC and Python-binding libraries,
# which would make tch link the CUDA backend.
for lib in "$work"/unpacked/torch/lib/*.so*; do
    base=$(basename "$lib")
    case "$base" in
        *cuda*|*nvshmem*|*nvrtc*|*torch_python*) continue ;;
    esac
    cp -a "$lib" "$dest.partial/lib/"
done
# The two CUDA runtime pieces libtorch_cpu.so needs at load time.
find "$work/unpacked/nvidia" \( -name 'libcudart.so.13*' -o -name 'libcupti.so.13*' \) -exec cp -a {} "$dest.partial/lib/" \;
echo "$TORCH_VERSION" > "$dest.partial/build-version"
touch "$dest.partial/.complete"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$dest.partial" "$dest"
echo "$dest"
