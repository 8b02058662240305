#!/usr/bin/env bash
# Checks the install/ tree on Debian 12 bookworm, as root (scripts/test.sh runs it):
#   1. installs what it needs, once (later runs reuse it):
#      - shellcheck, python3-yaml, python3-venv with the system's apt;
#      - kustomize from Debian trixie (bookworm has none): `apt-get download` through a
#        private apt state, unpacked with dpkg-deb, as scripts/testbed/setup.sh does for
#        containerd; the system's apt sources and package state are untouched;
#      - kubernetes-validate from PyPI in a venv (it ships the Kubernetes JSON schemas);
#   2. renders every kustomization under install/ (kustomize build);
#   3. validates every rendered object against the Kubernetes 1.29 and 1.37 schemas, strictly
#      (unknown fields are errors);
#   4. install/tests/check_manifests.py: the DaemonSet's security context, host paths,
#      mounts, arguments, probes, resources and scheduling, and the policy ConfigMaps; the
#      sample policies allow the cluster's own workloads, refuse the others, refuse nothing
#      in audit, and allow nodeguard itself (with `nodeguard check`);
#   5. `nodeguard policy validate` on install/policies, its audit variants and
#      docs/examples; the audit variants must be the originals with `spec.effect: audit`;
#   6. what install/kind/e2e.sh applies: the overlay with its image override (schemas), and
#      its workloads (schemas, and `nodeguard check` judges each as the scenario expects);
#   7. shellcheck on every shell script under scripts/ and install/.
# Not checked: the Dockerfile (hadolint is not packaged for Debian 12; the image cannot be
# built here either: no Docker engine), and install/kind/e2e.sh itself beyond shellcheck
# (kind needs Docker).
#
# Usage: scripts/install-checks.sh                        check
#        scripts/install-checks.sh --update-audit-policies  rewrite install/policies/audit
# Environment: NODEGUARD_BIN (the nodeguard binary; default: built with cargo),
#   NODEGUARD_TESTBED (tools go to $NODEGUARD_TESTBED/install-tools; default <repo>/.testbed),
#   NODEGUARD_DEBIAN_MIRROR (Debian mirror URL; default: the system's bookworm source).
set -euo pipefail

# Pins. Debian keeps only a suite's current version: when the pin is gone, the current
# one is taken with a WARNING.
readonly KUSTOMIZE_SUITE=trixie
readonly KUSTOMIZE_VERSION='5.6.0+ds-1+b2'
readonly KUBERNETES_VALIDATE_VERSION=1.37.0
# Kubernetes versions whose schemas every rendered object must satisfy: the oldest
# release still supported upstream when this was written, and the newest schema shipped.
readonly SCHEMA_VERSIONS=(1.29.0 1.37.0)

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/debian-apt.sh
source "$REPO/scripts/lib/debian-apt.sh"
TOOLS=${NODEGUARD_TESTBED:-$REPO/.testbed}/install-tools
export DEBIAN_FRONTEND=noninteractive

log() { printf 'install-checks: %s\n' "$*" >&2; }
warn() { printf 'install-checks: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'install-checks: error: %s\n' "$*" >&2
    exit 1
}

# The audit variant of a policy file: a header, then the file with spec.effect: audit.
audit_variant() {
    local name=$1
    printf '%s\n' \
        "# GENERATED from install/policies/$name by \`scripts/install-checks.sh --update-audit-policies\`:" \
        "# the same policy with spec.effect set to audit, so it refuses nothing and records every" \
        "# violation in the audit log. Edit the original and re-run; CI fails when they differ."
    sed 's/^  effect: enforce$/  effect: audit/' "$REPO/install/policies/$name"
}

policy_files() {
    find "$REPO/install/policies" -maxdepth 1 -name '*.yaml' -printf '%f\n' | sort
}

