#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (repeatable whatever else the machine is
# doing, unlike CPU time): a to11-data-plane replica (one worker) under valgrind, configured over
# a private Redis by a to11-control-plane, proxying to the fast mock upstream; 300 warm-up
# requests, then BENCH_REQUESTS (3000) counted. One line per mode in BENCH_MODES (default: metering
# on, metering off, metrics off, and `limited`: metering on, with a key that has request, token
# and concurrency limits and a budget, against a priced provider): each is `name:VAR=value,…`.
# `traced`: metering and metrics on, and OpenTelemetry traces of every request (always_on)
# exported to the mock upstream, whose fast path answers 200 on /v1/traces too (`@MOCK@` in a
# mode's values is the mock's address), with the SDK's default batching; a mode is counted once
# its requests' spans were exported; `plain`: metering on, metrics off, no traces (the
# baseline of "metrics and tracing on within 5 % of both off"); `floor`: not to11 but
# `to11-floor-proxy`, the same server and upstream client with none of to11's work (what the
# stack itself costs a hop; its mode's variables are ignored).
# BENCH_KEEP=PATH keeps each mode's callgrind file as PATH.<mode> (for callgrind_annotate).
# BENCH_CALLGRIND_ARGS: more options for callgrind (`--dump-instr=yes`: costs by instruction).
# BENCH_STREAM=1: each request asks for an SSE stream with usage (the benchmark's stream row).
# BENCH_CONNECTIONS=C: the counted requests (and the warm-up) are sent over C connections at once
# (default 1: one after another), to count what a loaded replica does per request.
# Builds the release binaries first, unless BENCH_BIN names a directory holding them
# (to11-data-plane, to11-control-plane, to11-mock-upstream, and to11-floor-proxy for `floor`: a
# copy of an earlier build, to compare two builds in interleaved runs); installs valgrind and
# redis-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --release --locked --bins -p to11-tests -p to11-data-plane -p to11-control-plane
  BIN=target/release
fi
N=${BENCH_REQUESTS:-3000}
MODES=${BENCH_MODES:-"floor: metered: limited: unmetered:TO11_USAGE=false no-metrics:TO11_METRICS=false,TO11_USAGE=false traced:OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://@MOCK@/v1/traces,OTEL_TRACES_SAMPLER=always_on plain:TO11_METRICS=false"}
free() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
D=$(mktemp -d)
RP=$(free); API=$(free)
redis-server --port "$RP" --save '' --appendonly no --daemonize yes --pidfile "$D/redis.pid" >/dev/null
export TO11_REDIS_URL=redis://127.0.0.1:$RP TO11_MASTER_KEY=dG8xMS10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE= \
  TO11_LOG=warn TO11_ALLOW_PRIVATE_UPSTREAMS=true TO11_ADMIN_TOKEN=callgrind-operator-token-0123456789
