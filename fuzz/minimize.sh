#!/bin/sh
# Minimizes what a fuzzing session found into the committed corpus of one target.
#
# usage: fuzz/minimize.sh <target> [budget-bytes]
#
# Merges fuzz/corpus-work/<target> (the session's working corpus, not committed) with the
# committed fuzz/corpus/<target> through `cargo fuzz cmin` with libFuzzer's set-cover merge
# over edges only (-use_counters=0), so the committed corpus keeps every edge found, not every
# hit-count bucket. If the result is still over the budget (200 KB by default), the largest
# files are dropped until it fits. Prints the edges (cov) and features (ft) of the working and
# of the committed corpus, so that what the trim cost is on record.
set -eu

target=$1
budget=${2:-204800}
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
flags="-s address -a"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmin-$target.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "corpus-work/$target" "corpus/$target"
cp "corpus-work/$target/." "$tmp/" -r
cp "corpus/$target/." "$tmp/" -r

# shellcheck disable=SC2086
cargo fuzz cmin $flags "$target" "$tmp" -- -set_cover_merge=1 -use_counters=0 >"$tmp.log" 2>&1 ||
    { cat "$tmp.log"; exit 1; }
rm -f "$tmp.log"

total() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
while [ "$(total "$tmp")" -gt "$budget" ]; do
    rm -f "$(find "$tmp" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)"
done

rm -rf "corpus/$target"
mkdir -p "corpus/$target"
cp "$tmp/." "corpus/$target/" -r

binary=target/x86_64-unknown-linux-gnu/release/$target
coverage() { "$binary" -runs=0 "$@" 2>&1 | grep -E 'INITED' | sed -E 's/.*(cov: [0-9]+ ft: [0-9]+).*/\1/'; }
echo "$target: working corpus $(cat "corpus-work/$target"/* "corpus/$target"/* | wc -c) bytes, $(coverage "corpus-work/$target" "corpus/$target")"
echo "$target: committed corpus $(find "corpus/$target" -type f | wc -l) files, $(total "corpus/$target") bytes, $(coverage "corpus/$target")"
