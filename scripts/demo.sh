#!/usr/bin/env bash
# Shows nodeguard's main job on this machine (Debian 12, as root): prepares a private
# containerd with NRI (scripts/testbed/setup.sh), builds nodeguard, and runs the demo, which
# creates a compliant and several noncompliant containers and shows what nodeguard refused.
# Usage: scripts/demo.sh [1.7|2.1]   (containerd version, default 2.1)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh: run as root (the demo starts containerd and runc)" >&2
  exit 2
fi
scripts/testbed/setup.sh >/dev/null
cargo build --quiet --locked -p nodeguard -p nodeguard-integration --bins
exec target/debug/nodeguard-demo "${1:-2.1}"
