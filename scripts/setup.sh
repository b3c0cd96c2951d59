#!/usr/bin/env bash
# Idempotent set-up of everything vrift's build, tests and benchmarks need on Debian 12.
# Fast when already done: every step checks before it installs.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; exit 1
  fi
}

# Debian packages: libseccomp for the filter, test programs (busybox-static, musl-gcc, Go's
# static toolchain, make), peers for benchmarks (proot, bubblewrap, hyperfine), and the tools
# the metadata tests run through a view (rsync; attr and acl for setfattr, getfattr, setfacl).
APT_PACKAGES=(libseccomp-dev pkg-config busybox-static musl-tools golang-go make gcc proot bubblewrap hyperfine python3 git rsync attr acl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A dynamically linked busybox of the same version, for the end-to-end suites under the shim
# projection (which serves dynamic programs only). Debian's dynamic `busybox` package
# conflicts with busybox-static, so its binary is unpacked beside, not installed.
DYNAMIC_BUSYBOX=/usr/local/libexec/vrift-tests/busybox
if [ ! -x "$DYNAMIC_BUSYBOX" ]; then
  log "unpacking a dynamically linked busybox into $DYNAMIC_BUSYBOX"
  work=$(mktemp -d)
  (cd "$work" && apt-get download -q busybox >/dev/null 2>&1 || { as_root apt-get update -qq && apt-get download -q busybox; })
  dpkg-deb -x "$work"/busybox_*.deb "$work/x"
  as_root install -D -m 0755 "$work/x/bin/busybox" "$DYNAMIC_BUSYBOX"
  rm -rf "$work"
fi

command -v cargo >/dev/null || { log "cargo not found: install Rust with rustup first"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
log "ready"

# ---------------------------------------------------------------------------------------------
# eBPF build prerequisites (for `vrift trace`): a nightly toolchain with rust-src (the eBPF
# crate is built with -Z build-std=core for bpfel-unknown-none) and bpf-linker linked against
# that nightly's own LLVM (a plain `cargo install bpf-linker` wants a system LLVM 21+, which
# Debian 12 lacks). Each step is skipped when already done.
# ---------------------------------------------------------------------------------------------
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly-'; then
  log "installing the nightly toolchain (eBPF build)"
  rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --installed --toolchain nightly 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to nightly (eBPF build)"
  rustup component add rust-src --toolchain nightly
fi

# bpf-linker works when it runs and can load the nightly's LLVM (it is linked against it).
bpf_linker_ok() { command -v bpf-linker >/dev/null && bpf-linker --version >/dev/null 2>&1; }
if ! bpf_linker_ok; then
  NIGHTLY_LIB="$(rustc +nightly --print sysroot)/lib"
  llvm_so="$(ls "$NIGHTLY_LIB"/libLLVM-*-rust-*.so 2>/dev/null | head -n1 || true)"
  [ -n "$llvm_so" ] || { log "no libLLVM-*.so in $NIGHTLY_LIB: cannot build bpf-linker"; exit 1; }
  LLVM_LIB="$(basename "$llvm_so" .so)"; LLVM_LIB="${LLVM_LIB#lib}" # e.g. LLVM-22-rust-1.97.0-nightly
  LLVM_MAJOR="${LLVM_LIB#LLVM-}"; LLVM_MAJOR="${LLVM_MAJOR%%[.-]*}"  # e.g. 22
  log "building bpf-linker against the nightly's LLVM $LLVM_MAJOR (about a minute)"
  # --target keeps RUSTFLAGS away from build scripts (they must not link libLLVM).
  RUSTFLAGS="-L $NIGHTLY_LIB -C link-arg=-Wl,-rpath,$NIGHTLY_LIB -l dylib=$LLVM_LIB" \
    cargo +nightly install --locked bpf-linker --force --target "$(rustc +nightly -vV | sed -n 's/^host: //p')" \
      --no-default-features --features "llvm-$LLVM_MAJOR,no-llvm-linking"
  bpf_linker_ok || { log "bpf-linker was built but does not run"; exit 1; }
fi

# tracefs: the eBPF tracepoints need it. `vrift trace` also mounts it at run time when missing.
if [ "$(id -u)" -eq 0 ] && [ -d /sys/kernel/tracing ] && ! [ -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || log "could not mount tracefs (vrift trace will say why)"
fi
log "eBPF prerequisites ready"

# ---- cargo-fuzz, for the fuzz targets in fuzz/ (scripts/fuzz.sh, run by scripts/test.sh) ----
# It builds the targets with the nightly toolchain installed above. Idempotent: skipped while
# cargo-fuzz is installed.
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (fuzz targets)"
  cargo install --locked cargo-fuzz
fi

# ---- Apple targets for type-checking the shim and vrift (scripts/check-darwin.sh) ----
# Only the standard library of each target is needed: the check builds no C code and links
# nothing. Idempotent: rustup does nothing for a target already installed.
if command -v rustup >/dev/null; then
  for t in x86_64-apple-darwin aarch64-apple-darwin; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t" \
      || log "could not add the $t target: scripts/check-darwin.sh will say so"
  done
fi

# ---------------------------------------------------------------------------------------------
# pjdfstest 0.2.2, the POSIX file-system conformance suite the conformance test
# (tests/tests/conformance.rs) runs natively and in views. Installed only when the one on PATH
# (or in ~/.cargo/bin) is not that version.
# ---------------------------------------------------------------------------------------------
pjdfstest_version() { { command -v pjdfstest >/dev/null && pjdfstest --version; } || "$HOME/.cargo/bin/pjdfstest" --version; } 2>/dev/null
if ! pjdfstest_version | grep -q ' 0\.2\.2$'; then
  log "installing pjdfstest 0.2.2 (the conformance test's suite)"
  cargo install --locked pjdfstest@0.2.2
fi
log "pjdfstest ready"

# ---------------------------------------------------------------------------------------------
# Garage, the S3-compatible server the remote-store tests (tests/tests/remote.rs) and
# `cargo xtask bench remote` run on 127.0.0.1. It compiles for about 15 minutes, once: the
# step is skipped while a garage binary is on PATH or in ~/.cargo/bin.
# ---------------------------------------------------------------------------------------------
if ! command -v garage >/dev/null && ! [ -x "$HOME/.cargo/bin/garage" ]; then
  log "installing Garage 2.5.0 for the remote-store tests (compiles for about 15 minutes)"
  cargo install --locked garage@2.5.0
fi
log "Garage ready"
