#!/usr/bin/env bash
# Ceph's s3-tests (https://github.com/ceph/s3-tests) against `deltaglider serve`, on the
# operations serve offers (docs/serve.md): buckets (create, head, delete, list), objects
# (put, get, head, delete, DeleteObjects), ListObjects V1 and V2, ranges, conditional GET and
# HEAD, CopyObject, multipart uploads, presigned URLs, checksums and Content-MD5. Tests of
# what serve does not claim (ACLs, policies, versioning, tagging, lifecycle, encryption,
# object lock, website, CORS, logging, POST object, storage classes, conditional writes,
# GetObjectAttributes, ...) are deselected by marker and by name, as are the tests s3-tests
# marks as failing on AWS itself (fails_on_aws: RGW's own behaviour).
#
# Not part of CI: s3-tests comes from GitHub; check it out yourself and name its directory.
#   scripts/s3-tests.sh /path/to/s3-tests [PYTEST_ARGS...]
# PYTEST_ARGS go after the selection (e.g. `-x`, or `-k NAME`, which replaces the script's
# name selection; the markers still apply).
#
# It makes a Python venv with s3-tests' requirements (DG_S3TESTS_VENV, default
# target/s3tests-venv; reused when its requirements have not changed), builds the binary with
# `cargo build` unless DG_BIN=/path/to/deltaglider is given, writes the s3-tests config and an
# access file (keys for s3-tests' main, alt and tenant users, all read-write) into a temporary
# directory, starts serve on 127.0.0.1 (a free port) over a local store in that directory,
# runs the tests one at a time (DG_S3TESTS_TIMEOUT seconds each, default 60), prints the
# counts and the failures, then stops serve by its PID and removes the temporary directory.
# The pytest log, the JUnit XML and serve's stderr are kept in target/s3-tests/.
#
# If serve exits during the run (it should not), it is started again on the same port, so
# that the remaining tests still say something; each exit is reported at the end, with its
# status (uploads in progress at the time are lost with the process). Exit status: pytest's
# (1 when a test failed), or 3 when serve had to be restarted.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf 's3-tests: %s\n' "$*" >&2; }
[ $# -ge 1 ] || { say "usage: scripts/s3-tests.sh /path/to/s3-tests-checkout [PYTEST_ARGS...]"; exit 2; }
src=$(cd "$1" && pwd)
shift
tests=$src/s3tests/functional/test_s3.py
[ -f "$tests" ] || tests=$src/s3tests_boto3/functional/test_s3.py # older layout
[ -f "$tests" ] || { say "no s3tests/functional/test_s3.py under $src"; exit 2; }
venv=${DG_S3TESTS_VENV:-$root/target/s3tests-venv}
timeout=${DG_S3TESTS_TIMEOUT:-60}
results=$root/target/s3-tests
mkdir -p "$results"

# Deselected by marker: features serve does not offer, and RGW-only behaviour.
markers='not (encryption or sse_s3 or bucket_encryption or bucket_logging
  or bucket_logging_cleanup or fails_without_logging_rollover or lifecycle
  or lifecycle_expiration or lifecycle_transition or cloud_transition or cloud_restore
  or target_by_bucket or bucket_policy or tagging or object_ownership or delete_marker
  or versioning or object_lock or s3website or storage_class or appendobject or iam_user
  or iam_account or conditional_write or fails_on_aws)'
# Deselected by name: the same features in tests without those markers, the canned-ACL
# access matrix (access_bucket_*), GetObjectAttributes, conditional PUTs, usage/location
# (RGW admin and GetBucketLocation).
names='not (acl or policy or version or tagging or tags or lifecycle or sse or encrypt
  or _enc or lock or website or cors or logging or post_object or storage_class
  or public_block or block_public or public_acls or ownership or torrent or usage
  or restore or get_location or append or access_bucket or object_attributes
  or put_object_ifmatch)'
markers=$(tr -s ' \n' '  ' <<<"$markers")
names=$(tr -s ' \n' '  ' <<<"$names")

# The venv: s3-tests' requirements (without tox: pytest runs directly) and pytest-timeout.
reqs=$(grep -v -i '^tox' "$src/requirements.txt"; echo pytest-timeout)
if [ ! -x "$venv/bin/pytest" ] || [ "$(cat "$venv/.s3tests-reqs" 2>/dev/null)" != "$reqs" ]; then
  say "making the venv $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet -r <(printf '%s\n' "$reqs")
  printf '%s' "$reqs" >"$venv/.s3tests-reqs"
fi

if [ -n "${DG_BIN:-}" ]; then
  bin=$DG_BIN
else
  say "building (cargo build)"
  (cd "$root" && cargo build --quiet)
  bin=$root/target/debug/deltaglider
