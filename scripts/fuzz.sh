#!/usr/bin/env bash
# Run every fuzz target (fuzz/fuzz_targets) for a bounded time: `scripts/fuzz.sh [SECONDS]
# [TARGET...]` (default 30 s each, every target). The repository's corpus (fuzz/corpus/T)
# seeds each run; what a run finds goes to a scratch directory, so the repository stays as
# it was. A crash (a panic in the code under test) stops with the failing input saved in
# fuzz/artifacts/T/ and a non-zero exit: reproduce it with
# `cargo +nightly fuzz run T fuzz/artifacts/T/crash-...`, add a unit test, fix it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/corpus/$t"
  echo "fuzz: $t for ${seconds}s"
  # -O -a: optimized, with debug assertions (overflow checks) on, so an arithmetic overflow is a
  # crash too. The first directory receives new inputs, the repository's only seeds.
  status=0
  (cd fuzz && cargo +nightly fuzz run -O -a "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1) >"$scratch/$t.log" 2>&1 \
    || status=$?
  grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$scratch/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch/$t.log" >&2
    echo "fuzz: $t crashed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
