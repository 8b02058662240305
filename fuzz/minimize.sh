#!/bin/sh
# Minimizes what a fuzzing session found into the committed corpus of one target.
#
# usage: fuzz/minimize.sh <target> [budget-bytes]
#
# The pool is fuzz/corpus-work/<target> (the session's working corpus, not committed) plus the
# committed fuzz/corpus/<target>. First `cargo fuzz cmin` (libFuzzer's merge: the smallest
# inputs that keep every feature). If that is over the budget (200 KiB by default), the
# committed corpus is chosen instead by a budgeted greedy set cover over edges: libFuzzer's
# set-cover merge (-set_cover_merge=1 -use_counters=0) records every input's edges, and the
# inputs with the most new edges per byte are taken until the budget is spent. Prints the
# coverage (cov: edges, ft: features) of the pool and of the committed corpus, so that what the
# budget cost is on record.
set -eu

target=$1
budget=${2:-204800}
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
flags="-s address -a"
binary=target/x86_64-unknown-linux-gnu/release/$target

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmin-$target.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "corpus-work/$target" "corpus/$target" "$tmp/pool" "$tmp/out" "$tmp/cover"
cp -r "corpus-work/$target/." "$tmp/pool/"
cp -r "corpus/$target/." "$tmp/pool/"
cp -r "$tmp/pool/." "$tmp/out/"

total() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# shellcheck disable=SC2086
cargo fuzz cmin $flags "$target" "$tmp/out" >"$tmp/cmin.log" 2>&1 || { cat "$tmp/cmin.log"; exit 1; }
how="cargo fuzz cmin"

if [ "$(total "$tmp/out")" -gt "$budget" ]; then
    "$binary" -set_cover_merge=1 -use_counters=0 -merge_control_file="$tmp/control" \
        "$tmp/cover" "$tmp/pool" >"$tmp/cover.log" 2>&1 || { cat "$tmp/cover.log"; exit 1; }
    rm -rf "$tmp/out"
    mkdir "$tmp/out"
    python3 - "$tmp/control" "$budget" "$tmp/out" <<'EOF'
# Budgeted greedy set cover (lazy evaluation) over the edges of libFuzzer's control file:
# line 1 the number of files, line 2 how many were in the initial corpus, then the paths, then
# per file "STARTED i size" and "FT i features..." (all of them, in set-cover mode).
import heapq, os, shutil, sys

control, budget, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(control) as f:
    lines = f.read().splitlines()
n = int(lines[0])
paths = lines[2 : 2 + n]
features = {}
for line in lines[2 + n :]:
    if line.startswith("FT "):
        fields = line.split()
        features[int(fields[1])] = set(fields[2:])
size = {i: max(os.path.getsize(paths[i]), 1) for i in features}
covered, spent = set(), 0
heap = [(-len(fs) / size[i], i) for i, fs in features.items()]
heapq.heapify(heap)
while heap:
    _, i = heapq.heappop(heap)
    gain = len(features[i] - covered)
    if gain == 0 or spent + size[i] > budget:
        continue
    if heap and gain / size[i] < -heap[0][0]:
        heapq.heappush(heap, (-gain / size[i], i))  # stale: re-rank
        continue
    covered |= features[i]
    spent += size[i]
    shutil.copy(paths[i], out)
EOF
    how="budgeted set cover over edges"
fi

rm -rf "corpus/$target"
mkdir -p "corpus/$target"
cp -r "$tmp/out/." "corpus/$target/"

coverage() { "$binary" -runs=0 "$@" 2>&1 | grep -E 'INITED' | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+).*/\1/'; }
echo "$target: pool $(find "$tmp/pool" -type f | wc -l) files, $(total "$tmp/pool") bytes, $(coverage "$tmp/pool")"
echo "$target: committed ($how) $(find "corpus/$target" -type f | wc -l) files, $(total "corpus/$target") bytes, $(coverage "corpus/$target")"