update_audit_policies() {
    local name
    rm -f "$REPO"/install/policies/audit/*.yaml
    while read -r name; do
        audit_variant "$name" >"$REPO/install/policies/audit/$name"
        log "wrote install/policies/audit/$name"
    done < <(policy_files)
    log "check that install/policies/audit/Kustomization lists every file"
}

# --- tools --------------------------------------------------------------------

install_system_packages() {
    local pkg missing=()
    for pkg in shellcheck python3-yaml python3-venv; do
        dpkg-query -W -f '${db:Status-Status}\n' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
    done
    if ((${#missing[@]} > 0)); then
        log "installing ${missing[*]} with apt"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}



install_kustomize() {
    [[ -r $DEBIAN_KEYRING ]] || die "$DEBIAN_KEYRING is missing (package debian-archive-keyring)"
    DEBIAN_APT_STATE=$TOOLS/apt
    DEBIAN_APT_MIRROR=$(debian_mirror)
    fetch_deb "$KUSTOMIZE_SUITE" kustomize "$KUSTOMIZE_VERSION" "$TOOLS/kustomize" kustomize
}

install_kubernetes_validate() {
    local venv=$TOOLS/venv
    if [[ -x $venv/bin/kubernetes-validate ]] &&
        [[ $("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null) == "$KUBERNETES_VALIDATE_VERSION" ]]; then
        return
    fi
    log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        -r "$REPO/install/tests/requirements.txt"
}

nodeguard_binary() {
    if [[ -n ${NODEGUARD_BIN:-} ]]; then
        printf '%s\n' "$NODEGUARD_BIN"
        return
    fi
    (cd "$REPO" && cargo build --quiet --locked -p nodeguard) >&2
    printf '%s\n' "${CARGO_TARGET_DIR:-$REPO/target}/debug/nodeguard"
}

# --- checks -----------------------------------------------------------------

main() {
    if [[ ${1:-} == --update-audit-policies ]]; then
        update_audit_policies
        return
    fi
    [[ $# -eq 0 ]] || die "usage: scripts/install-checks.sh [--update-audit-policies]"
    [[ $(id -u) -eq 0 ]] || die "run as root (it installs packages with apt-get)"
    mkdir -p "$TOOLS"
    exec 9>"$TOOLS/.lock"
    flock 9

    install_system_packages
    install_kustomize
    install_kubernetes_validate
    local kustomize=$TOOLS/kustomize/usr/bin/kustomize nodeguard
    nodeguard=$(nodeguard_binary)
    [[ -x $nodeguard ]] || die "no nodeguard binary at $nodeguard"

    local out
    out=$(mktemp -d)
    # shellcheck disable=SC2064 # expand $out now
    trap "rm -rf '$out'" EXIT

    log "rendering every kustomization under install/"
    local dir name rendered=()
    while read -r dir; do
        name=${dir#"$REPO/install/"}
        name=${name//\//-}
        "$kustomize" build "$dir" >"$out/$name.yaml" || die "kustomize build ${dir#"$REPO/"} failed"
        rendered+=("$out/$name.yaml")
    done < <(find "$REPO/install" \( -name kustomization.yaml -o -name kustomization.yml -o -name Kustomization \) \
        -printf '%h\n' | sort)
    ((${#rendered[@]} >= 4)) || die "found only ${#rendered[@]} kustomizations under install/"

    log "what install/kind/e2e.sh applies: the overlay with its image, and its workloads"
    KUSTOMIZE=$kustomize "$REPO/install/kind/e2e.sh" --print-manifests >"$out/kind-e2e.yaml"
    grep -q 'image: nodeguard:e2e$' "$out/kind-e2e.yaml" ||
        die "install/kind/e2e.sh does not override the DaemonSet's image with nodeguard:e2e"
    "$REPO/install/kind/e2e.sh" --print-workloads >"$out/kind-e2e-workloads.yaml"
    rendered+=("$out/kind-e2e.yaml" "$out/kind-e2e-workloads.yaml")

    local version
    for version in "${SCHEMA_VERSIONS[@]}"; do
        log "validating ${#rendered[@]} renderings against the Kubernetes $version schemas (strict)"
        "$TOOLS/venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${rendered[@]}" ||
            die "rendered manifests do not validate against Kubernetes $version"
    done

    log "policies: nodeguard policy validate"
    "$nodeguard" policy validate "$REPO/install/policies" "$REPO/install/policies/audit" "$REPO/docs/examples" \
        "$REPO"/install/policies/*.yaml
    local policy
    while read -r policy; do
        audit_variant "$policy" | cmp -s - "$REPO/install/policies/audit/$policy" ||
            die "install/policies/audit/$policy is not install/policies/$policy with spec.effect: audit; run: scripts/install-checks.sh --update-audit-policies"
    done < <(policy_files)
    [[ $(find "$REPO/install/policies/audit" -maxdepth 1 -name '*.yaml' | wc -l) -eq $(policy_files | wc -l) ]] ||
        die "install/policies/audit holds a file that install/policies does not"

    log "the DaemonSet, its ConfigMaps and the sample policies (install/tests/check_manifests.py)"
    /usr/bin/python3 "$REPO/install/tests/check_manifests.py" --repo "$REPO" --nodeguard "$nodeguard" \
        --kind-workloads "$out/kind-e2e-workloads.yaml" \
        "audit=$out/kubernetes-overlays-audit.yaml" "enforce=$out/kubernetes-overlays-enforce.yaml" \
        "cluster=$out/kubernetes-overlays-cluster.yaml"

    log "shellcheck"
    local scripts=()
    while IFS= read -r -d '' script; do
        scripts+=("$script")
    done < <(find "$REPO/scripts" "$REPO/install" -type f \( -name '*.sh' -o -exec sh -c \
        'head -n1 "$1" | grep -Eq "^#!.*/(env )?(ba)?sh"' _ {} \; \) -print0 | sort -z)
    shellcheck -x "${scripts[@]}"
    log "shellcheck: ${#scripts[@]} scripts clean"

    log "all install checks passed"
}

main "$@"
