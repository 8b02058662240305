#!/usr/bin/env bash
# Build the do-nothing NRI plugin the create_latency bench measures nodeguard against:
# integration/benches/go-peer/main.go (ours) on the upstream Go stub, compiled offline from
# Debian's packaged sources.
#
# Usage (as root, on Debian 12 bookworm, after scripts/testbed/setup.sh):
#   scripts/testbed/go-nri-peer.sh [OUT_DIR]       (default: $NODEGUARD_TESTBED/go-nri-peer)
#
# - Go compiler: Debian's golang-go. Bookworm's (1.19) is older than the `go` line of the NRI
#   library's go.mod, so the first suite whose golang-go is new enough is taken: bookworm
#   (installed with the system's apt), else bookworm-backports, fetched through a private apt
#   state (scripts/lib/debian-apt.sh) and unpacked with dpkg-deb -x into OUT_DIR/toolchain:
#   the system's apt sources and package state are untouched.
# - Libraries: sid's golang-github-containerd-nri-dev and the Go library packages (golang-*-dev)
#   it depends on, fetched the same way (sid's apt state) and unpacked into OUT_DIR/gocode,
#   never into /usr/share/gocode. The closure is taken over Debian's Depends, expanding only
#   the packages whose sources the build imports (the full Depends closure is ~190 packages,
#   200 MB, mostly test dependencies). Non-Go dependencies (C libraries for cgo, tools) are
#   listed and skipped: the peer is built with CGO_ENABLED=0.
# - Build: GOPATH mode (GO111MODULE=off), GOPROXY=off, GOTOOLCHAIN=local, GOFLAGS empty: no
#   network, nothing from outside Debian's packages and this repository.
#
# Output: OUT_DIR/go-nri-peer and OUT_DIR/BUILD_INFO (Go version, NRI package version, every
# package used). When the build cannot be done offline, the script says which package or
# import is missing and exits 1. The peer is only for the bench: CI never runs this.
set -euo pipefail

readonly NRI_PACKAGE=golang-github-containerd-nri-dev
readonly LIB_SUITE=sid
# Suites searched for a golang-go new enough, in order; "bookworm" means the system's apt.
readonly GO_SUITES=(bookworm bookworm-backports trixie sid)
readonly IMPORT_PATH=nodeguard.invalid/go-nri-peer

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd -- "$SCRIPT_DIR/../.." && pwd)
# shellcheck source=scripts/lib/debian-apt.sh
source "$REPO/scripts/lib/debian-apt.sh"
TESTBED=${NODEGUARD_TESTBED:-$REPO/.testbed}
OUT=${1:-$TESTBED/go-nri-peer}
export DEBIAN_FRONTEND=noninteractive

log() { printf 'go-nri-peer: %s\n' "$*" >&2; }
warn() { printf 'go-nri-peer: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'go-nri-peer: error: %s\n' "$*" >&2
    exit 1
}

# go_version DEBIAN_VERSION: "2:1.23~2~bpo12+1" -> "1.23"
go_version() { sed -E 's/^[0-9]+://; s/[~+-].*//' <<<"$1"; }

# version_ge A B: A >= B for dotted versions
version_ge() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$2" ]]; }

# system_candidate PACKAGE: the version the system's apt would install, empty when none.
system_candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2; exit }'
}

# fetch CONF DEST PACKAGE...: downloads the packages with apt-get download into the suite's
# cache and unpacks each into DEST; prints "package version" lines.
fetch() {
    local conf=$1 dest=$2 downloads
    shift 2
    downloads=$(dirname "$conf")/downloads
    mkdir -p "$downloads" "$dest"
    (cd "$downloads" && apt-get -c "$conf" download -qq "$@") || die "apt-get download $* failed"
    local pkg deb
    for pkg in "$@"; do
        deb=$(find "$downloads" -maxdepth 1 -name "${pkg}_*.deb" -print | sort -V | tail -n1)
        [[ -n $deb ]] || die "apt-get download produced no .deb for $pkg"
        dpkg-deb -x "$deb" "$dest"
        dpkg-deb -c "$deb" | awk '{ print $6 }' | sed -n 's#^\./usr/share/gocode/src/\(.*\)/$#\1#p' |
            sed "s#^#$pkg #" >>"$OUT/.dirs"
        dpkg-deb -c "$deb" | awk '{ print $6 }' | sed -n 's#^\./usr/share/gocode/src/\(.*/go\.mod\)$#\1#p' |
            sed "s#^#$pkg #" >>"$OUT/.gomods"
        printf '%s %s\n' "$pkg" "$(dpkg-deb -f "$deb" Version)"
    done
}

