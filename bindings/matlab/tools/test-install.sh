#!/usr/bin/env bash
# Checks an installed MATLAB/Octave binding (`make install` then `make -C bindings/matlab install`,
# same PREFIX): Octave with an EMPTY environment (env -i: no LD_LIBRARY_PATH) and only
# PREFIX/share/cebra/matlab on its path (plus the test-only fixture reader) finds the installed
# gateway, and the installed library gives the reference output for offset10-model.
#   tools/test-install.sh OCTAVE PREFIX
set -euo pipefail
octave="${1:?usage: $0 OCTAVE PREFIX}"
prefix="${2:?usage: $0 OCTAVE PREFIX}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixtures="$(cd "$here/../../tests/fixtures" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/cebra-matlab-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The test-only fixture reader, alone in a folder (not the source tree's package or gateway).
mkdir -p "$work/installed"
cp "$here/tests/fixture_mex.mex" "$work/installed/"
script="
addpath('$prefix/share/cebra/matlab');
addpath('$work/installed');
mex_file = which('cebra_mex');
if ~strncmp(mex_file, '$prefix/', numel('$prefix/'))
  error('test:install', 'cebra_mex comes from %s, not from the prefix', mex_file);
end
io = '$fixtures/models/offset10-model.io.safetensors';
m = cebra.Model('offset10-model', 7, 12, 3);
load(m, '$fixtures/models/offset10-model.safetensors');
Y = forward(m, fixture_mex('tensor', io, 'input'));
want = fixture_mex('tensor', io, 'output');
diff = max(abs(double(Y(:)) - double(want(:))));
if numel(Y) ~= numel(want) || diff > 1e-5
  error('test:install', 'forward differs from the reference by %g', diff);
end
printf('matlab install-test: ok (cebra %s from %s, forward max abs diff %g)\n', cebra.version(), mex_file, diff);
"
cd "$work"  # not the source folder, whose cebra_mex Octave would find first
env -i PATH=/usr/bin:/bin HOME="$work" "$octave" --norc --no-history --quiet --eval "$script"
