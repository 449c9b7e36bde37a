#!/usr/bin/env bash
# The whole to11 test suite, as CI runs it: installs what it needs (redis-server), then checks
# formatting and lints, and runs every test (unit, property, end to end over a private Redis, and
# embedded mode). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (the end-to-end tests start their own on a free port)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi

# The usage tests store records in PostgreSQL: a database of their own on the server at
# 127.0.0.1:5432 when one answers there, else a private server they start (initdb + pg_ctl).
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
  echo "installing postgresql (the usage tests store records in it)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

# The dashboard's browser tests drive Debian's chromium with playwright-core (npm, from
# tests/dashboard/package-lock.json, installed by the test itself).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (the dashboard's end-to-end browser tests)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The metrics test scrapes both planes with a real Prometheus and lints the exposition with
# promtool (Debian's prometheus package ships both; the test starts its own, on a free port).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "installing prometheus (the metrics test scrapes the planes with it)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq prometheus >/dev/null
fi

# The crate graph matches the architecture: the control plane never depends on the data plane
# (only the embedded binary, to11-embedded, puts both planes in one process).
if cargo tree -p to11-control-plane -e normal,build --prefix none --locked | grep -q '^to11-data-plane '; then
  echo "to11-control-plane depends on to11-data-plane; move what both need to to11-io or to11-shared" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
