#!/usr/bin/env bash
# Every scenario at full size, in release mode, one JSON line each (bench/RESULTS.md is made
# from this output). PostgreSQL scenarios use a database `orgata_bench` on the local server.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orgata-target}"
cargo build -q --release -p orgata -p orgata-bench
bench="$CARGO_TARGET_DIR/release/orgata-bench"
pg="${ORGATA_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/orgata_bench}"
psql "${pg%/*}/postgres" -qc "CREATE DATABASE ${pg##*/}" 2>/dev/null || true
"$bench" pbj --store sqlite --protocol graphql
"$bench" pbj --store sqlite --protocol rest
"$bench" pbj --store postgres --protocol graphql --database-url "$pg"
"$bench" pbj --store postgres --protocol rest --database-url "$pg"
"$bench" parked --store sqlite
"$bench" parked --store postgres --database-url "$pg"
"$bench" fanout --store sqlite
"$bench" read --store sqlite
"$bench" replicas --replicas 1,2,3 --database-url "$pg"
