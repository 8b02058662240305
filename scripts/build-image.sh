#!/usr/bin/env bash
# Builds nodeguard's container image without Docker and without a registry: a static
# `nodeguard` and an OCI image archive holding it, as install/Dockerfile would build it
# (`/nodeguard`, entrypoint, user 0:0, the Dockerfile's labels; nothing else in the image).
#
#   scripts/build-image.sh                                  # target/image/nodeguard.tar
#   scripts/build-image.sh --tag registry.example/nodeguard:0.1.0 --out /tmp/nodeguard.tar
#
# Then load or push the archive:
#   kind load image-archive target/image/nodeguard.tar            # a kind cluster
#   ctr -n k8s.io images import target/image/nodeguard.tar        # one node's containerd
#   skopeo copy oci-archive:target/image/nodeguard.tar docker://registry.example/nodeguard:0.1.0
#
# The binary is a static glibc build (`-C target-feature=+crt-static` on
# x86_64-unknown-linux-gnu): the musl target of the Dockerfile cannot be installed on Debian
# 12 without rustup's downloads. Checked with readelf: no program interpreter, no shared
# library. Reproducible: the same commit gives the same image digest (file times are the
# commit's time, paths in the binary are remapped, the archive is written byte for byte the
# same: scripts/lib/oci-image.py).
#
# Options:
#   --tag REF        the image's name (default ghcr.io/nodeguard/nodeguard:<workspace version>,
#                    what install/kubernetes names)
#   --out FILE       the archive (default target/image/nodeguard.tar)
#   --binary FILE    put this static nodeguard in the image instead of building one (checked
#                    like a built one)
# Environment: CARGO (default cargo), SOURCE_DATE_EPOCH (default: the commit's time).
# Prints the archive, the image's manifest digest and its ID (config digest).
set -euo pipefail

readonly TARGET=x86_64-unknown-linux-gnu

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() {
    printf 'build-image: error: %s\n' "$*" >&2
    exit 1
}

workspace_version() {
    awk '/^\[workspace.package\]/ { in_pkg = 1; next }
         /^\[/ { in_pkg = 0 }
         in_pkg && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml
}

tag="ghcr.io/nodeguard/nodeguard:$(workspace_version)"
out=$REPO/target/image/nodeguard.tar
binary=
while (($# > 0)); do
    case $1 in
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --binary) binary=${2:?--binary needs a value}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ $(uname -m) == x86_64 ]] || die "builds x86_64 images only (this machine is $(uname -m))"
command -v readelf >/dev/null || die "readelf is needed (apt-get install binutils)"
command -v python3 >/dev/null || die "python3 is needed (apt-get install python3)"

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || printf 0)
    if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        log "the working tree has uncommitted changes: the image is not the commit's"
    fi
fi
export SOURCE_DATE_EPOCH

if [[ -z $binary ]]; then
    cargo=${CARGO:-cargo}
    cargo_home=${CARGO_HOME:-$HOME/.cargo}
    # Only the target's own code is linked statically (with --target, RUSTFLAGS do not reach
    # build scripts and proc macros). The remaps keep this machine's paths out of the binary.
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$REPO=/src --remap-path-prefix=$cargo_home=/cargo"
    export CARGO_PROFILE_RELEASE_STRIP=symbols
    log "building a static nodeguard ($TARGET, release)"
    "$cargo" build --release --locked -p nodeguard --target "$TARGET" >&2
    binary=$REPO/target/$TARGET/release/nodeguard
fi
[[ -x $binary ]] || die "$binary is not an executable"

# A binary that asks for a dynamic loader or a shared library would not start in an image
# that holds nothing else.
if readelf --program-headers --wide "$binary" | grep -q INTERP; then
    die "$binary asks for a program interpreter: it is not static"
fi
if readelf --dynamic --wide "$binary" | grep -q '(NEEDED)'; then
    die "$binary needs shared libraries: $(readelf --dynamic --wide "$binary" | grep '(NEEDED)' | tr -s ' ')"
fi
"$binary" --version >&2

mkdir -p "$(dirname -- "$out")"
digests=$(python3 "$REPO/scripts/lib/oci-image.py" \
    --binary "$binary" --path /nodeguard --reference "$tag" --arch amd64 \
    --created "$SOURCE_DATE_EPOCH" --user 0:0 --labels-from "$REPO/install/Dockerfile" \
    --out "$out")
log "wrote $out ($tag)"
printf 'archive %s\nreference %s\n%s\n' "$out" "$tag" "$digests"
