# Sends N keep-alive chat requests to the gateway at host:port with a to11 key (tests/bench-callgrind.sh).
import http.client, sys, json
host, port, key, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16})
c = http.client.HTTPConnection(host, port)
bad = 0
for i in range(n):
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", "x-to11-authorization": "Bearer " + key})
    r = c.getresponse(); r.read()
    if r.status != 200: bad += 1
if bad:
    sys.exit(f"{bad} of {n} answers were not 200")
