#!/usr/bin/env bash
# Type-check (and lint) the interposition shim and the `vrift` binary (vrift-supervisor) for
# both Apple targets. There is no Mac here: this proves the Darwin layer of the shim
# (interpose tuples, $INODE64 and $NOCANCEL names, the arm64 variadic convention) and the
# macOS build of vrift (the Linux-only projections, trace and sys modules gated out, the
# shim launcher's DYLD_INSERT_LIBRARIES, the remote store over the system's TLS) compile
# against the targets' libc bindings. BLAKE3's C parts cannot be built without Apple's
# toolchain, so the check uses its pure-Rust form (the pure-blake3 features); nothing else
# in either build compiles C for the target.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in x86_64-apple-darwin aarch64-apple-darwin; do
  if ! rustup target list --installed | grep -qx "$t"; then
    echo "check-darwin: the $t target is not installed (scripts/setup.sh adds it)" >&2
    exit 1
  fi
  cargo clippy --target "$t" -p vrift-shim --features pure-blake3 -- -D warnings
  cargo clippy --target "$t" -p vrift-supervisor --features pure-blake3 -- -D warnings
done
echo "check-darwin: vrift-shim and vrift type-check for x86_64-apple-darwin and aarch64-apple-darwin"
