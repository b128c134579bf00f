#!/usr/bin/env bash
# Fuzzes the parsers between a hostile client and the app (raw-head framing, request
# targets, cookie lookup, session tokens) for a bounded time each, starting from the seed
# corpus in fuzz/corpus/. Needs a nightly toolchain (cargo-fuzz uses libFuzzer and
# sanitizers); installs cargo-fuzz when missing. Not part of ./scripts/test.sh.
#   ./scripts/fuzz.sh [seconds-per-target] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(framing target cookie token)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain (rustup toolchain install nightly); cargo-fuzz needs one" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz

mkdir -p target/fuzz-corpus target/fuzz-logs
status=0
for t in "${targets[@]}"; do
  work="target/fuzz-corpus/$t"
  mkdir -p "$work"
  log="target/fuzz-logs/$t.log"
  echo "fuzz: $t for ${secs}s"
  # New inputs go to the work corpus; the seeds in fuzz/corpus stay as committed.
  if (cd fuzz && cargo +nightly fuzz run "$t" "../$work" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096) > "$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    echo "fuzz: $t: ${runs:-?} executions, no finding ($(ls "$work" | wc -l) inputs in the work corpus)"
  else
    status=1
    echo "fuzz: $t: FINDING (see $log; the input is in fuzz/artifacts/$t/)"
    grep -m 5 -E 'panicked|ERROR|SUMMARY' "$log" || true
  fi
done
exit $status
