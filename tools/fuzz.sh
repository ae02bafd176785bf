#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a bounded time (see fuzz/README.md).
#
#   tools/fuzz.sh [SECONDS] [TARGET...]    # default: 60 s each, targets `options` and `weights`
#
# Environment:
#   LIBTORCH                 libtorch to link (default ~/.cache/cebra/libtorch-2.13.0-cpu)
#   CARGO_TARGET_DIR         build directory (default fuzz/target)
#   FUZZ_KEEP_GOING=1        fork mode: record crashes, OOMs and timeouts in fuzz/artifacts/ and go on
#                            until the time is up, instead of stopping at the first one
#   FUZZ_RSS_LIMIT_MB        memory limit of one run, also the largest single allocation (default 2048)
#   FUZZ_TIMEOUT             seconds one input may take (default 10)
#   FUZZ_SANITIZER           address (default) or none
#   FUZZ_ARGS                more libFuzzer flags, e.g. "-jobs=2 -workers=2"
#
# Exit status: 0 when every target ran its time without a finding, 1 when one found something
# (artifacts are listed), 2 on a build or usage error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(options weights)
case $seconds in ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

export LIBTORCH=${LIBTORCH:-$HOME/.cache/cebra/libtorch-2.13.0-cpu}
if [ ! -d "$LIBTORCH/lib" ]; then
    echo "fuzz.sh: no libtorch at $LIBTORCH (run tools/fetch-libtorch.sh or set LIBTORCH)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
# cargo-fuzz passes -Z flags (sanitizer, coverage); a stable rustc accepts them with RUSTC_BOOTSTRAP.
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

# -O: optimised; -a: debug assertions, so integer overflow panics as it does in debug builds.
build_flags=(-O -a --sanitizer "${FUZZ_SANITIZER:-address}")
cd "$root"
echo "== building ${targets[*]} (first build compiles libtch: ~15 min on 2 cores)"
# cargo fuzz build takes one target or none (= all).
one=()
[ ${#targets[@]} -eq 1 ] && one=("${targets[0]}")
if ! cargo fuzz build "${build_flags[@]}" "${one[@]}" >fuzz/build.log 2>&1; then
    tail -40 fuzz/build.log >&2
    exit 2
fi

mkdir -p fuzz/logs
found=0
summary=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    flags=(
        -max_total_time="$seconds"
        -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
        -timeout="${FUZZ_TIMEOUT:-10}"
        -print_final_stats=1
    )
    [ -f "fuzz/dict/$target.dict" ] && flags+=(-dict="fuzz/dict/$target.dict")
    if [ "${FUZZ_KEEP_GOING:-0}" != 0 ]; then
        flags+=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
    fi
    # shellcheck disable=SC2206
    flags+=(${FUZZ_ARGS:-})
    log="fuzz/logs/$target.log"
    echo "== $target: ${seconds}s, log in $log"
    start=$(date +%s)
    status=0
    cargo fuzz run "${build_flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/corpus-seed/$target" -- "${flags[@]}" \
        >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$( (grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true) | awk '{s+=$2} END {print s+0}')
    if [ "$execs" = 0 ]; then  # fork mode reports "#<execs>: cov: …" lines instead
        execs=$( (grep -o '^#[0-9]*' "$log" || true) | tail -1 | tr -d '#')
    fi
    new=$(( $(find "fuzz/artifacts/$target" -type f | wc -l) - before ))
    summary+=("$target: ${elapsed}s, ${execs:-?} executions, exit $status, $new new artifact(s)")
    if [ "$status" != 0 ] || [ "$new" != 0 ]; then
        found=1
        (grep -E 'ERROR: libFuzzer|ERROR: AddressSanitizer|panicked at|^SUMMARY' "$log" || true) | sed 's/==[0-9]*==//' | sort | uniq -c | head -20
        ls -t "fuzz/artifacts/$target" | head -"$(( new > 0 ? new : 1 ))" | sed "s|^|  fuzz/artifacts/$target/|"
    fi
done

echo "== summary"
printf '  %s\n' "${summary[@]}"
if [ "$found" != 0 ]; then
    echo "Replay one input with: CEBRA_FUZZ_VERBOSE=1 cargo fuzz run ${build_flags[*]} TARGET fuzz/artifacts/TARGET/FILE"
fi
exit "$found"
