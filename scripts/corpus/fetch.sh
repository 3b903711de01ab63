#!/usr/bin/env bash
# Downloads the test corpus listed in MANIFEST (beside this script): consecutive releases of
# PyPI wheels, PyPI sdists and npm packages, real versioned binaries for the end-to-end tests
# and benchmarks.
#
# Usage: scripts/corpus/fetch.sh [DEST]
#   DEST defaults to $DG_CORPUS, else $HOME/.cache/deltaglider-corpus.
#   Files land in DEST/<set>/<file> and each must match its SHA-256 from MANIFEST. Files
#   already there with the right hash are not fetched again. Next to every wheel a .zip twin
#   is made (a hard link, else a copy), botocore-1.44.1-py3-none-any.zip, because .whl is not
#   an extension deltaglider stores as a delta while .zip is.
#   DG_CORPUS_SETS (space-separated set names) and DG_CORPUS_LIMIT (first N files of each
#   set) fetch a part of it, as the quickstart does.
#   On success the absolute DEST is the only thing printed on stdout:
#     export DG_CORPUS=$(scripts/corpus/fetch.sh)
#
# Wheels and sdists download with pip (`pip download --require-hashes`), from the first of
# these that has it: $DG_CORPUS_PYTHON, the test venv
# (${DG_PY_VENV:-<repo>/target/py-venv}/bin/python), python3. npm packages are the registry's
# own files (registry.npmjs.org/<name>/-/<name>-<version>.tgz, what `npm pack` fetches),
# downloaded with curl. Every file is checked against MANIFEST before it is moved into place.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
manifest=$here/MANIFEST
dest=${1:-${DG_CORPUS:-$HOME/.cache/deltaglider-corpus}}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

say() { printf 'corpus: %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# twin WHEEL: WHEEL's .zip twin, linked or copied
twin() {
  local whl=$1 zip=${1%.whl}.zip
  [ "$whl" -ef "$zip" ] && return 0
  rm -f "$zip"
  ln "$whl" "$zip" 2>/dev/null || cp "$whl" "$zip"
}

pick_python() {
  local py
  for py in "${DG_CORPUS_PYTHON:-}" "${DG_PY_VENV:-$root/target/py-venv}/bin/python" python3; do
    [ -n "$py" ] || continue
    if "$py" -m pip --version >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  say "ERROR: no python with pip found (run scripts/install-deps.sh, or set DG_CORPUS_PYTHON)"
  return 1
}

# Pass 1: keep what is already there; list what is missing or damaged.
todo=()
total=0
declare -A per_set=()
while read -r want set file; do
  case "$want" in '' | \#*) continue ;; esac
  if [ -n "${DG_CORPUS_SETS:-}" ] && [[ " $DG_CORPUS_SETS " != *" $set "* ]]; then continue; fi
  per_set[$set]=$((${per_set[$set]:-0} + 1))
  if [ -n "${DG_CORPUS_LIMIT:-}" ] && [ "${per_set[$set]}" -gt "$DG_CORPUS_LIMIT" ]; then continue; fi
  total=$((total + 1))
  out=$dest/$set/$file
  if [ -f "$out" ] && [ "$(sha "$out")" = "$want" ]; then
    case "$file" in *.whl) twin "$out" ;; esac
  else
    todo+=("$want $set $file")
  fi
done <"$manifest"

# Pass 2: download each missing file with pip (which checks the hash too) into a scratch
# dir, check the hash again, and only then move it into place.
fail=0
[ ${#todo[@]} -eq 0 ] || { py=$(pick_python) && say "downloading ${#todo[@]} file(s) with $py -m pip"; }
# fetch_url URL OUT: the registry's file, as it is
fetch_url() {
  curl -fsSL --retry 3 -o "$2" "$1"
}

for item in "${todo[@]}"; do
  read -r want set file <<<"$item"
  tmp=$dest/$set/.download
  rm -rf "$tmp"
  mkdir -p "$tmp"
  got=ok
  case "$file" in
  *.whl)
    # wheel file name: <name>-<version>-<python tag>-<abi tag>-<platform tag>.whl
    name=${file%%-*}
    rest=${file#*-}
    version=${rest%%-*}
    echo "$name==$version --hash=sha256:$want" >"$tmp/requirements.txt"
    "$py" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
      --only-binary=:all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2 || got=
    ;;
  *.tar.gz)
    # sdist: <name>-<version>.tar.gz
    base=${file%.tar.gz}
    echo "${base%-*}==${base##*-} --hash=sha256:$want" >"$tmp/requirements.txt"
    "$py" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
      --no-binary=:all: --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2 || got=
    ;;
  *.tgz)
    # npm package: <name>-<version>.tgz
    base=${file%.tgz}
    name=${base%-*}
    fetch_url "https://registry.npmjs.org/$name/-/$file" "$tmp/$file" || got=
    ;;
  *)
    say "ERROR: MANIFEST lists $set/$file, of a kind this script cannot fetch"
    got=
    ;;
  esac
  if [ -z "$got" ]; then
    say "ERROR: could not download $set/$file"
    fail=1
  elif [ ! -f "$tmp/$file" ]; then
    say "ERROR: the download did not produce $set/$file"
    fail=1
  elif [ "$(sha "$tmp/$file")" != "$want" ]; then
    say "ERROR: $set/$file has SHA-256 $(sha "$tmp/$file"), MANIFEST says $want"
    fail=1
  else
    mv -f "$tmp/$file" "$dest/$set/$file"
    case "$file" in *.whl) twin "$dest/$set/$file" ;; esac
  fi
  rm -rf "$tmp"
done

if [ "$fail" -ne 0 ]; then
  say "the corpus in $dest is incomplete"
  exit 1
fi
say "$total files verified in $dest (${#todo[@]} downloaded), each wheel with a .zip twin"
echo "$dest"