# go_deps CONF PACKAGE: the Go library packages PACKAGE depends on (first alternative; a
# virtual package resolved to its first provider); other dependencies go to $OUT/.skipped.
go_deps() {
    local conf=$1 pkg=$2
    apt-cache -c "$conf" depends --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "$pkg" |
        awk -v skipped="$OUT/.skipped" -v from="$pkg" '
            function take(name) {
                if (name ~ /^golang-.*-dev$/) print name
                else print name " (needed by " from ")" >>skipped
            }
            /^  [|]?Depends: / {
                alt = pending_alt; pending_alt = ($1 ~ /^[|]/)
                name = $2; virtual = 0
                if (alt) next                     # not the first alternative
                if (name ~ /^</) { virtual = 1; next }
                take(name); next
            }
            /^    / && virtual { take($1); virtual = 0; next }
        '
}

# imported_from: reads `go list` lines "IMPORT DIR" and prints the Debian packages owning a DIR.
imported_from() {
    awk '$2 != "MISSING" && $2 != "" { print $2 }' |
        sed -n "s#^$OUT/gocode/usr/share/gocode/src/##p" |
        awk 'NR == FNR { want[$0] = 1; next } ($2 in want) { print $1 }' - "$OUT/.dirs" | sort -u
}

# expand PACKAGE: adds the Go library packages it depends on, not fetched yet, to new[]
# (the caller's), one level deeper than PACKAGE.
expand() {
    local pkg=$1 dep
    expanded[$pkg]=1
    for dep in $(go_deps "$libconf" "$pkg"); do
        [[ -n ${fetched[$dep]:-} ]] && continue
        fetched[$dep]=$((fetched[$pkg] + 1))
        new+=("$dep")
    done
}

preflight() {
    [[ $(id -u) -eq 0 ]] || die "run as root (apt-get, and the private apt state is root's)"
    command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian 12 bookworm"
    [[ -r $DEBIAN_KEYRING ]] || die "$DEBIAN_KEYRING is missing (package debian-archive-keyring)"
    [[ -f $REPO/integration/benches/go-peer/main.go ]] || die "integration/benches/go-peer/main.go is missing"
}

