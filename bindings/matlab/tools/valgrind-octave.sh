#!/usr/bin/env bash
# Runs the Octave suite (quick mode) under Valgrind memcheck and fails on any error or leak record
# whose stack passes through the gateway (cebra_mex) or libcebra. Records entirely inside Octave or
# the dynamic loader (e.g. glibc's SSE strncmp on run paths at dlopen) are counted, not failed on:
# they are not this binding's to fix.
#
#   tools/valgrind-octave.sh OCTAVE TESTDIR LOG
set -euo pipefail
octave="${1:?usage: $0 OCTAVE TESTDIR LOG}"
testdir="${2:?}"
log="${3:?}"
status=0
CEBRA_TEST_QUICK=1 valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --num-callers=40 --error-limit=no \
    "$octave" --norc --no-history --quiet --eval "addpath('$testdir'); exit(run_tests());" > "$log" 2>&1 || status=$?
grep '^RESULT ' "$log" || { echo "valgrind-octave: the suite printed no RESULT line (see $log)" >&2; exit 1; }
[ "$status" -eq 0 ] || { echo "valgrind-octave: the suite failed under Valgrind (exit $status, see $log)" >&2; exit 1; }
# Valgrind records are blocks of "==PID== " lines separated by an empty "==PID== " line.
read -r ours others < <(awk '
    /^==[0-9]+== $/ { if (rec != "") { if (rec ~ /(cebra_mex|libcebra)/ && rec ~ /(Invalid|uninitialised|Conditional|Mismatched|definitely lost|indirectly lost|overlap|free\(\))/) ours++; else if (rec ~ /(Invalid|uninitialised|Conditional|Mismatched|definitely lost|indirectly lost)/) others++ } rec = ""; next }
    /^==[0-9]+== / { rec = rec "\n" $0 }
    END { print ours + 0, others + 0 }' "$log")
echo "valgrind-octave: $ours error/leak record(s) through cebra_mex or libcebra, $others elsewhere (Octave, loader); log in $log"
if [ "$ours" -ne 0 ]; then
    awk '/^==[0-9]+== $/ { if (rec ~ /(cebra_mex|libcebra)/ && rec ~ /(Invalid|uninitialised|Conditional|Mismatched|definitely lost|indirectly lost|overlap|free\(\))/) print rec; rec = ""; next } /^==[0-9]+== / { rec = rec "\n" $0 }' "$log" | head -n 200 >&2
    exit 1
fi
