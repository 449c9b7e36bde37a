#!/usr/bin/env bash
# Benchmark of one proxy hop: direct to a fast mock upstream vs nginx proxy_pass vs a to11 replica,
# side by side in one run. Builds in release mode and installs nginx and redis-server if missing.
# Settings: BENCH_CONNECTIONS (32), BENCH_SECONDS (5), BENCH_RATE (5000 req/s for latency).
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"
cargo build --release --locked --bins -p to11-tests -p to11-data-plane
exec taskset -c 1 target/release/to11-bench
