#!/usr/bin/env bash
# Makes sure the system tools that make goals need are installed, before any long step runs.
#   tools/ensure-tools.sh GROUP...     GROUP: build | test | install-test | matlab
# Missing tools are installed with apt-get when this runs as root or sudo works without a password;
# otherwise it stops at once with one message naming the packages and the command to install them.
# The Makefile calls it for `make build`, `make demo` and `make test`; .ci/run calls it too.
set -euo pipefail

# command -> Debian package that provides it
declare -A package_of=(
    [cc]=build-essential [c++]=build-essential [make]=make [git]=git
    [python3]=python3 [pip]=python3-pip
    [cmake]=cmake [pkg-config]=pkg-config [valgrind]=valgrind [readelf]=binutils [strip]=binutils
    [ldd]=libc-bin [runuser]=util-linux
    [octave-cli]=octave [mkoctfile]=liboctave-dev
)
# goal group -> commands it needs
declare -A needs_of=(
    [build]="cc python3 pip"
    [install-test]="cc cmake pkg-config readelf ldd strip runuser"
    [test]="cc c++ make git python3 pip cmake pkg-config valgrind readelf ldd strip runuser octave-cli mkoctfile"
    [matlab]="cc octave-cli mkoctfile"
)

have() {
    case "$1" in
        pip) python3 -m pip --version >/dev/null 2>&1 ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

missing=()
for group in "$@"; do
    [ -n "${needs_of[$group]+x}" ] || { echo "ensure-tools: unknown group '$group'" >&2; exit 2; }
    for cmd in ${needs_of[$group]}; do
        have "$cmd" || missing+=("${package_of[$cmd]}")
    done
done
for tool in cargo rustc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "ensure-tools: '$tool' not found: install a Rust toolchain >= 1.89 (https://rustup.rs)" >&2
        exit 1
    fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "ensure-tools: missing system packages: ${missing[*]}" >&2
    echo "ensure-tools: install them with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-tools: missing system packages (Debian names): ${missing[*]}; install them with your package manager" >&2
    exit 1
fi
echo "ensure-tools: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
