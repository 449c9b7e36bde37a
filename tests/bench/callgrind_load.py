# Sends N keep-alive chat requests to the gateway at host:port with a to11 key (tests/bench-callgrind.sh).
# BENCH_STREAM=1: each asks for an SSE stream with usage (the benchmark's stream row), and must end
# with `data: [DONE]`. BENCH_CONNECTIONS=C (default 1): the N requests are spread over C
# connections sending at once (each its share in turn), as the benchmark's 256-connection row
# loads the hop; the last connections send one request fewer when C does not divide N.
import http.client, sys, json, os, threading
host, port, key, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
stream = os.environ.get("BENCH_STREAM") == "1"
conns = max(1, int(os.environ.get("BENCH_CONNECTIONS", "1")))
ask = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
if stream:
    ask.update(stream=True, stream_options={"include_usage": True})
body = json.dumps(ask)
bad = []
lock = threading.Lock()


def send(count):
    c = http.client.HTTPConnection(host, port, timeout=600)
    failed = 0
    for _ in range(count):
        c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", "x-to11-authorization": "Bearer " + key})
        r = c.getresponse(); answer = r.read()
        if r.status != 200 or (stream and not answer.rstrip().endswith(b"data: [DONE]")): failed += 1
    with lock:
        bad.append(failed)


shares = [n // conns + (1 if i < n % conns else 0) for i in range(conns)]
threads = [threading.Thread(target=send, args=(s,)) for s in shares if s]
for t in threads: t.start()
for t in threads: t.join()
if len(bad) != len(threads) or sum(bad):
    failed = sum(bad) + (len(threads) - len(bad)) * (n // conns)
    sys.exit(f"{failed} of {n} answers were not 200" + (" streams ending in [DONE]" if stream else ""))
