#!/usr/bin/env bash
# Proxy benchmark: Tessera's uplink cache against Verdaccio 6.8's proxy, both in front
# of the same local upstream (a Tessera instance holding the packages).
#
#   bash bench/proxy.sh                  # 200-package install, cold and warm; wrk; RSS
#   PROXY_RSS_PACKAGES=0 bash bench/proxy.sh   # skip the 10,000-packument RSS figure
#   PROXY_ROUNDS=3 (default): a fresh pair of proxies per round; install medians reported
#
# Figures:
#   - wall time of `npm install` of a project depending on PROXY_PACKAGES packages
#     (fresh npm cache, no lockfile, --ignore-scripts): cold (empty proxy cache) and
#     warm (proxy cache full); for Tessera also the time it spent handling requests
#     (its request-duration histogram) as its share of the warm install;
#   - wrk on one proxied packument (warm cache, -t2 -c64, PROXY_WRK_SECONDS s,
#     accept-encoding: gzip as npm sends it);
#   - Tessera's RSS (VmRSS and VmHWM) under wrk load after PROXY_RSS_PACKAGES
#     packuments went through its cache.
# Every process it starts is stopped by its PID on exit; a watchdog bounds the run.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES="${PROXY_PACKAGES:-200}"
RSS_PACKAGES="${PROXY_RSS_PACKAGES:-10000}"
WRK_SECONDS="${PROXY_WRK_SECONDS:-5}"
ROUNDS="${PROXY_ROUNDS:-3}"
MAX_SECONDS="${PROXY_MAX_SECONDS:-1500}"
VERDACCIO_VERSION=6.8.0
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="$TARGET_DIR/release/tessera"
WORK="$(mktemp -d /tmp/tessera-proxy-bench.XXXXXX)"
PIDS=()
log() { printf '[proxy-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cleanup() {
    local status=$?
    trap - EXIT
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ "${PROXY_KEEP:-0}" == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
( sleep "$MAX_SECONDS" </dev/null >/dev/null 2>&1; echo "[proxy-bench] time limit reached" >&2; kill -TERM $$ ) &
PIDS+=($!)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
    for _ in $(seq 300); do
        kill -0 "$2" 2>/dev/null || { log "process $2 died"; return 1; }
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
serve() { # name port extra-args... -> PID in SPID
    local name=$1 port=$2; shift 2
    "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    wait_ready "http://127.0.0.1:$port/-/ping" "$SPID"
}

[[ "${PROXY_SKIP_BUILD:-0}" == 1 ]] || (cd "$REPO" && cargo build --release --quiet)
command -v wrk >/dev/null || { log "wrk is needed (apt-get install wrk)"; exit 1; }

log "installing Verdaccio $VERDACCIO_VERSION"
mkdir -p "$WORK/verdaccio"
cat >"$WORK/verdaccio/package.json" <<EOF
{"name": "verdaccio-proxy-bench", "version": "0.0.0", "private": true,
 "dependencies": {"verdaccio": "$VERDACCIO_VERSION"},
 "overrides": {"node-fetch": "2.7.0"}}
EOF
(cd "$WORK/verdaccio" && HOME="$WORK/verdaccio" timeout 600 npm install --no-audit --no-fund \
    --update-notifier=false --loglevel=error --cache "$WORK/verdaccio/.npm-cache" >/dev/null)

UP_PORT=$(free_port)
serve upstream "$UP_PORT"
UP="http://127.0.0.1:$UP_PORT"
log "upstream Tessera at $UP: publishing $PACKAGES packages (and $RSS_PACKAGES for the RSS figure)"
TOKEN=$(curl -fsS -X PUT "$UP/-/user/org.couchdb.user:bench" -H 'content-type: application/json' \
    -d '{"name":"bench","password":"bench-password","email":"b@example.com"}' |
    python3 -c 'import json,sys;print(json.load(sys.stdin)["token"])')
python3 - "$UP" "$TOKEN" "$PACKAGES" "$RSS_PACKAGES" "$WORK/project" <<'PY'
import base64, hashlib, io, json, os, sys, tarfile, urllib.request
from concurrent.futures import ThreadPoolExecutor
up, token, count, rss_count, project = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def publish(name):
    manifest = {"name": name, "version": "1.0.0", "description": "proxy benchmark package",
                "main": "index.js", "license": "MIT"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for fname, text in (("package.json", json.dumps(manifest)), ("index.js", "module.exports = 1;\n")):
            data = text.encode(); info = tarfile.TarInfo("package/" + fname)
            info.size = len(data); info.mode = 0o644; tar.addfile(info, io.BytesIO(data))
    tgz = buf.getvalue()
    body = dict(manifest, _id=name, **{"dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": dict(manifest, dist={
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
            "shasum": hashlib.sha1(tgz).hexdigest()})},
        "_attachments": {f"{name}-1.0.0.tgz": {"data": base64.b64encode(tgz).decode(), "length": len(tgz)}}})
    req = urllib.request.Request(f"{up}/{name}", data=json.dumps(body).encode(), method="PUT",
        headers={"content-type": "application/json", "authorization": "Bearer " + token})
    urllib.request.urlopen(req).read()
names = [f"bench-px-{i:03d}" for i in range(count)]
with ThreadPoolExecutor(8) as pool:
    list(pool.map(publish, names + [f"bench-rss-{i:05d}" for i in range(rss_count)]))
os.makedirs(project, exist_ok=True)
json.dump({"name": "proxy-bench", "version": "1.0.0", "private": True,
           "dependencies": {n: "^1.0.0" for n in names}}, open(f"{project}/package.json", "w"))
PY

start_proxies() { # round -> Tessera proxy in TP/TESSERA_PID, Verdaccio in VD/VD_PID, both empty
    local r=$1
    TP_PORT=$(free_port)
    serve "proxy-$r" "$TP_PORT" --uplink "up=$UP"
    TESSERA_PID=$SPID
    TP="http://127.0.0.1:$TP_PORT"
    V_PORT=$(free_port)
    local vd="$WORK/vd-$r"
    mkdir -p "$vd/storage"
    cat >"$vd/config.yaml" <<EOF
storage: $vd/storage
auth:
  htpasswd:
    file: $vd/htpasswd
    max_users: -1
uplinks:
  up:
    url: $UP/
    maxage: 2m
    timeout: 30s
packages:
  '**':
    access: \$all
    publish: \$authenticated
    proxy: up
log: { type: stdout, format: pretty, level: warn }
listen: 127.0.0.1:$V_PORT
EOF
    (cd "$vd" && exec node "$WORK/verdaccio/node_modules/verdaccio/bin/verdaccio" --config "$vd/config.yaml") \
        >"$vd/verdaccio.log" 2>&1 &
    VD_PID=$!
    PIDS+=("$VD_PID")
    wait_ready "http://127.0.0.1:$V_PORT/-/ping" "$VD_PID"
    VD="http://127.0.0.1:$V_PORT"
}
stop_proxies() {
    kill -TERM "$TESSERA_PID" "$VD_PID" 2>/dev/null || true
    wait "$TESSERA_PID" "$VD_PID" 2>/dev/null || true
}

handled_seconds() { # Tessera's summed request time
    curl -fsS "$TP/-/metrics" | awk '/^tessera_request_duration_seconds_sum/ {s += $2} END {printf "%.3f", s}'
}
install() { # registry label -> seconds
    local reg=$1 label=$2 dir="$WORK/install-$2"
    rm -rf "$dir"; mkdir -p "$dir"; cp "$WORK/project/package.json" "$dir/"
    local start end
    start=$EPOCHREALTIME
    (cd "$dir" && HOME="$dir" npm install --registry "$reg/" --cache "$dir/.cache" --ignore-scripts \
        --no-audit --no-fund --update-notifier=false --loglevel=error >/dev/null)
    end=$EPOCHREALTIME
    python3 -c "print(round($end - $start, 2))"
}

# PROXY_ROUNDS rounds, each with an empty Tessera proxy and an empty Verdaccio (their
# order alternating), so one slow install does not decide a figure; medians reported.
declare -A R
declare -A RUNS
median() { python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 2))" "$@"; }
for r in $(seq 1 "$ROUNDS"); do
    start_proxies "$r"
    order="tessera verdaccio"; (( r % 2 == 0 )) && order="verdaccio tessera"
    for reg in $order; do
        url=$TP; [[ $reg == verdaccio ]] && url=$VD
        log "round $r, $reg: cold install"
        before=$(handled_seconds)
        RUNS[$reg-cold]+=" $(install "$url" "$reg-cold-$r")"
        if [[ $reg == tessera ]]; then
            RUNS[tessera-cold-share]+=" $(python3 -c "print(round($(handled_seconds) - $before, 2))")"
        fi
        before=$(handled_seconds)
        log "round $r, $reg: warm install"
        RUNS[$reg-warm]+=" $(install "$url" "$reg-warm-$r")"
        if [[ $reg == tessera ]]; then
            RUNS[tessera-share]+=" $(python3 -c "print(round($(handled_seconds) - $before, 2))")"
        fi
    done
    if (( r < ROUNDS )); then stop_proxies; fi
