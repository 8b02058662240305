#!/usr/bin/env bash
# Judges the gatekeeper-library's own samples with nodeguard: for every test case of the
# library's gator suites (library/general/*/suite.yaml, library/pod-security-policy/*/suite.yaml)
# whose subject a node can see, `nodeguard check --policy <constraint> <object>` must reach
# Gatekeeper's verdict (violations expected <-> the constraint reported violated).
#
# The library is NOT part of this repository and is never committed to it: bring a checkout
# of the open-policy-agent/gatekeeper-library GitHub repository yourself, e.g.
#   git clone https://github.com/open-policy-agent/gatekeeper-library /tmp/gatekeeper-library
# and pass its root (or its library/ folder). This script is run by hand, never by CI
# (it refuses to run when CI is set): its result depends on the checkout you give it.
#
# Usage: scripts/gatekeeper-samples.sh LIBRARY_DIR [NODEGUARD_BIN]
#   LIBRARY_DIR    the gatekeeper-library checkout, or its library/ folder
#   NODEGUARD_BIN  the nodeguard binary (default: target/debug/nodeguard of this repo, built
#                  with `cargo build -p nodeguard --locked`; else nodeguard on PATH)
#
# Prints one line per case:
#   CLASS  SUITE  TEST  CASE  expected=<assertions>  got=<nodeguard>  [detail]
# with CLASS one of
#   agree       same verdict as Gatekeeper (a detail notes messages that differ from the
#               assertions' regexes: informative only);
#   DISAGREE    another verdict (nodeguard's messages follow);
#   not-judged  needs what a manifest check cannot see: an UPDATE, inventory, an object
#               without a pod, a workload gator reviews as itself, or a constraint nodeguard
#               notes as not judged on the node (kind not implemented or not node-visible,
#               namespaceSelector, matches no Pod);
#   skipped     `skip: true` in the suite;
#   ERROR       unreadable case, or nodeguard exited 2;
# then a summary with the counts per class.
# Needs bash, python3 and PyYAML (Debian: python3-yaml, which scripts/install-checks.sh
# installs). Exit status: 0 every judged case agrees, 1 a disagreement or an error, 2 bad
# usage or missing tools.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
HELPER=$REPO/scripts/lib/gatekeeper-samples.py

die() {
    printf 'gatekeeper-samples: error: %s\n' "$*" >&2
    exit 2
}

usage() {
    sed -n '13,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ -z ${CI:-} ]] || die "not a CI script: it judges a gatekeeper-library checkout given by hand (CI=$CI)"
[[ $# -ge 1 && $# -le 2 ]] || usage
[[ $1 != -h && $1 != --help ]] || usage

library=$1
[[ -d $library ]] || die "$library is not a directory (a checkout of open-policy-agent/gatekeeper-library)"
library=$(cd -- "$library" && pwd)
compgen -G "$library/general/*/suite.yaml" >/dev/null ||
    compgen -G "$library/library/general/*/suite.yaml" >/dev/null ||
    die "$library has no general/*/suite.yaml nor library/general/*/suite.yaml: not a gatekeeper-library checkout"

if [[ $# -eq 2 ]]; then
    nodeguard=$2
elif [[ -x ${CARGO_TARGET_DIR:-$REPO/target}/debug/nodeguard ]]; then
    nodeguard=${CARGO_TARGET_DIR:-$REPO/target}/debug/nodeguard
elif command -v nodeguard >/dev/null; then
    nodeguard=$(command -v nodeguard)
else
    die "no nodeguard binary: run 'cargo build -p nodeguard --locked' or pass NODEGUARD_BIN"
fi
[[ $nodeguard == */* ]] || nodeguard=$(command -v -- "$nodeguard") || die "no binary $2"
[[ -x $nodeguard ]] || die "$nodeguard is not an executable"
nodeguard=$(cd -- "$(dirname -- "$nodeguard")" && pwd)/$(basename -- "$nodeguard")

# A python3 with PyYAML: the one on PATH, else the system's.
python=
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
        python=$candidate
        break
    fi
done
[[ -n $python ]] || die "python3 with PyYAML is needed (Debian: apt-get install python3-yaml)"

# The checkout's commit, when LIBRARY_DIR (or its parent, for library/) is a git work tree.
revision=
top=$(git -C "$library" rev-parse --show-toplevel 2>/dev/null || true)
if [[ -n $top && ($top == "$library" || $top == "$(dirname -- "$library")") ]]; then
    revision=$(git -C "$library" log -1 --format='%H (%cs)' 2>/dev/null || true)
fi
printf 'gatekeeper-library: %s%s\n' "$library" "${revision:+ at $revision}"
printf 'nodeguard:          %s (%s)\n\n' "$nodeguard" "$("$nodeguard" --version 2>/dev/null || echo 'version unknown')"

exec "$python" "$HELPER" "$library" "$nodeguard"
