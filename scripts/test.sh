#!/usr/bin/env bash
# The project's one test command, the same for developers and CI:
#   scripts/test.sh [ARGS...]     ARGS go to both `cargo test` runs (a test name filter, say)
# It installs what the tests need (scripts/install-deps.sh), fetches the test corpus
# (scripts/corpus/fetch.sh), starts a local S3 server (scripts/s3-server.sh) and then runs
#   cargo fmt --all -- --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo test --workspace --all-targets --no-fail-fast [ARGS]
#   cargo test -p deltaglider --lib --no-default-features --no-fail-fast [ARGS]   (no S3 backend)
#   cargo test --workspace --doc --no-fail-fast [ARGS]
#   scripts/fuzz.sh ${DG_FUZZ_SECONDS:-15}         (each fuzz target, from fuzz/seeds/)
# with the integration tests required to run (DG_REQUIRE_S3=1: no skipping for want of a
# server). The S3 server is stopped on the way out, whatever happens; DG_S3_KEEP=1 leaves
# it running. Every step runs even after one fails; the exit status is non-zero if any did.
# Section headers and the summary go to stderr. Each step's output is also kept in
# target/test-logs/, and the summary repeats, for each failed step, the lines that say why
# (panics, compiler errors, a full disk) with the free space, so that the end of the output
# alone is enough to see what went wrong.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export DG_PY_VENV=${DG_PY_VENV:-$root/target/py-venv}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-$([ -t 2 ] && echo auto || echo never)}

# CI builds once from clean: incremental state would only add gigabytes to the disk.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
fi

t_start=$SECONDS
section() { printf '\n===== %s  [%ds]\n' "$*" $((SECONDS - t_start)) >&2; }

server_started=
stop_server() {
  if [ -n "$server_started" ] && [ "${DG_S3_KEEP:-0}" != 1 ]; then
    section "stopping the S3 server"
    scripts/s3-server.sh stop || true
  fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "installing dependencies (scripts/install-deps.sh)"
scripts/install-deps.sh

section "fetching the test corpus (scripts/corpus/fetch.sh)"
# The tests read the wheel sets; the gzip-family sets are for the benchmarks.
DG_CORPUS=$(DG_CORPUS_SETS=${DG_CORPUS_SETS:-botocore ansible} scripts/corpus/fetch.sh)
export DG_CORPUS

section "starting the S3 server (scripts/s3-server.sh)"
server_started=1
s3_env=$(scripts/s3-server.sh start)
eval "$s3_env"
export DG_PYTHON_DELTAGLIDER=$DG_PY_VENV/bin/deltaglider
export DG_REQUIRE_S3=1
# nothing here runs on EC2: do not let the SDKs probe for instance metadata
export AWS_EC2_METADATA_DISABLED=true
{
  echo "test environment:"
  printf '  %s\n' "DG_CORPUS=$DG_CORPUS" "DG_PYTHON_DELTAGLIDER=$DG_PYTHON_DELTAGLIDER" \
    "DG_REQUIRE_S3=$DG_REQUIRE_S3" "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
} >&2

logs=$root/target/test-logs
rm -rf "$logs"
mkdir -p "$logs"
free_space() {
  df -h "$root" "$HOME" /tmp 2>/dev/null | awk 'NR == 1 || !seen[$0]++' || true
}
section "free disk space"
free_space >&2

failed=()
steps_run=0
step() {
  local name=$1 t0=$SECONDS log status
  shift
  section "$name"
  steps_run=$((steps_run + 1))
  log=$logs/$(printf '%02d' "$steps_run")-${name//[^A-Za-z0-9]/_}.log
  set +e
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -eq 0 ]; then
    printf -- '----- %s: ok (%ds)\n' "$name" $((SECONDS - t0)) >&2
  else
    printf -- '----- %s: FAILED (exit %d, %ds)\n' "$name" "$status" $((SECONDS - t0)) >&2
    failed+=("$name|$log")
  fi
}

# The lines of a failed step's log that say why it failed, at most a screenful.
why_failed() {
  local log=$1
  {
    grep -E -A3 'panicked at|^error(\[E[0-9]+\])?:|^---- .* stdout ----|No space left|[Dd]isk quota|Killed|out of memory|^==[0-9]+==ERROR' "$log" |
      grep -v -E '^\s*(\||[0-9]+:|at )' | head -n 40
    echo "  last lines:"
    tail -n 12 "$log" | sed 's/^/  /'
  } || true
}

has_lib() {
  cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"kind":\["lib"\]'
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test --all-targets" cargo test --workspace --all-targets --no-fail-fast "$@"
# The library's unit tests again without the S3 backend (the cargo feature `s3`), the way
# the fuzz targets and local-only users build it.
step "cargo test --lib --no-default-features" cargo test -p deltaglider --lib --no-default-features --no-fail-fast "$@"
run_examples() {
  local e
  for e in crates/deltaglider/examples/*.rs; do
    e=$(basename "$e" .rs)
    echo "example $e:" >&2
    cargo run --quiet -p deltaglider --example "$e" || return 1
  done
}
step "examples (run against the local store)" run_examples
if has_lib; then
  step "cargo test --doc" cargo test --workspace --doc --no-fail-fast "$@"
else
  section "cargo test --doc: skipped (no library target)"
fi
step "fuzz (short)" scripts/fuzz.sh "${DG_FUZZ_SECONDS:-15}"

section "summary"
if [ ${#failed[@]} -gt 0 ]; then
  for entry in "${failed[@]}"; do
    printf '\n--- why "%s" failed (full log: %s)\n' "${entry%%|*}" "${entry#*|}" >&2
    why_failed "${entry#*|}" >&2
  done
  echo >&2
  free_space >&2
  printf 'FAILED: %s\n' "${failed[@]%%|*}" >&2
  exit 1
fi
echo "all checks passed in $((SECONDS - t_start))s" >&2
