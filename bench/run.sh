#!/usr/bin/env bash
# Side-by-side benchmark: Tessera (release build, SQLite) against Verdaccio 6.8.0 in
# both token modes (JWT and the legacy default), plus a minimal axum "ceiling".
#
#   bash bench/run.sh                 # three rounds of 15 s wrk runs per figure
#   BENCH_DURATION=5 bash bench/run.sh   # shorter wrk runs
#
# Writes bench/results/latest.md and bench/results/latest.json and prints the table.
# Every process it starts is stopped by its PID on exit (trap), and the whole run is
# bounded by BENCH_MAX_SECONDS (a watchdog stops it). See bench/README.md.
#
# Settings (environment):
#   BENCH_DURATION     seconds per wrk run (default 15)
#   BENCH_ROUNDS       rounds per figure (default 3)
#   BENCH_CONNECTIONS  wrk connections (default 64); BENCH_THREADS wrk threads (default 2)
#   BENCH_SMALL        small packages (default 200); BENCH_VERSIONS versions each (default 3)
#   BENCH_BIG_VERSIONS versions of the big package (default 100)
#   BENCH_PUBLISHES    sequential publishes per round (default 20)
#   BENCH_PARALLEL     concurrent npm publish processes while loading (default 6)
#   BENCH_ACCEPT_ENCODING  accept-encoding sent by wrk (default "gzip", as npm does; "" for none)
#   BENCH_MAX_SECONDS  hard limit for the whole run (default 5400)
#   BENCH_KEEP=1       keep the temporary folder (default: removed)
#   BENCH_SKIP_BUILD=1 use the existing release binaries
#   BENCH_OUT          results folder (default bench/results)
#   BENCH_REGISTRIES   which registries to measure (default "tessera verdaccio-jwt verdaccio-legacy")
#   BENCH_TESSERA_DATA use this Tessera data dir instead of a fresh one (the scale run: fill
#                      it first with `cargo run --release --example scale_gen -- DIR`)
#   CARGO_TARGET_DIR   where cargo builds (default <repo>/target)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
DURATION="${BENCH_DURATION:-15}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
SMALL="${BENCH_SMALL:-200}"
VERSIONS="${BENCH_VERSIONS:-3}"
BIG_VERSIONS="${BENCH_BIG_VERSIONS:-100}"
PUBLISHES="${BENCH_PUBLISHES:-20}"
PARALLEL="${BENCH_PARALLEL:-6}"
ACCEPT_ENCODING="${BENCH_ACCEPT_ENCODING-gzip}"
MAX_SECONDS="${BENCH_MAX_SECONDS:-5400}"
OUT="${BENCH_OUT:-$BENCH/results}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
CEILING_TARGET="$TARGET_DIR/bench-ceiling"
VERDACCIO_VERSION=6.8.0
read -ra REGISTRIES <<<"${BENCH_REGISTRIES:-tessera verdaccio-jwt verdaccio-legacy}"
measured() { [[ " ${REGISTRIES[*]} " == *" $1 "* ]]; }
WITH_VERDACCIO=0
if measured verdaccio-jwt || measured verdaccio-legacy; then WITH_VERDACCIO=1; fi
PASSWORD=benchpassword

WORK="$(mktemp -d /tmp/tessera-bench.XXXXXX)"
RAW="$WORK/raw.jsonl"
: >"$RAW"
PIDS=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Remembers a started process so the trap stops it.
track() { PIDS+=("$1"); }
# Stops one started process by PID and forgets it.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local keep=()
    for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Watchdog: the whole run is bounded.
(
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$MAX_SECONDS" &
    sleeper=$!
    wait "$sleeper"
    echo "[bench] time limit of ${MAX_SECONDS}s reached, stopping" >&2
    kill -TERM $$
) &
track $!

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 4))" "$1" "$2"; }
record() { echo "$1" >>"$RAW"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

wait_ready() {
    local url=$1 pid=$2
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || { log "process $pid died; see its log"; return 1; }
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    log "$url not ready after 60 s"
    return 1
}

rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- tools
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk; then
    log "installing wrk (Debian)"
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
for tool in node npm curl python3 cargo wrk; do need "$tool" || { log "missing $tool"; exit 1; }; done

# ---------------------------------------------------------------- builds
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    log "building Tessera (release) and the ceiling server"
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --quiet --bin tessera)
    (cd "$BENCH/ceiling" && CARGO_TARGET_DIR="$CEILING_TARGET" cargo build --release --quiet)
