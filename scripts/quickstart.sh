#!/usr/bin/env bash
# The README's first command: builds deltaglider, stores three consecutive real releases
# (botocore wheels from PyPI, hash-checked) in a local store, fetches them back, checks them
# byte for byte and prints what was saved. No S3 server needed.
#   scripts/quickstart.sh [WORKDIR]      (default: ${TMPDIR:-/tmp}/deltaglider-quickstart)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-${TMPDIR:-/tmp}/deltaglider-quickstart}
say() { printf '\n== %s\n' "$*" >&2; }

say "building (cargo build --release)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
dg=$root/target/release/deltaglider

say "fetching three consecutive botocore releases"
corpus=$(DG_CORPUS_SETS=botocore DG_CORPUS_LIMIT=3 DG_CORPUS_PYTHON=${DG_CORPUS_PYTHON:-python3} \
  "$root/scripts/corpus/fetch.sh" "$work/corpus")

rm -rf "$work/store" "$work/restored"
mkdir -p "$work/restored"
export DG_ENDPOINT_URL=file://$work/store

say "storing them in the local store at $work/store"
"$dg" mb s3://releases
for f in "$corpus"/botocore/*.zip; do
  "$dg" cp "$f" s3://releases/botocore/
done

say "listing"
"$dg" ls -h s3://releases/botocore/

say "fetching them back and comparing byte for byte"
for f in "$corpus"/botocore/*.zip; do
  name=$(basename "$f")
  "$dg" cp "s3://releases/botocore/$name" "$work/restored/"
  cmp "$f" "$work/restored/$name"
done

original=$(cat "$corpus"/botocore/*.zip | wc -c)
stored=$(find "$work/store" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
say "result"
awk -v o="$original" -v s="$stored" 'BEGIN {
  printf "original: %d bytes, stored: %d bytes (%.1f%%), saved %.1f%%, all files byte-exact\n", o, s, 100 * s / o, 100 - 100 * s / o
}'
