#!/usr/bin/env bash
# Prepare the end-to-end testbed: a containerd 1.7 and a containerd 2.1 with NRI,
# runc, and local OCI image archives, so `cargo test -p nodeguard-integration`
# can run pods through CRI without a registry or a cluster.
#
# Usage (as root, on Debian 12 bookworm):  scripts/testbed/setup.sh
#
# Installs with the system's apt: runc, busybox-static, protobuf-compiler (the CRI client
# crate's build script runs protoc) and containernetworking-plugins (a bridge network for
# pods that do not use the host's). Everything else goes into
# $NODEGUARD_TESTBED (default: <repo>/.testbed):
#   apt/<suite>/           a private apt state (sources, lists, cache) per suite;
#                          the system's sources and package state are untouched
#   containerd-1.7/        containerd from Debian trixie, unpacked with dpkg -x
#   containerd-2.1/        containerd from Debian unstable, unpacked with dpkg -x
#   kustomize/             kustomize from Debian trixie, unpacked with dpkg -x (renders
#                          install/kubernetes for the DaemonSet's end-to-end test)
#   images/*.tar           OCI image archives built from busybox-static
#   SETUP_OK               what was installed; the test harness checks it
#
# The mirror is the one the system's apt already uses for bookworm (override with
# NODEGUARD_DEBIAN_MIRROR). Debian keeps only each suite's current version: when a
# pinned containerd version is gone, the suite's current one is taken and a
# WARNING line says so; the test harness then checks the major.minor it expects.
# NODEGUARD_CONTAINERD_1_7_VERSION / NODEGUARD_CONTAINERD_2_1_VERSION override the pins.
# Re-running is cheap: finished steps are skipped.
set -euo pipefail

# Bump when the layout of $TESTBED changes, so the harness asks for a re-run.
readonly TESTBED_FORMAT=1

# The pins (Debian package versions); the environment may override them.
readonly CONTAINERD_17_SUITE=trixie
readonly CONTAINERD_17_VERSION=${NODEGUARD_CONTAINERD_1_7_VERSION:-'1.7.24~ds1-6+deb13u1'}
readonly CONTAINERD_21_SUITE=sid
readonly CONTAINERD_21_VERSION=${NODEGUARD_CONTAINERD_2_1_VERSION:-'2.1.9+ds1-5'}
# kustomize renders install/kubernetes for the DaemonSet's end-to-end test (bookworm has none).
readonly KUSTOMIZE_SUITE=trixie
readonly KUSTOMIZE_VERSION=${NODEGUARD_KUSTOMIZE_VERSION:-'5.6.0+ds-1+b2'}

# Packages from the system's own bookworm sources, with the versions this testbed
# was verified with. Newer bookworm point releases are accepted with a WARNING.
readonly -A SYSTEM_PACKAGES=(
    [runc]='1.1.5+ds1-1+deb12u1'
    [busybox-static]='1:1.35.0-4+deb12u1+b1'
    [protobuf-compiler]='3.21.12-3+deb12u1'
    # bridge, host-local and loopback CNI plugins (/usr/lib/cni): the DaemonSet's pod network.
    [containernetworking-plugins]='1.1.1+ds1-3+b5'
)


SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd)
# shellcheck source=scripts/lib/debian-apt.sh
source "$REPO/scripts/lib/debian-apt.sh"
TESTBED=${NODEGUARD_TESTBED:-$REPO/.testbed}
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*" >&2; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

preflight() {
    [[ $(id -u) -eq 0 ]] || die "run as root (apt-get install, and containerd needs root in the tests)"
    command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian 12 bookworm"
    local codename
    # shellcheck disable=SC1091 # os-release is a system file
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [[ $codename == bookworm ]] || warn "this script was verified on Debian 12 bookworm, not '${codename:-unknown}'"
    [[ -r $DEBIAN_KEYRING ]] || die "$DEBIAN_KEYRING is missing (package debian-archive-keyring)"
}

# --- system packages -------------------------------------------------------

installed_version() {
    dpkg-query -W -f '${db:Status-Status} ${Version}\n' "$1" 2>/dev/null |
        awk '$1 == "installed" { print $2 }'
}

