#!/usr/bin/env bash
# End-to-end benchmark against the project's S3 server (scripts/s3-server.sh): the Python
# deltaglider 6.2.0 and this tool in both storage formats (compatible and compact), one
# process per file as CI jobs run them, on the corpus (scripts/corpus/fetch.sh: botocore and
# ansible wheels, as .zip since the Python tool only deltas known archive suffixes; the
# botocore sdists .tar.gz and prettier's npm .tgz, which it takes as they are). For each set
# and tool: upload every release into an empty bucket, download every one back and compare
# it byte for byte; prints the wall times, the peak RSS of one process, the bytes stored,
# and the Python/ours ratios measured in this run, then the compact format's expansion and
# restore throughput on the set's first file (crates/archive/examples/throughput.rs).
#   scripts/bench-e2e.sh            (installs what it needs; starts the server if it is not
#                                    running and stops it afterwards, never one it did not
#                                    start)
# Settings: DG_BENCH_SETS (default "botocore ansible sdist-botocore npm-prettier"),
# DG_BENCH_TOOLS (default "python compatible compact"), DG_PY_VENV (as
# scripts/install-deps.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DG_PY_VENV=${DG_PY_VENV:-$root/target/py-venv}
sets=${DG_BENCH_SETS:-botocore ansible sdist-botocore npm-prettier}
tools=${DG_BENCH_TOOLS:-python compatible compact}
say() { printf 'bench-e2e: %s\n' "$*" >&2; }

scripts/install-deps.sh
corpus=$(scripts/corpus/fetch.sh)
started=
if ! scripts/s3-server.sh status 2>/dev/null; then
  started=1
fi
eval "$(scripts/s3-server.sh start)"
work=$(mktemp -d "${TMPDIR:-/tmp}/dg-bench-e2e.XXXXXX")
cleanup() {
  rm -rf "$work"
  if [ -n "$started" ]; then scripts/s3-server.sh stop || true; fi
}
trap cleanup EXIT

say "building (cargo build --release)"
cargo build --release --quiet
cargo build --release --quiet -p deltaglider-archive --example throughput
ours=$root/target/release/deltaglider
throughput=$root/target/release/examples/throughput
python=$DG_PY_VENV/bin/deltaglider
export AWS_EC2_METADATA_DISABLED=true DG_DISABLE_EC2_DETECTION=1 DG_SUPPRESS_DEPRECATION=1

# run TOOL ARGS...: one invocation (TOOL: python, or this tool's storage format); appends its
# peak RSS (KiB) to $work/rss.
run() {
  local tool=$1
  shift
  local exe=$ours
  [ "$tool" = python ] && exe=$python
  if [ "$tool" = python ]; then
    # its metrics adapter logs every operation to stderr; failures still exit non-zero
    DG_LOG_LEVEL=ERROR /usr/bin/time -f '%M' -a -o "$work/rss" "$exe" "$@" >/dev/null 2>&1
  else
    DG_FORMAT=$tool /usr/bin/time -f '%M' -a -o "$work/rss" "$exe" "$@" >/dev/null
  fi
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

if [ ! -x /usr/bin/time ]; then
  say "installing GNU time (for peak RSS)"
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time </dev/null >/dev/null
fi

# set_files SET: the releases of SET in order (wheels by their .zip copies).
set_files() { find "$corpus/$1" -type f ! -name '*.whl' | sort; }

declare -A up down stored original rss
for set in $sets; do
  mapfile -t files < <(set_files "$set")
  [ ${#files[@]} -gt 0 ] || { say "no files in $corpus/$set"; exit 1; }
  for tool in $tools; do
    say "$set: $tool"
    bucket=bench-$tool-$set-$$
    "$ours" mb "s3://$bucket" >/dev/null
    : >"$work/rss"
    t0=$(now)
    for f in "${files[@]}"; do
      run "$tool" cp "$f" "s3://$bucket/$set/$(basename "$f")"
    done
    up[$tool.$set]=$(elapsed "$t0")
    mkdir -p "$work/$tool-$set"
    t0=$(now)
    for f in "${files[@]}"; do
      run "$tool" cp "s3://$bucket/$set/$(basename "$f")" "$work/$tool-$set/$(basename "$f")"
    done
    down[$tool.$set]=$(elapsed "$t0")
    for f in "${files[@]}"; do
      cmp "$f" "$work/$tool-$set/$(basename "$f")" || { say "$tool: $(basename "$f") differs"; exit 1; }
    done
    rss[$tool.$set]=$(sort -n "$work/rss" | tail -n 1)
    json=$("$ours" stats --json "s3://$bucket")
    stored[$tool.$set]=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
    original[$tool.$set]=$(cat "${files[@]}" | wc -c)
    "$ours" rb --force "s3://$bucket" >/dev/null
    rm -rf "${work:?}/$tool-$set"
  done
done

printf '\n%-14s %-10s %5s %9s %7s %10s %7s %9s %13s %7s\n' set tool files "upload s" "/file" "download s" "/file" \
  "peak RSS" "stored bytes" "stored"
for set in $sets; do
  n=$(set_files "$set" | wc -l)
  for tool in $tools; do
    k=$tool.$set
    awk -v s="$set" -v t="$tool" -v n="$n" -v u="${up[$k]}" -v d="${down[$k]}" -v r="${rss[$k]}" \
      -v st="${stored[$k]}" -v o="${original[$k]}" 'BEGIN {
      printf "%-14s %-10s %5d %9.2f %7.2f %10.2f %7.2f %8.0fM %13d %6.1f%%\n", s, t, n, u, u / n, d, d / n,
        r / 1024, st, 100 * st / o }'
  done
done
if [[ " $tools " == *" python "* ]]; then
  printf '\nPython/ours per set (above 1: ours is faster or smaller)\n'
  for set in $sets; do
    for tool in $tools; do
      [ "$tool" = python ] && continue
      k=$tool.$set
      awk -v s="$set" -v t="$tool" -v pu="${up[python.$set]}" -v ou="${up[$k]}" \
        -v pd="${down[python.$set]}" -v od="${down[$k]}" -v pr="${rss[python.$set]}" \
        -v or="${rss[$k]}" -v ps="${stored[python.$set]}" -v os="${stored[$k]}" 'BEGIN {
        printf "%-14s %-10s upload %5.2fx  download %5.2fx  peak RSS %4.1fx  stored %5.2fx\n",
          s, t, pu / ou, pd / od, pr / or, ps / os }'
    done
  done
fi
printf '\nCompact expansion and restore throughput (first file of each set)\n'
for set in $sets; do
  "$throughput" "$(set_files "$set" | head -n 1)"
done
