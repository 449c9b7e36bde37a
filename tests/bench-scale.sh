#!/usr/bin/env bash
# Many tenants on one deployment: N projects (each a provider exposing 3 models and a key) created
# through the API of the real control plane over a private Redis, then the control plane restarted
# and a fresh replica started over them. Prints writes/s, both RSS, the restart and cold-start
# times and the propagation p99. Settings: BENCH_PROJECTS (10000), BENCH_CONCURRENCY (16).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}
cargo build --release --locked -p to11-tests --bin to11-bench-scale -p to11-control-plane --bin to11-control-plane -p to11-data-plane --bin to11-data-plane
exec target/release/to11-bench-scale