fi
TESSERA_BIN="$TARGET_DIR/release/tessera"
CEILING_BIN="$CEILING_TARGET/release/ceiling"
[[ -x "$TESSERA_BIN" && -x "$CEILING_BIN" ]] || { log "release binaries missing"; exit 1; }

# ---------------------------------------------------------------- Verdaccio install
if [[ $WITH_VERDACCIO == 1 ]]; then
log "installing Verdaccio $VERDACCIO_VERSION into $WORK/verdaccio"
mkdir -p "$WORK/verdaccio"
cat >"$WORK/verdaccio/package.json" <<EOF
{"name": "verdaccio-bench-host", "version": "0.0.0", "private": true,
 "dependencies": {"verdaccio": "$VERDACCIO_VERSION"},
 "overrides": {"node-fetch": "2.7.0"}}
EOF
(cd "$WORK/verdaccio" && HOME="$WORK/verdaccio" timeout 600 npm install --no-audit --no-fund \
    --update-notifier=false --loglevel=error --cache "${BENCH_VERDACCIO_CACHE:-$WORK/verdaccio/.npm-cache}" >/dev/null)
fi
VERDACCIO_JS="$WORK/verdaccio/node_modules/verdaccio/bin/verdaccio"

write_verdaccio_config() { # dir port mode
    local dir=$1 port=$2 mode=$3 security
    if [[ "$mode" == jwt ]]; then
        security=$'security:\n  api:\n    jwt:\n      sign:\n        expiresIn: 7d\n  web:\n    sign:\n      expiresIn: 7d'
    else
        security=$'security:\n  api:\n    legacy: true'
    fi
    mkdir -p "$dir/storage"
    cat >"$dir/config.yaml" <<EOF
storage: $dir/storage
auth:
  htpasswd:
    file: $dir/htpasswd
    max_users: 1000
uplinks: {}
packages:
  '**':
    access: \$authenticated
    publish: \$authenticated
    unpublish: \$authenticated
listen: 127.0.0.1:$port
server:
  keepAliveTimeout: 60
$security
log: { type: stdout, format: pretty, level: warn }
EOF
}

# ---------------------------------------------------------------- data
log "generating package folders"
python3 "$BENCH/gen_packages.py" folders "$WORK/pkgs" "$SMALL" "$VERSIONS" "$BIG_VERSIONS"

# A fresh npm environment for one invocation: own HOME, userconfig and cache.
npm_env() { # dir registry token
    local dir=$1 registry=$2 token=$3
    mkdir -p "$dir/cache"
    local hostpath="${registry#http:}"
    cat >"$dir/.npmrc" <<EOF
registry=$registry/
$hostpath/:_authToken=$token
audit=false
fund=false
update-notifier=false
loglevel=warn
EOF
}
run_npm() { # dir args...
    local dir=$1; shift
    HOME="$dir" npm_config_userconfig="$dir/.npmrc" npm_config_cache="$dir/cache" \
        npm_config_update_notifier=false npm_config_audit=false npm_config_fund=false \
        timeout 300 npm "$@"
}
export -f npm_env run_npm

# Publishes one lane: every version folder under $1, in order.
publish_lane() { # lane_dir registry token scratch
    local lane=$1 registry=$2 token=$3 scratch=$4 n=0
    for v in $(ls "$lane" | sort -V); do
        local dir="$scratch/$(basename "$lane")-$n"
        n=$((n + 1))
        npm_env "$dir" "$registry" "$token"
        if ! (cd "$lane/$v" && run_npm "$dir" publish --ignore-scripts >"$dir/out.log" 2>&1); then
            echo "publish failed: $lane/$v" >&2
            tail -5 "$dir/out.log" >&2
            return 1
        fi
        rm -rf "$dir"
    done
}
export -f publish_lane