fi
[ -x "$bin" ] || { say "no executable $bin"; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/dg-s3-tests.XXXXXX")
supervisor=
cleanup() {
  touch "$work/stopping"
  local pid
  pid=$(cat "$work/serve.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  if [ -n "$supervisor" ]; then wait "$supervisor" 2>/dev/null || true; fi
  [ -f "$work/serve.err" ] && cp "$work/serve.err" "$results/serve.err"
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -m 700 "$work/store" "$work/spool" "$work/home"

# s3-tests' users (the keys of its s3tests.conf.SAMPLE), all read-write over every bucket.
main_key=0555b35654ad1656d804 main_secret=h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBdBYLhwluN30JaT3Q==
alt_key=NOPQRSTUVWXYZABCDEFG alt_secret=nopqrstuvwxyzabcdefghijklmnabcdefghijklm
tenant_key=HIJKLMNOPQRSTUVWXYZA tenant_secret=opqrstuvwxyzabcdefghijklmnopqrstuvwxyzab
(
  umask 077
  for user in main alt tenant; do
    key=${user}_key secret=${user}_secret
    printf '[[key]]\nid = "%s"\nsecret = "%s"\naccess = "read-write"\n\n' "${!key}" "${!secret}"
  done >"$work/access.toml"
)

# serve, started again on the same port if it exits before we stop it (exits recorded).
supervise() {
  local listen=127.0.0.1:0 rc port
  while :; do
    HOME=$work/home XDG_CONFIG_HOME=$work/home DG_ENDPOINT_URL=file://$work/store \
      "$bin" serve --listen "$listen" --access-file "$work/access.toml" \
      --spool-dir "$work/spool" --grace 5 >>"$work/serve.out" 2>>"$work/serve.err" &
    echo $! >"$work/serve.pid"
    rc=0
    wait $! || rc=$?
    [ -e "$work/stopping" ] && break
    echo "$rc" >>"$work/serve.exits"
    port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$work/serve.out" | head -n 1)
    [ -n "$port" ] || break
    listen=127.0.0.1:$port
    sleep 0.2
  done
}
supervise &
supervisor=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$work/serve.out" 2>/dev/null | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { say "serve did not start:"; cat "$work/serve.err" >&2; exit 1; }
say "serve on 127.0.0.1:$port (pid $(cat "$work/serve.pid")), store $work/store"

cat >"$work/s3tests.conf" <<EOF
[DEFAULT]
host = 127.0.0.1
port = $port
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = dg-s3t-{random}-

[s3 main]
display_name = M. Tester
user_id = testid
email = tester@ceph.com
api_name = default
access_key = $main_key
secret_key = $main_secret

[s3 alt]
display_name = john.doe
email = john.doe@example.com
user_id = 56789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234
access_key = $alt_key
secret_key = $alt_secret

[s3 tenant]
display_name = testx\$tenanteduser
user_id = testx\$9876543210abcdef0123456789abcdef0123456789abcdef0123456789abcdef
access_key = $tenant_key
secret_key = $tenant_secret
email = tenanteduser@example.com
tenant = testx

[iam]
email = s3@example.com
user_id = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
access_key = ABCDEFGHIJKLMNOPQRST
secret_key = abcdefghijklmnopqrstuvwxyzabcdefghijklmn
display_name = youruseridhere

[iam root]
access_key = AAAAAAAAAAAAAAAAAAaa
secret_key = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
user_id = RGW11111111111111111
email = account1@ceph.com

[iam alt root]
access_key = BBBBBBBBBBBBBBBBBBbb
secret_key = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
user_id = RGW22222222222222222
email = account2@ceph.com
EOF

# s3-tests empties its buckets between tests with ListObjectVersions, which serve answers
# NotImplemented (no versioning): fall back to ListObjectsV2 then, so that each test starts
# from nothing instead of erroring in its setup and teardown.
cat >"$work/dg_s3tests_cleanup.py" <<'EOF'
import sys
from botocore.exceptions import ClientError


def _fallback(orig):
    def list_versions(client, bucket, batch_size):
        try:
            yield from orig(client, bucket, batch_size)
            return
        except ClientError as e:
            if e.response.get('Error', {}).get('Code') != 'NotImplemented':
                raise
        kwargs = {'Bucket': bucket, 'MaxKeys': batch_size}
        while True:
            listing = client.list_objects_v2(**kwargs)
            objs = listing.get('Contents', [])
            if objs:
                yield [{'Key': o['Key']} for o in objs]
            if not listing.get('IsTruncated'):
                break
            kwargs['ContinuationToken'] = listing['NextContinuationToken']
    return list_versions


def pytest_collection_finish(session):
    mod = sys.modules.get('s3tests.functional')
    if mod is not None and not getattr(mod.list_versions, 'dg_fallback', False):
        mod.list_versions = _fallback(mod.list_versions)
        mod.list_versions.dg_fallback = True
EOF

say "pytest -m '$markers'"
say "       -k '$names'"
status=0
rm -f "$results/junit.xml"
(
  cd "$src"
  S3TEST_CONF=$work/s3tests.conf PYTHONPATH=$work${PYTHONPATH:+:$PYTHONPATH} \
    "$venv/bin/pytest" -p dg_s3tests_cleanup -p no:cacheprovider --timeout "$timeout" \
    -rfE -q --junitxml "$results/junit.xml" "$tests" -m "$markers" -k "$names" "$@"
) >"$results/pytest.log" 2>&1 || status=$?

# One line per failed or erroring test, then pytest's counts.
[ -s "$results/junit.xml" ] || { say "pytest wrote no results:"; tail -n 30 "$results/pytest.log" >&2; exit 1; }
"$venv/bin/python" - "$results/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
rows = {}
for case in suite.iter('testcase'):
    for kind in ('failure', 'error'):
        for el in case.findall(kind):
            msg = (el.get('message') or '').splitlines()
            rows.setdefault(case.get('name'), []).append('%s: %s' % (kind, msg[0][:160] if msg else ''))
for name in sorted(rows):
    print('  %s  %s' % (name, ' | '.join(rows[name])))
EOF
tail -n 1 "$results/pytest.log"
say "logs: $results/pytest.log, $results/junit.xml, $results/serve.err"
if [ -s "$work/serve.exits" ]; then
  say "serve exited during the run and was restarted $(wc -l <"$work/serve.exits") time(s), exit statuses: $(tr '\n' ' ' <"$work/serve.exits")"
  status=3
fi
exit "$status"
