#!/usr/bin/env bash
# Throughput of `deltaglider serve` against its backend: the same `aws s3 cp` PUTs and GETs
# (the aws CLI of the venv of scripts/install-deps.sh, one process per file, files in order,
# the same client settings), once straight to the project's S3 server (scripts/s3-server.sh)
# and once through `deltaglider serve --listen 127.0.0.1:0` over that same server. Prints, per
# data set, the wall times, MB/s (10^6 bytes) and the serve/direct ratios measured in this
# run, the bytes each way left in its backend bucket (`aws s3 ls --recursive --summarize`
# on the backend: the files, or the deltas and references) and the peak RSS (VmHWM) of the
# serve process. Every GET is compared byte for byte with its file.
# Data sets:
#   botocore   the corpus' botocore wheels as .zip (scripts/corpus/fetch.sh): consecutive
#              releases, stored as deltas through serve
#   rand-4m    16 files of 4 MiB random bytes (.bin): stored whole, the proxy's overhead
#   rand-256m  one 256 MiB random file (.bin): multipart both ways (the CLI's 8 MiB parts)
#   scripts/bench-serve.sh          (installs what it needs; starts the S3 server if it is
#                                    not running and stops it afterwards, never one it did
#                                    not start)
# Settings: DG_BENCH_SERVE_SETS (default "botocore rand-4m rand-256m"), DG_PY_VENV (as
# scripts/install-deps.sh), CARGO_TARGET_DIR (where the release build goes, as for cargo).
# Client settings, both ways: AWS_REQUEST_CHECKSUM_CALCULATION and
# AWS_RESPONSE_CHECKSUM_VALIDATION = when_required (Ceph 16 refuses the SDKs' default CRC
# trailers, see scripts/s3-server.sh), a private empty HOME and config, the CLI's default
# transfer settings (8 MiB multipart threshold and parts, 10 requests at once).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export DG_PY_VENV=${DG_PY_VENV:-$root/target/py-venv}
sets=${DG_BENCH_SERVE_SETS:-botocore rand-4m rand-256m}
say() { printf 'bench-serve: %s\n' "$*" >&2; }

for set in $sets; do
  case "$set" in botocore | rand-4m | rand-256m) ;; *)
    say "unknown set '$set' (botocore, rand-4m, rand-256m)"
    exit 2
    ;;
  esac
done

scripts/install-deps.sh
if [[ " $sets " == *" botocore "* ]]; then
  corpus=$(DG_CORPUS_SETS=botocore scripts/corpus/fetch.sh)
fi
started=
if ! scripts/s3-server.sh status 2>/dev/null; then
  started=1
fi
eval "$(scripts/s3-server.sh start)"
backend=$AWS_ENDPOINT_URL
backend_key=$AWS_ACCESS_KEY_ID
backend_secret=$AWS_SECRET_ACCESS_KEY
region=$AWS_REGION
work=$(mktemp -d "${TMPDIR:-/tmp}/dg-bench-serve.XXXXXX")
serve_pid=
serve_failed=
buckets=()

aws=$DG_PY_VENV/bin/aws
mkdir -p "$work/aws-home"
# client ENDPOINT KEY SECRET ARGS...: the aws CLI with nothing from the environment's AWS
# settings but these (and the same settings for every run).
client() {
  local endpoint=$1 key=$2 secret=$3
  shift 3
  env -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_PROFILE -u AWS_SESSION_TOKEN \
    -u AWS_CA_BUNDLE -u AWS_REGION \
    AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_DEFAULT_REGION="$region" \
    AWS_CONFIG_FILE="$work/aws-home/config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-home/credentials" \
    HOME="$work/aws-home" AWS_EC2_METADATA_DISABLED=true \
    AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required \
    "$aws" --endpoint-url "$endpoint" "$@"
}
direct() { client "$backend" "$backend_key" "$backend_secret" "$@"; }

stop_serve() {
  [ -n "$serve_pid" ] || return 0
  local rc=0
  kill -TERM "$serve_pid" 2>/dev/null || true
  wait "$serve_pid" || rc=$?
  serve_pid=
  [ "$rc" -eq 0 ] || say "serve exited with status $rc (log: $work/serve.err)"
  return "$rc"
}

drop_bucket() {
  direct s3 rb --force "s3://$1" >/dev/null 2>&1 || say "could not delete bucket $1"
  local b keep=()
  for b in "${buckets[@]}"; do [ "$b" = "$1" ] || keep+=("$b"); done
  buckets=("${keep[@]}")
}

cleanup() {
  stop_serve || true
  local b
  for b in "${buckets[@]}"; do direct s3 rb --force "s3://$b" >/dev/null 2>&1 || true; done
  rm -rf "$work"
  if [ -n "$started" ]; then scripts/s3-server.sh stop || true; fi
}
trap cleanup EXIT

