#!/usr/bin/env bash
# What a listing of many deltas costs on S3: `deltaglider ls -r` and `deltaglider stats` of
# one deltaspace of N deltas, against `aws s3 ls --recursive` of the same prefix (the
# store's own listing, one request per 1,000 keys: the floor), with the listing index
# (docs/format.md, "Listing index") and again after deleting the index (a HEAD per delta,
# what every listing cost before the index). Each figure is the best of 3 runs; the ratios
# are to `aws s3 ls` in the same run. The two `deltaglider ls` outputs must be identical and
# give every file's original size.
#   scripts/bench-list.sh            (installs what it needs; starts the S3 server if it is
#                                     not running and stops it afterwards, never one it did
#                                     not start)
# Settings: DG_BENCH_LIST_FILES (default 2000, 64 KiB each, consecutive edits of one
# file), DG_PY_VENV (as scripts/install-deps.sh), CARGO_TARGET_DIR (as for cargo).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DG_PY_VENV=${DG_PY_VENV:-$root/target/py-venv}
files=${DG_BENCH_LIST_FILES:-2000}
say() { printf 'bench-list: %s\n' "$*" >&2; }

scripts/install-deps.sh
say "building (cargo build --release --bin deltaglider)"
cargo build --release --quiet --bin deltaglider
dg=${CARGO_TARGET_DIR:-$root/target}/release/deltaglider
started=
if ! scripts/s3-server.sh status 2>/dev/null; then
  started=1
fi
eval "$(scripts/s3-server.sh start)"
export AWS_EC2_METADATA_DISABLED=true
work=$(mktemp -d "${TMPDIR:-/tmp}/dg-bench-list.XXXXXX")
bucket=dg-bench-list-$$
aws=$DG_PY_VENV/bin/aws
cleanup() {
  "$dg" rb --force "s3://$bucket" >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ -n "$started" ]; then scripts/s3-server.sh stop || true; fi
}
trap cleanup EXIT

say "generating $files files of 64 KiB"
python3 - "$work/files" "$files" <<'PY'
import os, random, sys
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
rng = random.Random(7)
base = bytearray(rng.randbytes(64 << 10))
for i in range(n):
    for _ in range(4):
        base[rng.randrange(len(base))] = rng.randrange(256)
    with open(os.path.join(out, f"app-{i:05}.zip"), "wb") as f:
        f.write(base + bytes(i % 97))
PY
"$dg" mb "s3://$bucket" >/dev/null
say "uploading them (deltaglider sync)"
"$dg" sync --quiet "$work/files/" "s3://$bucket/rel/"

# best NAME CMD...: runs CMD 3 times (output to $work/NAME.out), prints the best time in ms
best() {
  local name=$1 b=
  shift
  for _ in 1 2 3; do
    local s e
    s=$(date +%s%N)
    "$@" >"$work/$name.out"
    e=$(date +%s%N)
    local t=$(((e - s) / 1000000))
    if [ -z "$b" ] || [ "$t" -lt "$b" ]; then b=$t; fi
  done
  echo "$b"
}

t_aws=$(best aws "$aws" s3 ls --recursive "s3://$bucket/rel/")
t_ls=$(best ls "$dg" ls -r "s3://$bucket/rel/")
t_stats=$(best stats "$dg" stats "$bucket/rel/")
segments=$("$aws" s3 ls --recursive "s3://$bucket/.deltaglider/index/" | wc -l)
"$aws" s3 rm --quiet --recursive "s3://$bucket/.deltaglider/index/"
t_ls_head=$(best ls-head "$dg" ls -r "s3://$bucket/rel/")
t_stats_head=$(best stats-head "$dg" stats "$bucket/rel/")

cmp -s "$work/ls.out" "$work/ls-head.out" || {
  say "FAIL: the listing with the index differs from the one without"
  diff "$work/ls.out" "$work/ls-head.out" | head >&2
  exit 1
}
listed=$(wc -l <"$work/ls.out")
[ "$listed" = "$files" ] || {
  say "FAIL: listed $listed objects of $files"
  exit 1
}
# every listed size is the file's own
awk '{print $NF, $(NF-1)}' "$work/ls.out" | sed 's|.*/||' | sort >"$work/listed-sizes"
(cd "$work/files" && stat -c '%n %s' app-*.zip | sort) >"$work/file-sizes"
cmp -s "$work/listed-sizes" "$work/file-sizes" || {
  say "FAIL: listed sizes are not the files' sizes"
  diff "$work/listed-sizes" "$work/file-sizes" | head >&2
  exit 1
}

# show LABEL MS: the time in seconds and its ratio to `aws s3 ls`
show() {
  printf '  %-34s %4d.%03d s  (%d.%02dx)\n' "$1" $(($2 / 1000)) $(($2 % 1000)) \
    $(($2 / t_aws)) $((($2 * 100 / t_aws) % 100))
}
printf '%s deltas in one deltaspace (%s index segments), best of 3:\n' "$files" "$segments"
show "aws s3 ls --recursive" "$t_aws"
show "deltaglider ls -r, index" "$t_ls"
show "deltaglider ls -r, HEAD each" "$t_ls_head"
show "deltaglider stats, index" "$t_stats"
show "deltaglider stats, HEAD each" "$t_stats_head"
printf 'every listed size is the original file size; both listings identical\n'