done
for k in tessera-cold tessera-cold-share tessera-warm tessera-share verdaccio-cold verdaccio-warm; do
    # shellcheck disable=SC2086
    R[$k]=$(median ${RUNS[$k]})
done
for reg in tessera verdaccio; do
    url=$TP; [[ $reg == verdaccio ]] && url=$VD
    log "$reg: wrk on a proxied packument"
    R[$reg-rps]=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" -H 'accept-encoding: gzip' "$url/bench-px-000" |
        awk '/Requests\/sec/ {print $2}')
done

RSS_LINE="skipped"
if (( RSS_PACKAGES > 0 )); then
    log "Tessera: $RSS_PACKAGES packuments through the cache"
    python3 - "$TP" "$RSS_PACKAGES" <<'PY'
import sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
tp, n = sys.argv[1], int(sys.argv[2])
def get(i):
    urllib.request.urlopen(f"{tp}/bench-rss-{i:05d}").read()
with ThreadPoolExecutor(16) as pool:
    list(pool.map(get, range(n)))
PY
    wrk -t2 -c64 -d"${WRK_SECONDS}s" -H 'accept-encoding: gzip' "$TP/bench-rss-00042" >/dev/null
    RSS_LINE="$(awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "%.1f MiB now, %.1f MiB peak", r/1024, h/1024}' /proc/$TESSERA_PID/status)"
