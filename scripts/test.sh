#!/usr/bin/env bash
# Set up (idempotently) and run vrift's whole test suite: formatting, lints, unit and
# end-to-end tests. End-to-end tests that need root or kernel features run for real here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# The interposition shim and vrift type-check for macOS (there is no Mac here).
bash scripts/check-darwin.sh
cargo build --workspace --release
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --release --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "vrift: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
# Every fuzz target for a bounded time (a panic found fails the suite); FUZZ_SECONDS=0 skips.
if [ "${FUZZ_SECONDS:-45}" != 0 ]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-45}" || status=1
fi
exit "$status"
