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
# Settings: DG_BENCH_LIST_FILES (default 2000, edits of one file, every one a delta),
# DG_BENCH_LIST_SIZE (bytes per file, default 65536), DG_BENCH_LIST_HEADS (default 1: also
# time the listing with the index deleted, a HEAD per delta; 0 skips that, for 100,000
# files), DG_BENCH_LIST_LOCAL (default 1: also time `ls -r` and `stats` of the same files on
# the local store, which has no `aws s3` to compare with), DG_PY_VENV (as
# scripts/install-deps.sh), CARGO_TARGET_DIR (as for cargo).
set -euo pipefail

name=list
# shellcheck source=scripts/bench-setup.sh
. "$(dirname "$0")/bench-setup.sh"
files=${DG_BENCH_LIST_FILES:-2000}

size=${DG_BENCH_LIST_SIZE:-65536}
heads=${DG_BENCH_LIST_HEADS:-1}
local_too=${DG_BENCH_LIST_LOCAL:-1}
say "generating $files files of $size bytes"
python3 - "$work/files" "$files" "$size" <<'PY'
import os, random, sys
out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out)
rng = random.Random(7)
base = rng.randbytes(size)
for i in range(n):
    # four edits of the base each, so that every file is a small delta of the first
    v = bytearray(base)
    for _ in range(4):
        v[rng.randrange(len(v))] = rng.randrange(256)
    with open(os.path.join(out, f"app-{i:06}.zip"), "wb") as f:
        f.write(v + bytes(i % 97))
PY
"$dg" mb "s3://$bucket" >/dev/null
say "uploading them (deltaglider sync)"
s=$(date +%s)
"$dg" sync --quiet "$work/files/" "s3://$bucket/rel/"
say "uploaded in $(($(date +%s) - s)) s"

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
if [ "$heads" = 1 ]; then
  "$aws" s3 rm --quiet --recursive "s3://$bucket/.deltaglider/index/"
  t_ls_head=$(best ls-head "$dg" ls -r "s3://$bucket/rel/")
  t_stats_head=$(best stats-head "$dg" stats "$bucket/rel/")
  cmp -s "$work/ls.out" "$work/ls-head.out" || {
    say "FAIL: the listing with the index differs from the one without"
    diff "$work/ls.out" "$work/ls-head.out" | head >&2
    exit 1
  }
fi
if [ "$local_too" = 1 ]; then
  say "the same files on the local store"
  export DG_ENDPOINT_URL="file://$work/store"
  mkdir -p "$work/store"
  "$dg" mb s3://local >/dev/null
  "$dg" sync --quiet "$work/files/" s3://local/rel/
  t_local_ls=$(best local-ls "$dg" ls -r s3://local/rel/)
  t_local_stats=$(best local-stats "$dg" stats local/rel/)
  unset DG_ENDPOINT_URL
  [ "$(wc -l <"$work/local-ls.out")" = "$files" ] || {
    say "FAIL: the local listing has $(wc -l <"$work/local-ls.out") objects, not $files"
    exit 1
  }
fi
listed=$(wc -l <"$work/ls.out")
[ "$listed" = "$files" ] || {
  say "FAIL: listed $listed objects of $files"
  exit 1
}
# every listed size is the file's own
awk '{print $NF, $(NF-1)}' "$work/ls.out" | sed 's|.*/||' | sort >"$work/listed-sizes"
(cd "$work/files" && find . -name 'app-*.zip' -printf '%f %s\n' | sort) >"$work/file-sizes"
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
[ "$heads" = 1 ] && show "deltaglider ls -r, HEAD each" "$t_ls_head"
show "deltaglider stats, index" "$t_stats"
[ "$heads" = 1 ] && show "deltaglider stats, HEAD each" "$t_stats_head"
if [ "$local_too" = 1 ]; then
  printf '  %-34s %4d.%03d s\n' "local store: deltaglider ls -r" $((t_local_ls / 1000)) $((t_local_ls % 1000))
  printf '  %-34s %4d.%03d s\n' "local store: deltaglider stats" $((t_local_stats / 1000)) $((t_local_stats % 1000))
fi
printf 'every listed size is the original file size'
[ "$heads" = 1 ] && printf '; both S3 listings identical'
printf '\n'
