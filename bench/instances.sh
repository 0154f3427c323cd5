#!/usr/bin/env bash
# Scale-out figures side by side in one run: the embedded store, one instance on
# PostgreSQL and two instances on one PostgreSQL (packument and tarball GET with wrk at
# 64 connections, CPU shares, database transactions per request, publish medians,
# revocation trials). The work is done by bench/instances.py; see docs/scaling.md.
# Needs a release build (built when missing), wrk, psql and PostgreSQL at $PG_ADMIN
# (default postgres://postgres@127.0.0.1:5432/postgres).
# Usage: bench/instances.sh [seconds]        TRIALS=1000 PUBLISHES=40 by default
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
exec python3 bench/instances.py "${1:-10}"
