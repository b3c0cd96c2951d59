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
# static toolchain, make), peers for benchmarks (proot, bubblewrap, hyperfine).
APT_PACKAGES=(libseccomp-dev pkg-config busybox-static musl-tools golang-go make gcc proot bubblewrap hyperfine python3 git)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { log "cargo not found: install Rust with rustup first"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
log "ready"
