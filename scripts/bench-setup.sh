# Sourced by the S3 benchmarks (scripts/bench-list.sh, scripts/bench-tree.sh) after they set
# `name`: installs what they need, builds the release binary, starts the project's S3 server
# unless one is running (and then stops it at exit, never one it did not start), and makes a
# work directory and a bucket that are removed at exit. Sets root, dg, aws, work, bucket.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export DG_PY_VENV=${DG_PY_VENV:-$root/target/py-venv}
say() { printf 'bench-%s: %s\n' "$name" "$*" >&2; }

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
work=$(mktemp -d "${TMPDIR:-/tmp}/dg-bench-$name.XXXXXX")
bucket=dg-bench-$name-$$
aws=$DG_PY_VENV/bin/aws
cleanup() {
  "$dg" rb --force "s3://$bucket" >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ -n "$started" ]; then scripts/s3-server.sh stop || true; fi
}
trap cleanup EXIT
