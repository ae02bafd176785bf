#!/usr/bin/env bash
# Makes sure GNU Octave (octave-cli) and its mex compiler (mkoctfile) are installed: installs the
# packages of bindings/matlab/packages.txt with apt-get when running as root or with password-less
# sudo, and otherwise stops at once with one message naming the packages and the command.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v octave-cli >/dev/null 2>&1 && command -v mkoctfile >/dev/null 2>&1; then
    exit 0
fi
mapfile -t packages < <(grep -v '^#' "$here/packages.txt" | grep -v '^[[:space:]]*$')
command_line="apt-get install -y --no-install-recommends ${packages[*]}"
sudo=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=sudo
    else
        echo "matlab: GNU Octave is missing (octave-cli, mkoctfile); install it with: sudo apt-get update && sudo $command_line" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "matlab: GNU Octave is missing (octave-cli, mkoctfile) and there is no apt-get: install the packages ${packages[*]} (or your system's equivalents)" >&2
    exit 1
fi
echo "matlab: installing ${packages[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo $command_line -q