# pick_go REQUIRED: sets GOROOT and GO_INFO to a Debian Go >= REQUIRED.
pick_go() {
    local required=$1 suite conf version pkg
    for suite in "${GO_SUITES[@]}"; do
        if [[ $suite == bookworm ]]; then
            apt-get update -qq
            version=$(system_candidate golang-go)
            if [[ -n $version ]] && version_ge "$(go_version "$version")" "$required"; then
                log "installing golang-go $version from the system's apt sources"
                apt-get install -y -qq --no-install-recommends golang-go
                GOROOT=$(go env GOROOT)
                GO_INFO="golang-go $version (bookworm, system)"
                return
            fi
            log "bookworm's golang-go ${version:-(none)} is older than Go $required: trying newer suites"
            continue
        fi
        conf=$(suite_apt_conf "$suite" "$TESTBED/apt" "$MIRROR")
        apt-get -c "$conf" update -qq
        version=$(apt-cache -c "$conf" show --no-all-versions golang-go 2>/dev/null | awk '/^Version:/ { print $2; exit }')
        if [[ -z $version ]] || ! version_ge "$(go_version "$version")" "$required"; then
            log "$suite's golang-go ${version:-(none)} is older than Go $required"
            continue
        fi
        # golang-go is a metapackage: the compiler is golang-1.NN-go, its standard library
        # sources golang-1.NN-src.
        pkg=$(apt-cache -c "$conf" show --no-all-versions golang-go | sed -n 's/^Depends: \(golang-[0-9.]*-go\).*/\1/p')
        [[ -n $pkg ]] || die "cannot tell which compiler $suite's golang-go $version depends on"
        log "fetching $pkg and ${pkg%-go}-src from Debian $suite (golang-go $version)"
        rm -rf "$OUT/toolchain"
        local fetched
        fetched=$(fetch "$conf" "$OUT/toolchain" "$pkg" "${pkg%-go}-src")
        local release=${pkg#golang-}
        GOROOT=$OUT/toolchain/usr/lib/go-${release%-go}
        [[ -x $GOROOT/bin/go ]] || die "$pkg has no ${GOROOT#"$OUT/toolchain/"}/bin/go"
        GO_INFO="golang-go $version ($suite): $(tr '\n' ' ' <<<"$fetched")"
        return
    done
    die "no Debian suite of ${GO_SUITES[*]} offers a golang-go >= $required"
}

go_env() {
    env -u GOFLAGS GOROOT="$GOROOT" PATH="$GOROOT/bin:$PATH" GOPATH="$OUT/gopath:$OUT/gocode/usr/share/gocode" \
        GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local GOFLAGS= GOENV=off GOTELEMETRY=off \
        CGO_ENABLED=0 GOCACHE="$OUT/cache" HOME="$OUT" "$@"
}

main() {
    preflight
    mkdir -p "$TESTBED" "$OUT"
    TESTBED=$(cd -- "$TESTBED" && pwd)
    OUT=$(cd -- "$OUT" && pwd)
    # One apt user of the testbed's private states at a time (setup.sh takes the same lock).
    exec 9>"$TESTBED/.lock"
    flock 9
    rm -f "$OUT/go-nri-peer" "$OUT/BUILD_INFO" "$OUT/.dirs" "$OUT/.gomods" "$OUT/.skipped" "$OUT/.packages"
    rm -rf "$OUT/gocode" "$OUT/gopath"
    MIRROR=$(debian_mirror)
    log "Debian mirror: $MIRROR"

    local libconf
    libconf=$(suite_apt_conf "$LIB_SUITE" "$TESTBED/apt" "$MIRROR")
    log "reading Debian $LIB_SUITE's package lists"
    apt-get -c "$libconf" update -qq
    [[ -n $(apt-cache -c "$libconf" show --no-all-versions "$NRI_PACKAGE" 2>/dev/null) ]] ||
        die "Debian $LIB_SUITE offers no $NRI_PACKAGE"
    fetch "$libconf" "$OUT/gocode" "$NRI_PACKAGE" >>"$OUT/.packages"
    local nri_src=$OUT/gocode/usr/share/gocode/src/github.com/containerd/nri
    local required
    required=$(awk '$1 == "go" { print $2; exit }' "$nri_src/go.mod" 2>/dev/null)
    required=${required:-1.21}
    log "$(cat "$OUT/.packages"); its go.mod asks for Go $required"
    pick_go "$required"
    log "Go: $(go_env go version)"

    mkdir -p "$OUT/gopath/src/$IMPORT_PATH"
    cp "$REPO/integration/benches/go-peer/main.go" "$OUT/gopath/src/$IMPORT_PATH/main.go"

    # The closure: fetch, see what the build imports, add the Depends of the packages it
    # imports from, until nothing new is wanted. fetched[] holds each package's depth in the
    # Depends graph (the NRI package 0).
    local -A fetched=([$NRI_PACKAGE]=0) expanded=()
    local round=0 listing missing pkg dep new used depth
    while :; do
        round=$((round + 1))
        listing=$(go_env go list -e -deps -f '{{if not .Standard}}{{.ImportPath}} {{if .Error}}MISSING{{else}}{{.Dir}}{{end}}{{end}}' "$IMPORT_PATH")
        missing=$(awk '$2 == "MISSING" { print $1 }' <<<"$listing" | sort -u)
        used=$(imported_from <<<"$listing")
        new=()
        for pkg in $used; do
            expand "$pkg"
        done
        if ((${#new[@]} == 0)) && [[ -n $missing ]]; then
            # A package the build imports from does not declare all it imports (grpc's
            # generated code imports github.com/golang/protobuf, which it does not depend on):
            # widen to the Depends of the shallowest fetched packages not expanded yet.
            depth=$(for pkg in "${!fetched[@]}"; do
                [[ -n ${expanded[$pkg]:-} ]] || printf '%s\n' "${fetched[$pkg]}"
            done | sort -n | head -n1)
            if [[ -n $depth ]]; then
                log "round $round: no imported-from package declares a Depends for $(tr '\n' ' ' <<<"$missing")- widening to the Depends of the fetched packages at depth $depth"
                for pkg in "${!fetched[@]}"; do
                    [[ -z ${expanded[$pkg]:-} && ${fetched[$pkg]} == "$depth" ]] && expand "$pkg"
                done
            fi
        fi
        if ((${#new[@]} == 0)); then
            break
        fi
        log "round $round: $(wc -w <<<"$missing") imports missing; fetching ${#new[@]} more: ${new[*]}"
        fetch "$libconf" "$OUT/gocode" "${new[@]}" >>"$OUT/.packages"
    done
    if [[ -n $missing ]]; then
        die "the build imports packages that no Go library package in the Depends closure of $NRI_PACKAGE provides: $(tr '\n' ' ' <<<"$missing")"
    fi

    # The Go the build needs: the highest `go` line of the go.mod files shipped by the
    # packages it imports from (Debian's x/net and x/sys ask for more than the NRI library).
    local needed
    needed=$(awk 'NR == FNR { want[$1] = 1; next } ($1 in want) { print $2 }' <(printf '%s\n' "$used") "$OUT/.gomods" |
        while read -r gomod; do
            awk '$1 == "go" { print $2; exit }' "$OUT/gocode/usr/share/gocode/src/$gomod"
        done | sort -V | tail -n1)
    if [[ -n $needed ]] && ! version_ge "$(go_env go env GOVERSION | sed 's/^go//')" "$needed"; then
        log "the imported packages' go.mod files ask for Go $needed"
        pick_go "$needed"
        log "Go: $(go_env go version)"
    fi

    log "building $IMPORT_PATH (GOPATH mode, offline, CGO_ENABLED=0)"
    (cd "$OUT/gopath/src/$IMPORT_PATH" && go_env go vet . && go_env go build -trimpath -o "$OUT/go-nri-peer.partial" .) ||
        die "go build failed with $(go_env go version) (see above)"
    mv "$OUT/go-nri-peer.partial" "$OUT/go-nri-peer"

    local nri_version used_list
    nri_version=$(awk -v p="$NRI_PACKAGE" '$1 == p { print $2 }' "$OUT/.packages")
    used_list=$(go_env go list -deps -f '{{if not .Standard}}{{.ImportPath}} {{.Dir}}{{end}}' "$IMPORT_PATH" |
        imported_from |
        awk 'NR == FNR { v[$1] = $2; next } { print $1 "=" v[$1] }' "$OUT/.packages" -)
    {
        printf 'go=%s\n' "$(go_env go version)"
        printf 'go-package=%s\n' "$GO_INFO"
        printf 'nri=%s %s (Debian %s)\n' "$NRI_PACKAGE" "$nri_version" "$LIB_SUITE"
        printf 'fetched=%s\n' "$(awk '{ print $1 "=" $2 }' "$OUT/.packages" | sort | tr '\n' ' ')"
        printf 'imported-from=%s\n' "$(tr '\n' ' ' <<<"$used_list")"
        printf 'skipped-non-go=%s\n' "$(sort -u "$OUT/.skipped" 2>/dev/null | tr '\n' ' ')"
        printf 'source-sha256=%s\n' "$(sha256sum "$REPO/integration/benches/go-peer/main.go" | cut -d' ' -f1)"
    } >"$OUT/BUILD_INFO"
    log "built $OUT/go-nri-peer"
    cat "$OUT/BUILD_INFO" >&2
}

main "$@"
