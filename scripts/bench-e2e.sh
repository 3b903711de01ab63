#!/usr/bin/env bash
# End-to-end benchmark against the project's S3 server (scripts/s3-server.sh): this tool and
# the Python deltaglider 6.2.0, one process per file as CI jobs run them, on the corpus
# (scripts/corpus/fetch.sh: 8 botocore and 4 ansible wheels, as .zip). For each set and tool:
# upload every release into an empty bucket, download every one back and compare it byte for
# byte; prints the wall times, the peak RSS of one process, the bytes stored, and the
# Python/ours ratios measured in this run.
#   scripts/bench-e2e.sh            (installs what it needs; starts the server if it is not
#                                    running and stops it afterwards)
# Settings: DG_BENCH_SETS (default "botocore ansible"), DG_PY_VENV (as scripts/install-deps.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DG_PY_VENV=${DG_PY_VENV:-$root/target/py-venv}
sets=${DG_BENCH_SETS:-botocore ansible}
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
ours=$root/target/release/deltaglider
python=$DG_PY_VENV/bin/deltaglider
export AWS_EC2_METADATA_DISABLED=true DG_DISABLE_EC2_DETECTION=1 DG_SUPPRESS_DEPRECATION=1

# run TOOL ARGS...: one invocation; appends its peak RSS (KiB) to $work/rss.
run() {
  local tool=$1
  shift
  local exe=$ours
  [ "$tool" = python ] && exe=$python
  if [ "$tool" = python ]; then
    # its metrics adapter logs every operation to stderr; failures still exit non-zero
    DG_LOG_LEVEL=ERROR /usr/bin/time -f '%M' -a -o "$work/rss" "$exe" "$@" >/dev/null 2>&1
  else
    /usr/bin/time -f '%M' -a -o "$work/rss" "$exe" "$@" >/dev/null
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

declare -A up down stored original rss
for set in $sets; do
  mapfile -t files < <(find "$corpus/$set" -name '*.zip' | sort)
  [ ${#files[@]} -gt 0 ] || { say "no .zip files in $corpus/$set"; exit 1; }
  for tool in ours python; do
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

printf '\n%-9s %-7s %6s %10s %10s %10s %13s %8s\n' set tool files "upload s" "download s" "peak RSS" "stored bytes" "stored"
for set in $sets; do
  n=$(find "$corpus/$set" -name '*.zip' | wc -l)
  for tool in ours python; do
    k=$tool.$set
    awk -v s="$set" -v t="$tool" -v n="$n" -v u="${up[$k]}" -v d="${down[$k]}" -v r="${rss[$k]}" \
      -v st="${stored[$k]}" -v o="${original[$k]}" 'BEGIN {
      printf "%-9s %-7s %6d %10.2f %10.2f %9.0fM %13d %7.1f%%\n", s, t, n, u, d, r / 1024, st, 100 * st / o }'
  done
  awk -v s="$set" -v pu="${up[python.$set]}" -v ou="${up[ours.$set]}" -v pd="${down[python.$set]}" \
    -v od="${down[ours.$set]}" -v pr="${rss[python.$set]}" -v or="${rss[ours.$set]}" 'BEGIN {
    printf "%-9s python/ours: upload %.1fx, download %.1fx, peak RSS %.1fx\n", s, pu / ou, pd / od, pr / or }'
done
