#!/usr/bin/env bash
# Tree transfers of many small files on S3: `deltaglider cp -r` up and down, `sync` of an
# unchanged tree and `rm -r`, against `aws s3` doing the same with the files as plain
# objects, on the project's Ceph server, in one run. The files are consecutive edits of one
# 64 KiB file (4 more bytes each), stored as deltas of the first until they differ too much
# from it. Prints each time and its ratio to `aws s3` (the target: within 1.2x); the
# downloaded trees must be byte-exact.
#   scripts/bench-tree.sh            (installs what it needs; starts the S3 server if it is
#                                     not running and stops it afterwards, never one it did
#                                     not start)
# Settings: DG_BENCH_TREE_FILES (default 2000), DG_PY_VENV (as scripts/install-deps.sh),
# CARGO_TARGET_DIR (as for cargo).
set -euo pipefail
[ -n "${DG_BENCH_TRACE:-}" ] && set -x

name=tree
# shellcheck source=scripts/bench-setup.sh
. "$(dirname "$0")/bench-setup.sh"
files=${DG_BENCH_TREE_FILES:-2000}

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

# ms CMD...: runs CMD once, prints its wall time in milliseconds
ms() {
  local s e
  s=$(date +%s%N)
  "$@" >/dev/null
  e=$(date +%s%N)
  echo $(((e - s) / 1000000))
}

say "uploading"
a_up=$(ms "$aws" s3 cp --quiet --recursive "$work/files/" "s3://$bucket/aws/")
d_up=$(ms "$dg" cp -r --quiet "$work/files/" "s3://$bucket/dg/")
say "downloading"
a_down=$(ms "$aws" s3 cp --quiet --recursive "s3://$bucket/aws/" "$work/aws-down/")
d_down=$(ms "$dg" cp -r --quiet "s3://$bucket/dg/" "$work/dg-down/")
diff -r "$work/files" "$work/dg-down" >/dev/null || {
  say "FAIL: the tree downloaded by deltaglider differs from the files uploaded"
  exit 1
}
diff -r "$work/files" "$work/aws-down" >/dev/null || {
  say "FAIL: the tree downloaded by aws differs from the files uploaded"
  exit 1
}
say "syncing the unchanged tree"
a_sync=$(ms "$aws" s3 sync --quiet "$work/files/" "s3://$bucket/aws/")
d_sync=$(ms "$dg" sync --quiet "$work/files/" "s3://$bucket/dg/")
say "removing"
a_rm=$(ms "$aws" s3 rm --quiet --recursive "s3://$bucket/aws/")
d_rm=$(ms "$dg" rm -r --quiet "s3://$bucket/dg/")
# (`aws s3 ls` of an empty prefix exits 1)
left=$({ "$aws" s3 ls --recursive "s3://$bucket/dg/" || true; } | wc -l)
[ "$left" = 0 ] || {
  say "FAIL: $left objects left under dg/ after rm -r"
  exit 1
}

# row LABEL AWS_MS DG_MS
row() {
  printf '  %-22s aws %3d.%03d s   deltaglider %3d.%03d s   (%d.%02dx)\n' "$1" \
    $(($2 / 1000)) $(($2 % 1000)) $(($3 / 1000)) $(($3 % 1000)) \
    $(($3 / $2)) $((($3 * 100 / $2) % 100))
}
printf '%s files of 64 KiB (mostly deltas; aws stores them whole), one run:\n' "$files"
row "cp -r up" "$a_up" "$d_up"
row "cp -r down" "$a_down" "$d_down"
row "sync, nothing changed" "$a_sync" "$d_sync"
row "rm -r" "$a_rm" "$d_rm"
printf 'both downloaded trees byte-exact\n'