fi
ratio() { python3 -c "print(round($1 / $2, 2))"; }
cat <<EOF
| figure | Tessera | Verdaccio $VERDACCIO_VERSION | ratio (Tessera/Verdaccio) | target |
|---|---|---|---|---|
| cold install, $PACKAGES packages (s) | ${R[tessera-cold]} (registry handled requests for ${R[tessera-cold-share]} s) | ${R[verdaccio-cold]} | $(ratio "${R[tessera-cold]}" "${R[verdaccio-cold]}") | ≤ 0.8 |
| warm install (s) | ${R[tessera-warm]} (registry handled requests for ${R[tessera-share]} s) | ${R[verdaccio-warm]} | $(ratio "${R[tessera-warm]}" "${R[verdaccio-warm]}") | ≤ 0.9 |
| proxied packument GET, wrk -c64 (req/s) | ${R[tessera-rps]} | ${R[verdaccio-rps]} | $(ratio "${R[tessera-rps]}" "${R[verdaccio-rps]}") | ≥ 20 |
| Tessera RSS under wrk with $RSS_PACKAGES cached packuments | $RSS_LINE | | | < 70 MiB |

Installs of every round (s): Tessera cold${RUNS[tessera-cold]}, warm${RUNS[tessera-warm]};
Verdaccio cold${RUNS[verdaccio-cold]}, warm${RUNS[verdaccio-warm]} ($ROUNDS rounds, medians above).
EOF