install_system_packages() {
    local pkg version missing=()
    for pkg in "${!SYSTEM_PACKAGES[@]}"; do
        [[ -n $(installed_version "$pkg") ]] || missing+=("$pkg")
    done
    # build-images.py needs a Python 3; minimal installs may lack one.
    command -v python3 >/dev/null || missing+=(python3)
    if ((${#missing[@]} > 0)); then
        log "installing ${missing[*]} from the system's apt sources"
        apt-get update -qq
        local specs=()
        for pkg in "${missing[@]}"; do
            version=${SYSTEM_PACKAGES[$pkg]:-}
            if [[ -z $version ]]; then
                specs+=("$pkg")
            elif apt-cache madison "$pkg" | awk -F' [|] ' -v v="$version" '$2 == v { found = 1 } END { exit !found }'; then
                specs+=("$pkg=$version")
            else
                warn "$pkg $version is not offered by the system's sources; installing its current version"
                specs+=("$pkg")
            fi
        done
        apt-get install -y -qq --no-install-recommends "${specs[@]}"
    fi
    for pkg in "${!SYSTEM_PACKAGES[@]}"; do
        version=$(installed_version "$pkg")
        [[ -n $version ]] || die "$pkg did not install"
        if [[ $version != "${SYSTEM_PACKAGES[$pkg]}" ]]; then
            warn "$pkg is at $version; the testbed was verified with ${SYSTEM_PACKAGES[$pkg]}"
        fi
    done
}

# --- containerd from newer Debian suites, through a private apt state -------




# fetch_containerd SUITE PINNED_VERSION DEST
fetch_containerd() {
    fetch_deb "$1" containerd "$2" "$3" containerd ctr containerd-shim-runc-v2
}

# --- images -----------------------------------------------------------------

build_images() {
    local busybox
    busybox=$(dpkg -L busybox-static | grep -E '/bin/busybox$') || die "busybox-static ships no bin/busybox"
    busybox=${busybox%%$'\n'*}
    command -v python3 >/dev/null || die "python3 is needed to build the image archives (apt-get install python3)"
    python3 "$SCRIPT_DIR/build-images.py" --busybox "$busybox" --arch "$(dpkg --print-architecture)" \
        --out "$TESTBED/images" >&2
}

main() {
    preflight
    mkdir -p "$TESTBED"
    TESTBED=$(cd -- "$TESTBED" && pwd)
    # One setup at a time per testbed folder.
    exec 9>"$TESTBED/.lock"
    flock 9
    rm -f "$TESTBED/SETUP_OK"

    install_system_packages
    MIRROR=$(debian_mirror)
    DEBIAN_APT_STATE=$TESTBED/apt
    DEBIAN_APT_MIRROR=$MIRROR
    log "Debian mirror: $MIRROR"
    fetch_containerd "$CONTAINERD_17_SUITE" "$CONTAINERD_17_VERSION" "$TESTBED/containerd-1.7"
    fetch_containerd "$CONTAINERD_21_SUITE" "$CONTAINERD_21_VERSION" "$TESTBED/containerd-2.1"
    fetch_deb "$KUSTOMIZE_SUITE" kustomize "$KUSTOMIZE_VERSION" "$TESTBED/kustomize" kustomize
    [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
        die "containernetworking-plugins installed no bridge, host-local and loopback in /usr/lib/cni"
    build_images

    {
        printf 'format=%s\n' "$TESTBED_FORMAT"
        printf 'containerd-1.7=%s\n' "$(<"$TESTBED/containerd-1.7/VERSION")"
        printf 'containerd-1.7-pinned=%s\n' "$CONTAINERD_17_VERSION"
        printf 'containerd-2.1=%s\n' "$(<"$TESTBED/containerd-2.1/VERSION")"
        printf 'containerd-2.1-pinned=%s\n' "$CONTAINERD_21_VERSION"
        printf 'runc=%s\n' "$(installed_version runc)"
        printf 'busybox-static=%s\n' "$(installed_version busybox-static)"
        printf 'kustomize=%s\n' "$(<"$TESTBED/kustomize/VERSION")"
        printf 'containernetworking-plugins=%s\n' "$(installed_version containernetworking-plugins)"
    } >"$TESTBED/SETUP_OK.partial"
    mv "$TESTBED/SETUP_OK.partial" "$TESTBED/SETUP_OK"
    log "testbed ready in $TESTBED"
    cat "$TESTBED/SETUP_OK" >&2
}

main "$@"
