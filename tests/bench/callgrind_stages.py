#!/usr/bin/env python3
"""Where a proxied request's instructions go, by stage of the pipeline, from a callgrind file
that `tests/bench-callgrind.sh` kept (`BENCH_KEEP=PATH` keeps `PATH.<mode>`).

    python3 tests/bench/callgrind_stages.py PATH.metered [PATH.unmetered …] [--requests 3000]

Each stage is the inclusive cost of the functions that make it (callgrind_annotate), divided by
the requests counted; "the rest" is what no stage names (the runtime's polling and timers,
actix-web's routing, wake-ups, the allocator outside the stages). A release build has no line
tables, so a stage is a function and what it calls, not a range of lines.
"""

import re
import subprocess
import sys

# (stage, [substrings of callgrind function names whose inclusive costs add up to it]).
# The names are disjoint subtrees of a request's work.
STAGES = [
    ("client request: read and parse (actix-http h1)", [
        "<actix_http::h1::codec::Codec as tokio_util::codec::decoder::Decoder>::decode",
    ]),
    ("admission: key, BYOK, labels, body scan, resolution", [
        "to11_data_plane::proxy::admit::caller_backed_off",
        "to11_data_plane::auth::Caller::byok",
        "to11_data_plane::proxy::admit::labels",
        "to11_data_plane::proxy::admit::scan",
        "to11_data_plane::proxy::admit::resolve",
    ]),
    # In a traced mode this holds the exporter's POSTs too (the same awc code).
    ("upstream exchange (awc: request built, sent, head read)", [
        "awc::client::Client::request",
        "awc::request::ClientRequest::send_body",
        "<awc::sender::SendClientRequest as core::future::future::Future>::poll",
    ]),
    ("answer: head, served-by headers, body wrappers", [
        "to11_data_plane::proxy::answer::deliver::{{closure}}",
    ]),
    ("answer body to the client (guard, meter)", [
        "<to11_data_plane::proxy::guard::Guarded<S> as futures_core::stream::Stream>::poll_next",
    ]),
    ("response head written (actix-http)", [
        "actix_http::h1::dispatcher::InnerDispatcher<T,S,B,X,U>::send_response",
    ]),
    ("records shipped (shipper task)", [
        "to11_data_plane::metering::ship::run::{{closure}}",
    ]),
    # A traced request's spans are encoded as it goes: begun, named and resolved here; its
    # attempt's span, ended with the answer's body (in "answer body") and the batches' POSTs
    # (in "upstream exchange") count where they run.
    ("traces: request span begun, resolved; attempt span", [
        "to11_data_plane::otel::Batcher::begin",
        "to11_data_plane::otel::identify",
        "to11_shared::otel::genai::resolved",
        "to11_data_plane::proxy::attempt::Attempts::begin_span",
        "to11_data_plane::proxy::attempt::Attempts::end_span",
    ]),
]


def inclusive(path):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
        capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(?:\S*?:)?(.*?)\s*(\[.*\])?$", line)
        if m:
            costs[m.group(2)] = int(m.group(1).replace(",", ""))
    return costs


def main():
    args = sys.argv[1:]
    requests = 3000
    if "--requests" in args:
        i = args.index("--requests")
        requests = int(args[i + 1])
        del args[i:i + 2]
    if not args:
        sys.exit(__doc__)
    tables = [inclusive(p) for p in args]
    names = [p.rsplit(".", 1)[-1] for p in args]
    print(f"{'stage (instructions per request)':<56}" + "".join(f"{n:>12}" for n in names))
    rest = [t.get("PROGRAM TOTALS", 0) for t in tables]
    for stage, fns in STAGES:
        row = []
        for k, t in enumerate(tables):
            v = sum(t.get(f, 0) for f in fns)
            rest[k] -= v
            row.append(v / requests)
        print(f"{stage:<56}" + "".join(f"{v:>12,.0f}" for v in row))
    print(f"{'the rest (runtime, routing, wake-ups, allocator)':<56}"
          + "".join(f"{v / requests:>12,.0f}" for v in rest))
    print(f"{'total':<56}"
          + "".join(f"{t.get('PROGRAM TOTALS', 0) / requests:>12,.0f}" for t in tables))


if __name__ == "__main__":
    main()
