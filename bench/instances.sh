#!/usr/bin/env bash
# Scale-out figures: authenticated packument req/s through one instance and through
# two instances on one PostgreSQL database, and the time from revoking a token on one
# instance to its refusal on the other. Needs a release build, wrk, and PostgreSQL at
# $PG_ADMIN (default postgres://postgres@127.0.0.1:5432/postgres).
# Usage: bench/instances.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
BIN=target/release/tessera
[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d)
DB="tessera_bench_$$"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql "$PG_ADMIN" -qc "CREATE DATABASE $DB"
URL="${PG_ADMIN%/*}/$DB"
start() {
  local n=$1
  "$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/i$n" --database-url "$URL" \
    --server-key-file "$WORK/server.key" --blob-store "$WORK/blobs" >"$WORK/i$n.out" 2>/dev/null &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$WORK/i$n.out" 2>/dev/null && break; sleep 0.1; done
  awk '{print $NF}' "$WORK/i$n.out"
}
A=$(start 1); B=$(start 2)
TOKEN=$(curl -s -X PUT "$A/-/user/org.couchdb.user:bench" -H 'content-type: application/json' \
  -d '{"name":"bench","password":"bench-password","email":"b@example.com"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
python3 - "$A" "$TOKEN" <<'PY'
import base64, hashlib, io, json, sys, tarfile, urllib.request
url, token = sys.argv[1], sys.argv[2]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    data = json.dumps({"name": "bench-pkg", "version": "1.0.0"}).encode()
    info = tarfile.TarInfo("package/package.json"); info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
tgz = buf.getvalue()
body = {"_id": "bench-pkg", "name": "bench-pkg", "dist-tags": {"latest": "1.0.0"},
  "versions": {"1.0.0": {"name": "bench-pkg", "version": "1.0.0",
    "dist": {"integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(), "shasum": hashlib.sha1(tgz).hexdigest()}}},
  "_attachments": {"bench-pkg-1.0.0.tgz": {"data": base64.b64encode(tgz).decode(), "length": len(tgz)}}}
req = urllib.request.Request(url + "/bench-pkg", data=json.dumps(body).encode(), method="PUT",
  headers={"content-type": "application/json", "authorization": "Bearer " + token})
urllib.request.urlopen(req).read()
PY
rps() { wrk -t"$2" -c"$3" -d"${DURATION}s" -H "authorization: Bearer $TOKEN" "$1/bench-pkg" | awk '/Requests\/sec/ {print $2}'; }
ONE=$(rps "$A" 2 64)
rps "$A" 1 32 >"$WORK/a.rps" & WA=$!
rps "$B" 1 32 >"$WORK/b.rps" & WB=$!
wait $WA $WB
TWO=$(python3 -c "print(round($(cat "$WORK/a.rps") + $(cat "$WORK/b.rps"), 1))")
# Revocation on A, refusal on B.
KEY_TOKEN=$(curl -s -X POST "$A/-/npm/v1/tokens" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"password":"bench-password","name":"revoke-me"}')
KEY=$(echo "$KEY_TOKEN" | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])')
VICTIM=$(echo "$KEY_TOKEN" | python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
REVOKE=$(python3 - "$A" "$B" "$TOKEN" "$KEY" "$VICTIM" <<'PY'
import sys, time, urllib.request, urllib.error
a, b, token, key, victim = sys.argv[1:]
req = urllib.request.Request(f"{a}/-/npm/v1/tokens/token/{key}", method="DELETE", headers={"authorization": "Bearer " + token})
urllib.request.urlopen(req).read()
t0 = time.perf_counter()
try:
    urllib.request.urlopen(urllib.request.Request(f"{b}/-/whoami", headers={"authorization": "Bearer " + victim}))
    print("NOT REFUSED")
except urllib.error.HTTPError as e:
    print(f"{(time.perf_counter() - t0) * 1000:.2f} ms (first request after revocation: HTTP {e.code})")
PY
)
echo "| measurement | value |"
echo "|---|---|"
echo "| authenticated packument GET, one instance (wrk 2 threads, 64 connections, ${DURATION}s) | ${ONE} req/s |"
echo "| the same through two instances (2 × wrk 1 thread, 32 connections) | ${TWO} req/s |"
echo "| revoke on A → refused on B | ${REVOKE} |"
echo "| machine | $(nproc) cores, $(date -u +%Y-%m-%d) |"
