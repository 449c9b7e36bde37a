#!/usr/bin/env bash
# Benchmark of the usage pipeline at scale: ingestion from the Redis stream into PostgreSQL
# (records/s), then a fill to BENCH_USAGE_RECORDS (10,000,000) records over 30 days and the usage
# and request-log queries over HTTP (p50/max ms). Builds in release mode; installs redis-server
# and PostgreSQL if missing. Uses a fresh database on 127.0.0.1:5432 (dropped at the end) unless
# BENCH_USAGE_DATABASE_URL names one. Settings: BENCH_USAGE_RECORDS, BENCH_USAGE_INGEST (400,000),
# BENCH_USAGE_RUNS (5). The full run takes about 20 minutes and 20 GB of disk on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1)"
cargo build --release --locked --bin to11-bench-usage -p to11-tests
exec target/release/to11-bench-usage
