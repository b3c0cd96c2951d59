#!/usr/bin/env bash
# Set up (idempotently) and run vrift's whole test suite: formatting, lints, unit and
# end-to-end tests. End-to-end tests that need root or kernel features run for real here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo build --workspace --release
cargo test --workspace --release
