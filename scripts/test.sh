#!/usr/bin/env bash
# Runs every test of nodeguard on a fresh Debian 12 machine, as root:
#   1. installs what the tests need (scripts/testbed/setup.sh: runc, busybox, protoc, CNI
#      plugins, kustomize, containerd 1.7 and 2.1, local OCI images);
#   2. checks formatting, lints and the API docs' links (rustfmt, clippy and rustdoc with
#      -D warnings);
#   3. builds everything once, checks the install manifests and policies with that build,
#      builds the container image with scripts/build-image.sh (a static nodeguard),
#   4. runs the unit, property and in-memory daemon tests (and the fuzz corpora),
#   5. then the end-to-end tests against real containerd 1.7 and 2.1.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (the end-to-end tests start containerd and runc)" >&2
  exit 2
fi

step "Installing the test environment (scripts/testbed/setup.sh)"
scripts/testbed/setup.sh

step "Formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "Lints (cargo clippy --all-targets -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "API docs (cargo doc --no-deps, -D warnings: no broken or private links)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "Building everything once"
cargo build --workspace --all-targets --locked

step "Install manifests, policies and scripts (scripts/install-checks.sh)"
NODEGUARD_BIN="$repo/target/debug/nodeguard" scripts/install-checks.sh

step "The container image, without Docker (scripts/build-image.sh)"
# A static release build, once; the end-to-end suite runs this archive as the DaemonSet's pod.
scripts/build-image.sh --out "$repo/target/image/nodeguard.tar"

step "Unit, property and in-memory daemon tests"
cargo test --workspace --exclude nodeguard-integration --locked

step "End-to-end tests against real containerd 1.7 and 2.1"
cargo test -p nodeguard-integration --locked
