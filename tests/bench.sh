#!/usr/bin/env bash
# Benchmark of one proxy hop: direct to a fast mock upstream vs nginx proxy_pass vs a to11 replica,
# side by side in one run. Builds in release mode and installs nginx and redis-server if missing.
# Rows: the hop at BENCH_CONNECTIONS, at BENCH_HIGH_CONNECTIONS, at a fixed BENCH_FIXED_RATE, SSE
# streams, OpenAI chat translated to an Anthropic upstream, an upstream writing headers and body
# 1 ms apart (the stall check), the floor (to11-floor-proxy: the same server and upstream client
# as to11 and none of its work, at both connection counts and streaming); then to11 / nginx
# against the issue's targets. ~5 minutes.
# Settings: BENCH_CONNECTIONS (32), BENCH_HIGH_CONNECTIONS (256), BENCH_SECONDS (5, every closed
# loop and open loop), BENCH_RATE (5000 req/s for the main table's latency), BENCH_FIXED_RATE
# (1000 req/s: added p99 and CPU at a fixed rate), BENCH_STALL_REQUESTS (500), BENCH_CHANGES (200
# configuration changes), BENCH_METERING_ROUNDS (8: metering, observability and limits rounds).
# BENCH_ONLY=limits runs only the limits rounds (a key with limits and a budget vs a plain one).
# BENCH_ONLY=metering runs only the metering rounds (about 90 s); BENCH_ONLY=observability only
# metrics and traces of every request on vs both off (metering on in both; about 90 s). Both also
# run with the two replicas loaded together (about 50 s more each), and at a fixed BENCH_PAIR_RATE
# (10000 req/s; 0 skips it), about 90 s more each.
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
