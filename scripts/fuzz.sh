#!/usr/bin/env bash
# Short fuzzing run of every cargo-fuzz target in fuzz/ (the parsers of bytes from storage):
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        (default 20)
# Installs cargo-fuzz if it is missing. cargo-fuzz needs nightly-only rustc flags
# (-Zsanitizer=address, ...); RUSTC_BOOTSTRAP=1 makes the stable toolchain accept them.
# Each target starts from its committed seeds, fuzz/seeds/<target>/, copied into a fresh
# working corpus, fuzz/corpus/<target>/ (the seeds are never written to), with
# fuzz/seeds/<target>.dict as its dictionary if there is one. libFuzzer's output goes to
# fuzz/target/fuzz-logs/<target>.log; on a crash, timeout or out-of-memory the panic or
# sanitizer report is shown with the input that caused it (kept in fuzz/artifacts/<target>/).
# The exit status is non-zero if any target failed. Section headers and summaries go to stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

seconds=${1:-20}
case $seconds in
'' | *[!0-9]*)
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
  ;;
esac

export RUSTC_BOOTSTRAP=1
# No LeakSanitizer at all, at exit included (-detect_leaks=0 below only turns off the
# per-input check): a decoder's scoped thread that was joined can still hold its 48-byte
# `Thread` and glibc's 32-byte TLS registration when the process exits, which LeakSanitizer
# reports as a leak of the last input (seen as a "crash" on the empty input).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-$([ -t 2 ] && echo auto || echo never)}

t_start=$SECONDS
section() { printf '\n===== fuzz: %s  [%ds]\n' "$*" $((SECONDS - t_start)) >&2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  section "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked --quiet
fi

logs=target/fuzz-logs
mkdir -p "$logs"
# The sanitizer build of the crate and its dependencies takes minutes; keep it outside the
# clone so that later runs on the same machine are incremental.
target_dir=${DG_FUZZ_TARGET_DIR:-$HOME/.cache/deltaglider/fuzz-target}
mkdir -p "$target_dir"

section "building the targets (cargo fuzz build)"
if ! cargo fuzz build --target-dir "$target_dir" >"$logs/build.log" 2>&1; then
  {
    # The compiler's errors (or a full disk), then how the build ended.
    grep -E -A6 '^error|No space left|Killed' "$logs/build.log" | head -n 60 || true
    echo "..."
    tail -n 15 "$logs/build.log"
    echo "fuzz: the build failed; full log: $root/fuzz/$logs/build.log"
  } >&2
  exit 1
fi

mapfile -t targets < <(cargo fuzz list)
failed=()
for target in "${targets[@]}"; do
  section "$target (${seconds}s)"
  corpus=corpus/$target
  artifacts=artifacts/$target
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "seeds/$target" ]; then
    cp -R "seeds/$target/." "$corpus/"
  fi
  # -detect_leaks=0: the decoder parses on a scoped thread, and LeakSanitizer's per-input
  # check can run before that joined thread's TLS destructors have freed glibc's 32-byte
  # registration, reporting a leak that is not one. Unbounded allocation is still caught by
  # -rss_limit_mb and -malloc_limit_mb (which defaults to the RSS limit).
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -detect_leaks=0 -print_final_stats=1)
  if [ -f "seeds/$target.dict" ]; then
    args+=(-dict="seeds/$target.dict")
  fi
  log=$logs/$target.log
  status=0
  cargo fuzz run --target-dir "$target_dir" "$target" "$corpus" -- "${args[@]}" >"$log" 2>&1 || status=$?
  mapfile -t found < <(find "$artifacts" -type f | sort)
  if [ "$status" -eq 0 ] && [ ${#found[@]} -eq 0 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    printf -- '----- %s: ok, %s runs, %s exec/s, corpus %d inputs\n' \
      "$target" "${runs:-?}" "${rate:-?}" "$(find "$corpus" -type f | wc -l)" >&2
    continue
  fi
  failed+=("$target")
  {
    # The panic message or sanitizer report, then how libFuzzer ended.
    grep -E -A2 'panicked at|^==[0-9]+==ERROR|ERROR: libFuzzer' "$log" | head -n 30 || true
    grep -E '^(SUMMARY|Base64):|Test unit written' "$log" || true
    printf -- '----- %s: FAILED (exit %d); full log: %s\n' "$target" "$status" "$root/fuzz/$log"
    for f in "${found[@]}"; do
      printf 'artifact: %s\n' "$root/fuzz/$f"
      od -An -tx1 -v "$f" | head -n 16
      printf 'reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run %s %s   (in %s/fuzz)\n' "$target" "$f" "$root"
    done
  } >&2
done

section "summary"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash in ${seconds}s each" >&2
