"""What every SDK check script shares: the gateway's address and key (from the environment, set
by tests/tests/sdks.rs), the OpenAI client, and `check`/`finish`, which report every check and
fail the run if any failed.

Env: TO11_GATEWAY (http://host:port), TO11_KEY (a to11 gateway key)."""

import os
import sys

import openai

GW = os.environ["TO11_GATEWAY"]
KEY = os.environ["TO11_KEY"]
# The to11 key goes in x-to11-authorization; it is also the SDKs' required api_key (a to11 key in
# Authorization/x-api-key is never used as an upstream key).
HEADERS = {"x-to11-authorization": f"Bearer {KEY}"}
MSG = [{"role": "user", "content": "hi"}]
oa = openai.OpenAI(base_url=f"{GW}/v1", api_key=KEY, default_headers=HEADERS, max_retries=0)
failures = []


def check(name, fn):
    try:
        fn()
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure, then fail
        failures.append(name)
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def finish(what):
    """Exits non-zero if a check failed; prints `all {what} passed` otherwise."""
    if failures:
        print(f"{len(failures)} of the {what} failed")
        sys.exit(1)
    print(f"all {what} passed")
