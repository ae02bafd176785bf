#!/usr/bin/env bash
# Fails when a function that include/cebra.h declares is reachable from neither the MATLAB gateway
# nor its commented exclusion list, so the MATLAB binding cannot fall behind the C ABI.
#
#   tools/matlab-abi-check.sh MEXFILE [HEADER] [EXCLUSIONS]
#
# "Reachable from the gateway" means the built mex file references the symbol (nm: an undefined
# dynamic symbol it imports from libcebra), so a name in a comment or in dead code does not count.
# Exclusions (bindings/matlab/abi-exclusions.txt): one function per line, each with a reason after
# '#'. An excluded function that the gateway does reference, or that the header no longer declares,
# is reported too, so the list stays honest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mexfile="${1:?usage: $0 MEXFILE [HEADER] [EXCLUSIONS]}"
header="${2:-$root/include/cebra.h}"
exclusions="${3:-$root/bindings/matlab/abi-exclusions.txt}"
[ -f "$mexfile" ] || { echo "matlab-abi-check: no mex file $mexfile (run make matlab)" >&2; exit 1; }

declared=$(grep -o '\bcebra_[a-z0-9_]*(' "$header" | tr -d '(' | sort -u)
referenced=$(nm -D --undefined-only "$mexfile" | awk '{print $NF}' | sed 's/@.*//' | grep '^cebra_' | sort -u || true)
excluded=$(sed 's/#.*//' "$exclusions" | awk 'NF {print $1}' | sort -u)

# Every exclusion needs its reason on the same line.
bad_lines=$(grep -v '^[[:space:]]*#' "$exclusions" | grep -v '^[[:space:]]*$' | grep -v '#[[:space:]]*[^[:space:]]' || true)

missing=$(comm -23 <(echo "$declared") <(sort -u <(echo "$referenced"; echo "$excluded")) | sed '/^$/d')
stale=$(comm -23 <(echo "$excluded") <(echo "$declared") | sed '/^$/d')
both=$(comm -12 <(echo "$excluded") <(echo "$referenced") | sed '/^$/d')

status=0
if [ -n "$missing" ]; then
    echo "matlab-abi-check: functions of $(basename "$header") that the MATLAB gateway does not wrap:" >&2
    echo "$missing" | sed 's/^/  /' >&2
    echo "  wrap each in bindings/matlab/cebra_mex.c (+ the +cebra package), or list it with a reason in $(basename "$exclusions")" >&2
    status=1
fi
if [ -n "$stale" ]; then
    echo "matlab-abi-check: excluded functions the header does not declare (remove them):" >&2
    echo "$stale" | sed 's/^/  /' >&2
    status=1
fi
if [ -n "$both" ]; then
    echo "matlab-abi-check: excluded functions the gateway does wrap (remove the exclusion):" >&2
    echo "$both" | sed 's/^/  /' >&2
    status=1
fi
if [ -n "$bad_lines" ]; then
    echo "matlab-abi-check: exclusions without a reason ('name  # why'):" >&2
    echo "$bad_lines" | sed 's/^/  /' >&2
    status=1
fi
if [ "$status" -eq 0 ]; then
    echo "matlab-abi-check: all $(echo "$declared" | wc -l) functions of $(basename "$header") are wrapped by the gateway ($(echo "$referenced" | sed '/^$/d' | wc -l)) or excluded ($(echo "$excluded" | sed '/^$/d' | wc -l))"
fi
exit "$status"
