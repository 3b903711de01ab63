#!/usr/bin/env bash
# Installs what deltaglider's tests need on a Debian 12 machine, and nothing twice:
#   * Debian packages: xdelta3 (the reference VCDIFF tool), gzip and xz-utils (the tests
#     decode xdelta3 deltas of compressed files through them), the Ceph packages behind
#     scripts/s3-server.sh (radosgw ceph-mon ceph-osd), curl, and rclone (a third S3 client
#     for the `serve` tests). apt-get runs (with one
#     `apt-get update` first) only when one of them is missing.
#   * A Python virtualenv at ${DG_PY_VENV:-<repo>/target/py-venv} holding the Python
#     DeltaGlider tool, deltaglider==6.2.0 from PyPI (with boto3), which the integration
#     tests use as a second, independent implementation: <venv>/bin/deltaglider; and the
#     aws CLI (awscli from PyPI), a real S3 client for the `serve` tests: <venv>/bin/aws.
# Usage: scripts/install-deps.sh        (as root, or with sudo available for apt-get)
# Settings: DG_PY_VENV (venv path), DG_PYTHON3 (interpreter, default python3),
#   DG_PY_MODE=target (skip venv and use `pip install --target`; normally only a fallback).
# Messages go to stderr; the last one is a one-line summary of the versions in use.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
VENV=${DG_PY_VENV:-$root/target/py-venv}
PY=${DG_PYTHON3:-python3}
DG_PY_VERSION=6.2.0
APT_PKGS=(xdelta3 radosgw ceph-mon ceph-osd curl gzip xz-utils rclone)
LOG=${TMPDIR:-/tmp}/deltaglider-install-deps.log

say() { printf 'install-deps: %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  [ -s "$LOG" ] && { tail -n 25 "$LOG" >&2; say "full log: $LOG"; }
  exit 1
}

# --- Debian packages ------------------------------------------------------------------

apt_updated=
apt_install() {
  [ $# -gt 0 ] || return 0
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  # another apt/dpkg run (an unattended upgrade, a parallel job) holds its locks for a while:
  # wait for it up to 5 minutes rather than fail at once
  local wait=(-o DPkg::Lock::Timeout=300) tries=0
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    until $sudo apt-get "${wait[@]}" update -qq </dev/null >>"$LOG" 2>&1; do
      tries=$((tries + 1))
      if [ "$tries" -ge 60 ] || ! tail -n 5 "$LOG" | grep -q 'Could not get lock'; then
        die "apt-get update failed"
      fi
      sleep 5
    done
    apt_updated=1
  fi
  say "apt-get install $*"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y -qq \
    --no-install-recommends "$@" </dev/null >>"$LOG" 2>&1 || die "apt-get install $* failed"
}

installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

: >"$LOG"
missing=()
for p in "${APT_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  t0=$SECONDS
  apt_install "${missing[@]}"
  say "Debian packages installed in $((SECONDS - t0))s"
fi

# --- Python DeltaGlider ---------------------------------------------------------------

# venv_ok: the venv (or the --target fallback) runs and holds the wanted deltaglider.
venv_ok() {
  [ -x "$VENV/bin/deltaglider" ] && [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/aws" ] &&
    "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('deltaglider') != '$DG_PY_VERSION')" 2>/dev/null
}

pip_args=(install --quiet --disable-pip-version-check --no-input "deltaglider==$DG_PY_VERSION" awscli)

# make_venv: a normal virtualenv; Debian's own python3 needs python3-venv for ensurepip.
make_venv() {
  if ! "$PY" -m venv "$VENV" >>"$LOG" 2>&1; then
    rm -rf "$VENV"
    if [ "$("$PY" -c 'import sys; print(sys.prefix)' 2>/dev/null)" = /usr ] && command -v apt-get >/dev/null; then
      apt_install python3-venv
      "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || { rm -rf "$VENV"; return 1; }
    else
      return 1
    fi
  fi
  "$VENV/bin/python" -m pip "${pip_args[@]}" >>"$LOG" 2>&1 || die "pip install deltaglider==$DG_PY_VERSION failed"
}

# make_target: no venv possible; install into $VENV/lib with the interpreter's own pip and
# put small wrappers at the places a venv would have them ($VENV/bin/python, deltaglider).
make_target() {
  local py
  py=$(command -v "$PY")
  mkdir -p "$VENV/bin"
  PIP_BREAK_SYSTEM_PACKAGES=1 "$py" -m pip "${pip_args[@]}" --target "$VENV/lib" >>"$LOG" 2>&1 ||
    die "pip install --target failed (does '$PY -m pip' work?)"
  cat >"$VENV/bin/python" <<EOF
#!/bin/sh
PYTHONPATH="$VENV/lib\${PYTHONPATH:+:\$PYTHONPATH}" exec "$py" "\$@"
EOF
  cat >"$VENV/bin/deltaglider" <<EOF
#!/bin/sh
exec "$VENV/bin/python" "$VENV/lib/bin/deltaglider" "\$@"
EOF
  cat >"$VENV/bin/aws" <<EOF
#!/bin/sh
exec "$VENV/bin/python" "$VENV/lib/bin/aws" "\$@"
EOF
  chmod +x "$VENV/bin/python" "$VENV/bin/deltaglider" "$VENV/bin/aws"
}

if ! venv_ok; then
  t0=$SECONDS
  command -v "$PY" >/dev/null || die "$PY not found (set DG_PYTHON3)"
  say "creating $VENV with deltaglider==$DG_PY_VERSION from PyPI"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  if [ "${DG_PY_MODE:-venv}" = target ] || ! make_venv; then
    [ "${DG_PY_MODE:-venv}" = target ] || say "python venv unavailable; falling back to pip install --target"
    rm -rf "$VENV"
    make_target
  fi
  venv_ok || die "$VENV/bin/deltaglider does not work after installing"
  say "Python DeltaGlider installed in $((SECONDS - t0))s"
fi

# --- summary --------------------------------------------------------------------------

ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed 's/^[0-9]*://; s/[-+].*//'; }
py_versions=$("$VENV/bin/python" -c "
import sys, importlib.metadata as m
print('python %d.%d.%d, deltaglider %s, boto3 %s, awscli %s' % (*sys.version_info[:3], m.version('deltaglider'), m.version('boto3'), m.version('awscli')))")
say "ready: xdelta3 $(ver xdelta3), ceph $(ver radosgw), $py_versions ($VENV/bin/deltaglider)"
