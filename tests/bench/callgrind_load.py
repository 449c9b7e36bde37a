# Sends N keep-alive chat requests to the gateway at host:port with a to11 key (tests/bench-callgrind.sh).
# BENCH_STREAM=1: each asks for an SSE stream with usage (the benchmark's stream row), and must end
# with `data: [DONE]`.
import http.client, sys, json, os
host, port, key, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
stream = os.environ.get("BENCH_STREAM") == "1"
ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
if stream:
    ask.update(stream=True, stream_options={"include_usage": True})
body = json.dumps(ask)
c = http.client.HTTPConnection(host, port)
bad = 0
for i in range(n):
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", "x-to11-authorization": "Bearer " + key})
    r = c.getresponse(); answer = r.read()
    if r.status != 200 or (stream and not answer.rstrip().endswith(b"data: [DONE]")): bad += 1
if bad:
    sys.exit(f"{bad} of {n} answers were not 200" + (" streams ending in [DONE]" if stream else ""))