create_user() { # registry -> token on stdout
    curl -fsS -X PUT "$1/-/user/org.couchdb.user:bench" -H 'content-type: application/json' \
        -d "{\"name\":\"bench\",\"password\":\"$PASSWORD\",\"email\":\"b@example.com\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# Logs an existing user in (Verdaccio wants Basic credentials for that) -> token.
login_user() { # registry
    curl -fsS -X PUT "$1/-/user/org.couchdb.user:bench" -H 'content-type: application/json' \
        -u "bench:$PASSWORD" -d "{\"name\":\"bench\",\"password\":\"$PASSWORD\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

load_data() { # label registry token
    local label=$1 registry=$2 token=$3 t0 t1
    log "loading $label through npm: $SMALL x $VERSIONS + 1 x $BIG_VERSIONS versions ($PARALLEL parallel)"
    mkdir -p "$WORK/scratch-$label"
    t0=$(now)
    { echo "$WORK/pkgs/big"; for d in "$WORK"/pkgs/small/*; do echo "$d"; done; } |
        xargs -P "$PARALLEL" -I{} bash -c 'publish_lane "$1" "$2" "$3" "$4"' _ {} "$registry" "$token" "$WORK/scratch-$label"
    t1=$(now)
    record "{\"kind\":\"load\",\"target\":\"$label\",\"seconds\":$(elapsed "$t0" "$t1")}"
    log "loaded $label in $(elapsed "$t0" "$t1") s"
}

# ---------------------------------------------------------------- servers
TESSERA_PORT=$(free_port)
VJWT_PORT=$(free_port)
VLEG_PORT=$(free_port)
CEILING_PORT=$(free_port)
TESSERA_URL="http://127.0.0.1:$TESSERA_PORT"
VJWT_URL="http://127.0.0.1:$VJWT_PORT"
VLEG_URL="http://127.0.0.1:$VLEG_PORT"
CEILING_URL="http://127.0.0.1:$CEILING_PORT"

TESSERA_DATA="${BENCH_TESSERA_DATA:-$WORK/tessera-data}"
start_tessera() {
    RUST_LOG=warn "$TESSERA_BIN" serve --listen "127.0.0.1:$TESSERA_PORT" --data-dir "$TESSERA_DATA" \
        >>"$WORK/tessera.log" 2>&1 &
    TESSERA_PID=$!
    track "$TESSERA_PID"
    wait_ready "$TESSERA_URL/-/ping" "$TESSERA_PID"
}
start_verdaccio() { # dir port -> VPID
    (cd "$1" && exec node "$VERDACCIO_JS" --config "$1/config.yaml") >>"$1/verdaccio.log" 2>&1 &
    VPID=$!
    track "$VPID"
    wait_ready "http://127.0.0.1:$2/-/ping" "$VPID"
}

log "starting the registries for loading"
if measured tessera; then
    start_tessera
    TESSERA_TOKEN=$(create_user "$TESSERA_URL")
    load_data tessera "$TESSERA_URL" "$TESSERA_TOKEN"
    stop_pid "$TESSERA_PID"
fi
if [[ $WITH_VERDACCIO == 1 ]]; then
    write_verdaccio_config "$WORK/vjwt" "$VJWT_PORT" jwt
    start_verdaccio "$WORK/vjwt" "$VJWT_PORT"
    VJWT_PID=$VPID
    VJWT_TOKEN=$(create_user "$VJWT_URL")
    load_data verdaccio "$VJWT_URL" "$VJWT_TOKEN"
    stop_pid "$VJWT_PID"
    log "copying Verdaccio's storage for the legacy-token instance"
    write_verdaccio_config "$WORK/vleg" "$VLEG_PORT" legacy
    cp -a "$WORK/vjwt/storage/." "$WORK/vleg/storage/"
    cp "$WORK/vjwt/htpasswd" "$WORK/vleg/htpasswd"
fi

# Restart everything so "idle after start" is measured with the data in place.
log "restarting servers"
declare -A PID=()
if measured tessera; then start_tessera; PID[tessera]=$TESSERA_PID; fi
if measured verdaccio-jwt; then start_verdaccio "$WORK/vjwt" "$VJWT_PORT"; PID[verdaccio-jwt]=$VPID; fi
if measured verdaccio-legacy; then start_verdaccio "$WORK/vleg" "$VLEG_PORT"; PID[verdaccio-legacy]=$VPID; fi
"$CEILING_BIN" "127.0.0.1:$CEILING_PORT" >"$WORK/ceiling.log" 2>&1 &
PID[ceiling]=$!
track "${PID[ceiling]}"
wait_ready "$CEILING_URL/" "${PID[ceiling]}"
sleep 3
if measured verdaccio-legacy; then VLEG_TOKEN=$(login_user "$VLEG_URL"); fi

declare -A URL=([tessera]=$TESSERA_URL [verdaccio-jwt]=$VJWT_URL [verdaccio-legacy]=$VLEG_URL [ceiling]=$CEILING_URL)
declare -A TOKEN=([tessera]=${TESSERA_TOKEN:-} [verdaccio-jwt]=${VJWT_TOKEN:-} [verdaccio-legacy]=${VLEG_TOKEN:-} [ceiling]=none)

for t in "${REGISTRIES[@]}" ceiling; do
    record "{\"kind\":\"rss_idle\",\"target\":\"$t\",\"kib\":$(rss_kib "${PID[$t]}" VmRSS)}"
done

# ---------------------------------------------------------------- wrk figures
cpu_ticks() { # CPU time (clock ticks) of every running server, summed
    local sum=0 p
    for p in "${PID[@]}"; do
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}
# Waits until every server is idle (less than 5% of a core over a second, at most
# 60 s), so no timed run starts while another registry is still busy (Verdaccio's
# legacy mode keeps hashing queued requests after its client is done).
settle() {
    local tick before after
    tick=$(getconf CLK_TCK)
    for _ in $(seq 60); do
        before=$(cpu_ticks); sleep 1; after=$(cpu_ticks)
        (( (after - before) * 20 < tick )) && return 0
    done
    log "servers still busy after 60 s; measuring anyway"
}
# The measured registries, rotated by the round number, so no registry always
# follows the same one.
rotated() { # round
    local k=$((($1 - 1) % ${#REGISTRIES[@]}))
    echo "${REGISTRIES[@]:k}" "${REGISTRIES[@]:0:k}"
}
SMALL_PKG=bench-small-000
TESTS=(packument_small packument_big abbreviated_small abbreviated_big tarball)
path_of() {
    case $1 in
        packument_small | abbreviated_small) echo "/$SMALL_PKG" ;;
        packument_big | abbreviated_big) echo "/bench-big" ;;
        tarball) echo "/$SMALL_PKG/-/$SMALL_PKG-1.0.0.tgz" ;;
        ceiling) echo "/" ;;
    esac
}

run_wrk() { # test target round
    local test=$1 target=$2 round=$3 url headers=()
    url="${URL[$target]}$(path_of "$test")"
    [[ "$target" == ceiling ]] && url="${URL[$target]}/"
    headers+=(-H "authorization: Bearer ${TOKEN[$target]}")
    [[ -n "$ACCEPT_ENCODING" ]] && headers+=(-H "accept-encoding: $ACCEPT_ENCODING")
    [[ "$test" == abbreviated_* ]] && headers+=(-H "accept: application/vnd.npm.install-v1+json")
    local before
    before=$(loadavg)
    timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency "${headers[@]}" "$url" \
        >"$WORK/wrk-$test-$target-$round.txt" 2>&1 || true
    python3 "$BENCH/report.py" wrk "$WORK/wrk-$test-$target-$round.txt" "$test" "$target" "$round" "$before" >>"$RAW"
}

# Every figure is checked once with curl (status, size) before it is timed.
check_url() { # test target
    local test=$1 target=$2 url headers=()
    url="${URL[$target]}$(path_of "$test")"
    headers+=(-H "authorization: Bearer ${TOKEN[$target]}")
    [[ -n "$ACCEPT_ENCODING" ]] && headers+=(-H "accept-encoding: $ACCEPT_ENCODING")
    [[ "$test" == abbreviated_* ]] && headers+=(-H "accept: application/vnd.npm.install-v1+json")
    local out
    out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' "${headers[@]}" "$url")
    record "{\"kind\":\"check\",\"test\":\"$test\",\"target\":\"$target\",\"status\":${out% *},\"bytes\":${out#* }}"
    [[ "${out% *}" == 200 ]] || log "WARNING: $test on $target answered ${out% *}"
}

for test in "${TESTS[@]}"; do for t in "${REGISTRIES[@]}"; do check_url "$test" "$t"; done; done
check_url ceiling ceiling

log "wrk: $THREADS threads, $CONNS connections, ${DURATION}s, $ROUNDS rounds (load now: $(loadavg))"
for round in $(seq "$ROUNDS"); do
    for test in "${TESTS[@]}"; do
        for t in $(rotated "$round"); do
            settle
            log "round $round: $test on $t"
            run_wrk "$test" "$t" "$round"
        done
    done
    settle
    log "round $round: ceiling"
    run_wrk ceiling ceiling "$round"
done

for t in "${REGISTRIES[@]}" ceiling; do
    record "{\"kind\":\"rss_peak\",\"target\":\"$t\",\"kib\":$(rss_kib "${PID[$t]}" VmHWM)}"
done

# ---------------------------------------------------------------- npm install
# Time Tessera spent inside requests so far (the sum of its request-duration
# histogram); 0 for registries that do not expose it.
server_seconds() {
    if [[ "$1" != tessera ]]; then echo 0; return; fi
    curl -sf "${URL[$1]}/-/metrics" | awk '/^tessera_request_duration_seconds_sum/ {s += $2} END {printf "%.4f\n", s}'
}
# npm's own phase timers (--timing): resolving the tree fetches the packuments one
# after another; unpacking fetches and extracts the tarballs in parallel.
npm_phases() { # npm_dir -> JSON members resolve_s, unpack_s
    python3 - "$1/cache/_logs" <<'PY'
import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/*-timing.json"))
timers = json.load(open(files[-1]))["timers"] if files else {}
def s(key):
    return "null" if key not in timers else round(timers[key] / 1000, 3)
print(f'"resolve_s":{s("idealTree")},"unpack_s":{s("reify:unpack")}')
PY
}
# A fresh project and npm environment for one install from registry $2.
prepare_install() { # dir registry
    rm -rf "$1"
    mkdir -p "$1/project"
    cp "$WORK/pkgs/project/package.json" "$1/project/"
    npm_env "$1" "${URL[$2]}" "${TOKEN[$2]}"
}
# `npm install` in the project prepared in $1, its output in $1/$2.
npm_install() { # dir log_name extra_args...
    local dir=$1 log_name=$2
    shift 2
    (cd "$dir/project" && run_npm "$dir" install --ignore-scripts --no-audit --no-fund "$@" >"$dir/$log_name" 2>&1)
}
log "npm install of a project depending on $SMALL packages (fresh cache, no lockfile)"
# One untimed install from each registry first: npm's own files, the page cache and
# every server start the timed rounds equally warm.
for t in "${REGISTRIES[@]}"; do
    dir="$WORK/install-warmup-$t"
    prepare_install "$dir" "$t"
    npm_install "$dir" out.log || log "warm-up install from $t failed"
    rm -rf "$dir"
done
for round in $(seq "$ROUNDS"); do
    for t in $(rotated "$round"); do
        settle
        dir="$WORK/install-$t-$round"
        prepare_install "$dir" "$t"
        served0=$(server_seconds "$t")
        t0=$(now)
        if npm_install "$dir" out.log --timing; then
            t1=$(now)
            served=null
            [[ "$t" == tessera ]] && served=$(elapsed "$served0" "$(server_seconds "$t")")
            n=$(ls "$dir/project/node_modules" | grep -c '^bench-small-' || true)
            record "{\"kind\":\"npm_install\",\"target\":\"$t\",\"round\":$round,\"seconds\":$(elapsed "$t0" "$t1"),\"installed\":$n,\"server_seconds\":$served,$(npm_phases "$dir")}"
            log "round $round: npm install from $t: $(elapsed "$t0" "$t1") s ($n packages)"
            if [[ "$t" == tessera ]]; then
                # npm's own floor: the same install again from the cache it just filled,
                # with --offline, so no request reaches any registry.
                rm -rf "$dir/project/node_modules" "$dir/project/package-lock.json" "$dir/cache/_logs"
                t0=$(now)
                if npm_install "$dir" offline.log --offline --timing; then
                    t1=$(now)
                    record "{\"kind\":\"npm_install_offline\",\"target\":\"$t\",\"round\":$round,\"seconds\":$(elapsed "$t0" "$t1"),$(npm_phases "$dir")}"
                    log "round $round: the same install offline from npm's warm cache: $(elapsed "$t0" "$t1") s"
                else
                    log "offline npm install failed"; tail -5 "$dir/offline.log" >&2
                fi
            fi
        else
            log "npm install from $t failed"; tail -5 "$dir/out.log" >&2
            record "{\"kind\":\"npm_install\",\"target\":\"$t\",\"round\":$round,\"failed\":true}"
        fi
        rm -rf "$dir"
    done
done

# ---------------------------------------------------------------- publish
log "publish: $PUBLISHES sequential npm publish and raw PUTs per round"
for t in "${REGISTRIES[@]}"; do
    python3 "$BENCH/gen_packages.py" pubdir "$WORK/pub-$t" "bench-pub-$t" "$((PUBLISHES * ROUNDS))"
    python3 "$BENCH/gen_packages.py" bodies "$WORK/raw-$t" "bench-raw-$t" "$((PUBLISHES * ROUNDS))" "${URL[$t]}"
done
for round in $(seq "$ROUNDS"); do
    for t in $(rotated "$round"); do
        settle
        times=()
        for i in $(seq $(((round - 1) * PUBLISHES)) $((round * PUBLISHES - 1))); do
            dir="$WORK/pubenv-$t-$i"
            npm_env "$dir" "${URL[$t]}" "${TOKEN[$t]}"
            t0=$(now)
            if (cd "$WORK/pub-$t/$i" && run_npm "$dir" publish --ignore-scripts >"$dir/out.log" 2>&1); then
                t1=$(now)
                times+=("$(elapsed "$t0" "$t1")")
            else
                log "npm publish to $t failed"; tail -3 "$dir/out.log" >&2
            fi
            rm -rf "$dir"
        done
        record "{\"kind\":\"npm_publish\",\"target\":\"$t\",\"round\":$round,\"seconds\":[$(IFS=,; echo "${times[*]}")]}"
        times=()
        for i in $(seq $(((round - 1) * PUBLISHES)) $((round * PUBLISHES - 1))); do
            out=$(curl -sS -o "$WORK/put.out" -w '%{http_code} %{time_total}' -X PUT \
                -H "authorization: Bearer ${TOKEN[$t]}" -H 'content-type: application/json' \
                --data-binary "@$WORK/raw-$t/$i.json" "${URL[$t]}/bench-raw-$t")
            if [[ "${out% *}" == 200 || "${out% *}" == 201 ]]; then
                times+=("${out#* }")
            else
                log "raw PUT to $t answered ${out% *}: $(head -c 200 "$WORK/put.out")"
            fi
        done
        record "{\"kind\":\"raw_put\",\"target\":\"$t\",\"round\":$round,\"seconds\":[$(IFS=,; echo "${times[*]}")]}"
        log "round $round: publish on $t done"
    done
done

# ---------------------------------------------------------------- report
mkdir -p "$OUT"
python3 "$BENCH/report.py" report "$RAW" "$OUT" \
    --duration "$DURATION" --rounds "$ROUNDS" --connections "$CONNS" --threads "$THREADS" \
    --accept-encoding "$ACCEPT_ENCODING" --verdaccio "$VERDACCIO_VERSION" \
    --tessera-commit "$(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- src || echo '+dirty')"
cp "$RAW" "$OUT/latest.raw.jsonl"
log "done: $OUT/latest.md, $OUT/latest.json"