TO11_API_LISTEN=127.0.0.1:$API "$BIN/to11-control-plane" >"$D/cp.log" 2>&1 &
CP=$!
"$BIN/to11-mock-upstream" 127.0.0.1:0 --fast >"$D/mock.addr" &
MOCK=$!
trap 'kill $CP $MOCK 2>/dev/null; redis-cli -p $RP shutdown nosave >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
for _ in $(seq 100); do [ -s "$D/mock.addr" ] && curl -s -o /dev/null "http://127.0.0.1:$API/healthz" && break; sleep 0.1; done
MA=$(head -1 "$D/mock.addr")
api() { curl -sf -H "authorization: Bearer $TO11_ADMIN_TOKEN" -H 'content-type: application/json' "http://127.0.0.1:$API/api/v1$1" -d "$2"; }
api /projects '{"name":"Bench"}' >/dev/null
api /projects/bench/providers "{\"kind\":\"openai\",\"base_url\":\"http://$MA/v1\",\"credential\":{\"api_key\":\"sk-mock\"},\"models\":[\"gpt-4o\"]}" >/dev/null
KEY=$(api /projects/bench/keys '{"name":"b"}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])')
# The same requests through a key with limits that never refuse, and a budget (gpt-4o is priced).
LKEY=$(api /projects/bench/keys '{"name":"l","limits":{"requests_per_minute":100000000,"tokens_per_minute":100000000000,"concurrent":1000,"budget":{"amount":"1000000","period":"month"}}}' | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])')
# A traced replica: waits until the spans of the first $2 requests (two each: the request and its
# one attempt) were exported (or dropped), so that the counted window holds exactly the export of
# its own requests' spans. Nothing to wait for otherwise.
spans_out() {
  local want=$((2 * $2)) got
  # Each look renders /metrics inside the counted window (some 300,000 instructions under
  # valgrind), and the exporter sends every OTEL_BSP_SCHEDULE_DELAY (5 s) anyway: after a first
  # look, wait that long, then look once a second. Looking ten times a second added 2,000
  # instructions to each traced request.
  for i in $(seq 60); do
    got=$(curl -s "http://127.0.0.1:$1/metrics" | awk '/^to11_trace_spans_(exported|dropped)_total/{s+=$2} /^to11_trace_/{t=1} END{if(!t)s=-1; print int(s)}')
    [ "$got" -lt 0 ] || [ "$got" -ge "$want" ] && return
    if [ "$i" = 1 ]; then sleep 5; else sleep 1; fi
  done
  echo "the spans of $2 requests were not exported" >&2
}
declare -A counted
for mode in $MODES; do
  name=${mode%%:*}
  vars=${mode#*:}
  vars=${vars//@MOCK@/$MA}
  GP=$(free)
  if [ "$name" = floor ]; then
    valgrind --tool=callgrind ${BENCH_CALLGRIND_ARGS:-} --callgrind-out-file="$D/cg.$name.%p" \
      "$BIN/to11-floor-proxy" "127.0.0.1:$GP" "http://$MA" >"$D/gw.$name.log" 2>&1 &
    GW=$!
    for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$GP/" && break; sleep 0.2; done
  else
    (
      IFS=, && for v in $vars; do [ -n "$v" ] && export "${v?}"; done
      TO11_GATEWAY_LISTEN=127.0.0.1:$GP TO11_GATEWAY_WORKERS=1 exec valgrind --tool=callgrind ${BENCH_CALLGRIND_ARGS:-} \
        --callgrind-out-file="$D/cg.$name.%p" "$BIN/to11-data-plane" >"$D/gw.$name.log" 2>&1
    ) &
    GW=$!
    # Ready (its configuration loaded), not only listening: a request before would be refused.
    for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$GP/readyz" && break; sleep 0.2; done
  fi
  K=$KEY
  [ "$name" = limited ] && K=$LKEY
  python3 tests/bench/callgrind_load.py 127.0.0.1 "$GP" "$K" 300
  sleep 0.5
  spans_out "$GP" 300
  PID=$(pgrep -f "callgrind-out-file=$D/cg.$name" | head -1)
  callgrind_control -d "$PID" >/dev/null
  python3 tests/bench/callgrind_load.py 127.0.0.1 "$GP" "$K" "$N"
  sleep 0.3
  spans_out "$GP" $((300 + N))
  callgrind_control -d "$PID" >/dev/null
  if [ "$name" = traced ]; then
    # Evidence that the spans went out (exported and dropped, as /metrics counts them).
    curl -s "http://127.0.0.1:$GP/metrics" | grep -E '^to11_trace_(spans|export)' | tr '\n' ' '; echo
  fi
  kill "$PID" 2>/dev/null || true
  wait "$GW" 2>/dev/null || true
  F=$(ls "$D"/cg."$name".*.2)
  [ -n "${BENCH_KEEP:-}" ] && cp "$F" "$BENCH_KEEP.$name"
  T=$(grep -E '^(summary|totals):' "$F" | head -1 | awk '{print $2}')
  counted[$name]=$((T / N))
  printf '%-14s %8d instructions per request  (%s)\n' "$name" "${counted[$name]}" "${vars:-defaults}"
done
if [ -n "${counted[floor]:-}" ] && [ -n "${counted[unmetered]:-}" ]; then
  python3 -c "print(f'to11 unmetered / floor: {${counted[unmetered]}/${counted[floor]}:.3f}x ({${counted[unmetered]}-${counted[floor]}} instructions of to11 per request)')"
fi
if [ -n "${counted[metered]:-}" ] && [ -n "${counted[unmetered]:-}" ]; then
  python3 -c "print(f'metering on / off: {${counted[metered]}/${counted[unmetered]}:.3f}x')"
fi
if [ -n "${counted[limited]:-}" ] && [ -n "${counted[metered]:-}" ]; then
  python3 -c "print(f'limits and budget / none (metering on): {${counted[limited]}/${counted[metered]}:.3f}x')"
fi
if [ -n "${counted[unmetered]:-}" ] && [ -n "${counted[no-metrics]:-}" ]; then
  python3 -c "print(f'metrics on / off (metering off): {${counted[unmetered]}/${counted[no-metrics]}:.3f}x')"
fi
if [ -n "${counted[traced]:-}" ] && [ -n "${counted[metered]:-}" ]; then
  python3 -c "print(f'tracing on / off (metering and metrics on): {${counted[traced]}/${counted[metered]}:.3f}x')"
fi
if [ -n "${counted[traced]:-}" ] && [ -n "${counted[plain]:-}" ]; then
  python3 -c "print(f'metrics and tracing on / both off (metering on): {${counted[traced]}/${counted[plain]}:.3f}x')"
fi