say "building (cargo build --release --bin deltaglider)"
cargo build --release --quiet --bin deltaglider
dg=${CARGO_TARGET_DIR:-$root/target}/release/deltaglider
[[ "$dg" = /* ]] || dg=$root/$dg

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# start_serve: `deltaglider serve` on a free port over the backend; sets serve_pid and
# serve_url.
serve_key=bench-serve
serve_secret=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
start_serve() {
  mkdir -p "$work/spool"
  : >"$work/serve.out"
  env -u DG_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_PROFILE \
    DG_SERVE_ACCESS_KEY_ID="$serve_key" DG_SERVE_SECRET_ACCESS_KEY="$serve_secret" \
    AWS_EC2_METADATA_DISABLED=true DG_DISABLE_EC2_DETECTION=1 \
    "$dg" serve --listen 127.0.0.1:0 --spool-dir "$work/spool" \
    </dev/null >"$work/serve.out" 2>>"$work/serve.err" &
  serve_pid=$!
  local i
  for i in $(seq 300); do
    serve_url=$(sed -n 's/^listening on //p' "$work/serve.out")
    [ -n "$serve_url" ] && return 0
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
  done
  say "serve did not start:"
  tail -n 20 "$work/serve.err" >&2
  exit 1
}
via_serve() { client "$serve_url" "$serve_key" "$serve_secret" "$@"; }

# stored BUCKET: the bytes in BUCKET on the backend, as stored.
stored() { direct s3 ls --recursive --summarize "s3://$1" | sed -n 's/^ *Total Size: *//p'; }

# make_set SET: writes the list of SET's files (in upload order) to $work/SET.files.
make_set() {
  local set=$1 i
  case "$set" in
    botocore) find "$corpus/botocore" -type f -name '*.zip' | sort >"$work/$set.files" ;;
    rand-4m)
      mkdir -p "$work/data/$set"
      for i in $(seq -w 1 16); do head -c 4194304 /dev/urandom >"$work/data/$set/random-$i.bin"; done
      find "$work/data/$set" -type f | sort >"$work/$set.files"
      ;;
    rand-256m)
      mkdir -p "$work/data/$set"
      head -c 268435456 /dev/urandom >"$work/data/$set/random-256m.bin"
      find "$work/data/$set" -type f | sort >"$work/$set.files"
      ;;
  esac
}

# transfer WAY SET BUCKET: PUT every file of SET into BUCKET, then GET each back and compare
# it; records the wall times in put[WAY.SET] and get[WAY.SET].
declare -A put get size nfiles stored_bytes rss
transfer() {
  local way=$1 set=$2 bucket=$3 f t0 out=$work/get-$1
  local -a files
  mapfile -t files <"$work/$set.files"
  "$way" s3 mb "s3://$bucket" >/dev/null
  t0=$(now)
  for f in "${files[@]}"; do
    "$way" s3 cp --only-show-errors "$f" "s3://$bucket/$set/$(basename "$f")" >/dev/null
  done
  put[$way.$set]=$(elapsed "$t0")
  mkdir -p "$out"
  t0=$(now)
  for f in "${files[@]}"; do
    "$way" s3 cp --only-show-errors "s3://$bucket/$set/$(basename "$f")" "$out/$(basename "$f")" >/dev/null
  done
  get[$way.$set]=$(elapsed "$t0")
  for f in "${files[@]}"; do
    cmp "$f" "$out/$(basename "$f")" || { say "$way: $(basename "$f") differs after GET"; exit 1; }
  done
  rm -rf "$out"
}

t0=$(now)
for i in 1 2 3; do direct --version >/dev/null 2>&1; done
startup=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", (b - a) / 3 }')

for set in $sets; do
  make_set "$set"
  mapfile -t files <"$work/$set.files"
  [ ${#files[@]} -gt 0 ] || { say "no files for $set"; exit 1; }
  nfiles[$set]=${#files[@]}
  size[$set]=$(cat "${files[@]}" | wc -c) # also brings them into the page cache for both ways

  say "$set: direct to $backend"
  bucket=bench-serve-direct-$set-$$
  buckets+=("$bucket")
  transfer direct "$set" "$bucket"
  stored_bytes[direct.$set]=$(stored "$bucket")
  drop_bucket "$bucket"

  start_serve
  say "$set: through serve at $serve_url"
  bucket=bench-serve-serve-$set-$$
  buckets+=("$bucket")
  transfer via_serve "$set" "$bucket"
  stored_bytes[via_serve.$set]=$(stored "$bucket")
  rss[$set]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$serve_pid/status")
  stop_serve || serve_failed=1
  drop_bucket "$bucket"
  rm -rf "${work:?}/data"
done

if [ -s "$work/serve.err" ]; then
  say "serve wrote on stderr (last lines):"
  tail -n 20 "$work/serve.err" >&2
fi

printf '\nserve/direct: above 1 means serve is slower (times) or stores more (bytes); MB = 10^6 bytes\n'
printf 'aws CLI process start-up (aws --version): %.2f s, paid once per file both ways\n' "$startup"
printf '\n%-10s %5s %11s %-3s %9s %8s %9s %8s %8s\n' set files bytes op "direct s" "MB/s" "serve s" "MB/s" "ratio"
for set in $sets; do
  for op in PUT GET; do
    if [ "$op" = PUT ]; then d=${put[direct.$set]} s=${put[via_serve.$set]}; else d=${get[direct.$set]} s=${get[via_serve.$set]}; fi
    awk -v set="$set" -v n="${nfiles[$set]}" -v b="${size[$set]}" -v op="$op" -v d="$d" -v s="$s" 'BEGIN {
      printf "%-10s %5d %11d %-3s %9.2f %8.1f %9.2f %8.1f %7.2fx\n", set, n, b, op, d, b / 1e6 / d, s, b / 1e6 / s, s / d }'
  done
done
printf '\n%-10s %11s %13s %13s %8s %15s\n' set bytes "stored direct" "stored serve" "ratio" "serve peak RSS"
for set in $sets; do
  awk -v set="$set" -v b="${size[$set]}" -v d="${stored_bytes[direct.$set]}" -v s="${stored_bytes[via_serve.$set]}" \
    -v r="${rss[$set]}" 'BEGIN {
    printf "%-10s %11d %13d %13d %7.3fx %14.0fM\n", set, b, d, s, s / d, r / 1024 }'
done
if [ -n "$serve_failed" ]; then
  say "serve did not exit cleanly (see above)"
  exit 1
fi
