"""The official OpenAI and Anthropic Python SDKs against a running to11 gateway whose targets are
mocks speaking each provider's wire format (started by tests/tests/sdks.rs). Every call must parse:
text, streams, translated answers, and errors raised as the SDK's own exception types.

Env: see harness.py."""

import anthropic
import openai

from harness import GW, HEADERS, KEY, MSG, check, finish, oa

an = anthropic.Anthropic(base_url=GW, api_key=KEY, default_headers=HEADERS, max_retries=0)


def oa_plain(model, want):
    def run():
        r = oa.chat.completions.create(model=model, messages=MSG)
        assert r.choices[0].message.content == want, r
        assert r.choices[0].finish_reason == "stop", r
        assert r.usage is None or r.usage.total_tokens >= 0
    return run


def oa_stream(model, want, usage):
    def run():
        s = oa.chat.completions.create(model=model, messages=MSG, stream=True,
                                       stream_options={"include_usage": True} if usage else None)
        text, finish, last_usage = "", None, None
        for c in s:
            if c.choices:
                text += c.choices[0].delta.content or ""
                finish = c.choices[0].finish_reason or finish
            if c.usage:
                last_usage = c.usage
        assert text == want, text
        assert finish == "stop", finish
        if usage:
            assert last_usage is not None and last_usage.completion_tokens == 2, last_usage
    return run


def oa_error(model, exc, code, **kw):
    def run():
        try:
            oa.chat.completions.create(model=model, messages=MSG, **kw)
        except exc as e:
            assert e.code == code, (e.code, e.body)
            return
        raise AssertionError("no error")
    return run


def an_plain(model):
    def run():
        m = an.messages.create(model=model, max_tokens=16, messages=MSG)
        assert m.content[0].text == "Hello there", m
        assert m.stop_reason == "end_turn", m
        assert m.usage.output_tokens == 2, m.usage
    return run


def an_stream(model):
    def run():
        with an.messages.stream(model=model, max_tokens=16, messages=MSG) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text == "Hello there", text
        assert final.stop_reason == "end_turn", final
    return run


def an_error(client, model, exc, **kw):
    def run():
        try:
            client.messages.create(model=model, max_tokens=16, messages=MSG, **kw)
        except exc as e:
            assert isinstance(e.body, dict) and e.body.get("type") == "error", e.body
            return
        raise AssertionError("no error")
    return run


check("openai: chat to an OpenAI-compatible provider", oa_plain("openai/m1", "Hello from the mock"))
check("openai: chat stream to an OpenAI-compatible provider", oa_stream("openai/m1", "Hello from the mock", False))
check("openai: chat translated to Anthropic", oa_plain("anthropic/m1", "Hello there"))
check("openai: chat stream translated to Anthropic, with usage", oa_stream("anthropic/m1", "Hello there", True))
check("openai: chat translated to Claude on Vertex", oa_plain("vertex/claude-m1@20250514", "Hello there"))
check("openai: chat stream translated to Claude on Bedrock", oa_stream("bedrock/eu.anthropic.claude-m1-v1:0", "Hello there", True))
check("openai: chat translated to Gemini", oa_plain("gemini/m1", "Hello there"))
check("openai: chat stream translated to Gemini, with usage", oa_stream("gemini/m1", "Hello there", True))
check("openai: chat translated to Bedrock Converse", oa_plain("bedrock/m1", "Hello there"))
check("openai: chat stream translated to Bedrock ConverseStream, with usage", oa_stream("bedrock/m1", "Hello there", True))
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look something up",
                                          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]


def oa_tools(model, stream, call_id):
    def run():
        import json
        if stream:
            calls = {}
            finish = None
            for c in oa.chat.completions.create(model=model, messages=MSG, tools=TOOLS, stream=True):
                if not c.choices:
                    continue
                for tc in c.choices[0].delta.tool_calls or []:
                    entry = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                    entry["id"] = tc.id or entry["id"]
                    if tc.function:
                        entry["name"] = tc.function.name or entry["name"]
                        entry["arguments"] += tc.function.arguments or ""
                finish = c.choices[0].finish_reason or finish
            call = calls[0]
        else:
            r = oa.chat.completions.create(model=model, messages=MSG, tools=TOOLS)
            finish = r.choices[0].finish_reason
            tc = r.choices[0].message.tool_calls[0]
            call = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
        assert finish == "tool_calls", finish
        assert call["id"].startswith(call_id) and call["name"] == "lookup", call
        assert json.loads(call["arguments"]) == {"q": "x"}, call
    return run


def oa_midstream_error(model):
    def run():
        got = ""
        try:
            for c in oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "fail midway"}], stream=True):
                if c.choices:
                    got += c.choices[0].delta.content or ""
        except openai.APIError as e:
            assert "Overloaded" in str(e), e
            assert got == "Hello", got
            return
        raise AssertionError(f"the stream ended without an error after {got!r}")
    return run


def an_midstream_error(model):
    def run():
        got = ""
        try:
            with an.messages.stream(model=model, max_tokens=16, messages=[{"role": "user", "content": "fail midway"}]) as s:
                for t in s.text_stream:
                    got += t
        except anthropic.APIError as e:
            assert "Overloaded" in str(e), e
            assert got == "Hello", got
            return
        raise AssertionError(f"the stream ended without an error after {got!r}")
    return run


check("openai: tool call translated from Anthropic", oa_tools("anthropic/m1", False, "toolu_1"))
check("openai: streamed tool call translated from Anthropic", oa_tools("anthropic/m1", True, "toolu_1"))
check("openai: tool call translated from Gemini", oa_tools("gemini/m1", False, "call_"))
check("openai: streamed tool call translated from Gemini", oa_tools("gemini/m1", True, "call_"))
check("openai: tool call translated from Bedrock Converse", oa_tools("bedrock/m1", False, "tooluse_1"))
check("openai: streamed tool call translated from Bedrock ConverseStream", oa_tools("bedrock/m1", True, "tooluse_1"))
SCHEMA = {"type": "json_schema", "json_schema": {"name": "query", "schema": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": False}}}


def oa_json(model, stream, response_format):
    """JSON mode: the answer's content is the JSON object, whatever carries it upstream (Gemini's
    responseMimeType, or the forced tool on Claude and Converse), and the turn simply stops."""
    def run():
        import json
        if stream:
            text, finish = "", None
            for c in oa.chat.completions.create(model=model, messages=MSG, response_format=response_format, stream=True):
                if c.choices:
                    assert not c.choices[0].delta.tool_calls, c
                    text += c.choices[0].delta.content or ""
                    finish = c.choices[0].finish_reason or finish
        else:
            r = oa.chat.completions.create(model=model, messages=MSG, response_format=response_format)
            assert not r.choices[0].message.tool_calls, r
            text, finish = r.choices[0].message.content, r.choices[0].finish_reason
        assert json.loads(text) == {"q": "x"}, text
        assert finish == "stop", finish
    return run


for target, name in [("anthropic/m1", "Anthropic"), ("bedrock/eu.anthropic.claude-m1-v1:0", "Claude on Bedrock"),
                     ("bedrock/m1", "Bedrock Converse"), ("gemini/m1", "Gemini")]:
    check(f"openai: json_schema answer from {name}", oa_json(target, False, SCHEMA))
    check(f"openai: streamed json_object answer from {name}", oa_json(target, True, {"type": "json_object"}))
check("openai: an error inside Anthropic's stream raises APIError", oa_midstream_error("anthropic/m1"))
check("anthropic: an error inside the stream raises APIError", an_midstream_error("anthropic/m1"))
check("openai: unknown model raises NotFoundError", oa_error("nope/x", openai.NotFoundError, "model_not_found"))
check("openai: untranslatable request raises BadRequestError",
      oa_error("anthropic/m1", openai.BadRequestError, "unsupported_by_target", temperature=1.5))
check("anthropic: messages to Anthropic", an_plain("anthropic/m1"))
check("anthropic: messages stream to Anthropic", an_stream("anthropic/m1"))
check("anthropic: messages stream to Claude on Vertex", an_stream("vertex/claude-m1@20250514"))
check("anthropic: messages to Claude on Bedrock", an_plain("bedrock/eu.anthropic.claude-m1-v1:0"))
check("anthropic: messages stream to Claude on Bedrock (event stream → SSE)", an_stream("bedrock/eu.anthropic.claude-m1-v1:0"))


def an_translated(model, want, stream, output_tokens=4):
    def run():
        if stream:
            with an.messages.stream(model=model, max_tokens=16, messages=MSG) as s:
                text = "".join(s.text_stream)
                final = s.get_final_message()
        else:
            final = an.messages.create(model=model, max_tokens=16, messages=MSG)
            text = final.content[0].text
        assert text == want, text
        assert final.stop_reason == "end_turn", final
        assert final.usage.output_tokens == output_tokens, final.usage
    return run


check("anthropic: messages translated to an OpenAI-compatible provider", an_translated("openai/m1", "Hello from the mock", False))
check("anthropic: messages stream translated to an OpenAI-compatible provider", an_translated("openai/m1", "Hello from the mock", True))
bad = anthropic.Anthropic(base_url=GW, api_key="x", default_headers={"x-to11-authorization": "Bearer to11_gk_wrong"}, max_retries=0)
check("anthropic: a bad to11 key raises AuthenticationError", an_error(bad, "anthropic/m1", anthropic.AuthenticationError))
check("anthropic: messages translated to Gemini", an_translated("gemini/m1", "Hello there", False, 2))
check("anthropic: messages stream translated to Gemini", an_translated("gemini/m1", "Hello there", True, 2))
check("anthropic: messages translated to Bedrock Converse", an_translated("bedrock/m1", "Hello there", False, 2))
check("anthropic: messages stream translated to Bedrock ConverseStream", an_translated("bedrock/m1", "Hello there", True, 2))
AN_TOOLS = [{"name": "lookup", "description": "Look something up",
             "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]


def an_tools(model, stream):
    def run():
        if stream:
            with an.messages.stream(model=model, max_tokens=16, messages=MSG, tools=AN_TOOLS) as s:
                for _ in s:
                    pass
                final = s.get_final_message()
        else:
            final = an.messages.create(model=model, max_tokens=16, messages=MSG, tools=AN_TOOLS)
        uses = [b for b in final.content if b.type == "tool_use"]
        assert len(uses) == 1 and uses[0].name == "lookup" and uses[0].input == {"q": "x"}, final.content
        assert uses[0].id, uses[0]
        assert final.stop_reason == "tool_use", final
    return run


check("anthropic: tool use translated to Gemini", an_tools("gemini/m1", False))
check("anthropic: streamed tool use translated to Gemini", an_tools("gemini/m1", True))
check("anthropic: tool use translated to Bedrock Converse", an_tools("bedrock/m1", False))
check("anthropic: streamed tool use translated to Bedrock ConverseStream", an_tools("bedrock/m1", True))


def an_session(model):
    """Prompt caching, extended thinking and tools over two turns, as the Anthropic SDK sends
    them: the tool call comes back parsed, and the next turn (the signed thinking block, the call
    and its result) is accepted. tests/e2e_agents.rs checks what the upstream received."""
    def run():
        system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
        tools = [dict(AN_TOOLS[0], cache_control={"type": "ephemeral"})]
        thinking = {"type": "enabled", "budget_tokens": 1024}
        with an.messages.stream(model=model, max_tokens=2048, system=system, tools=tools, thinking=thinking,
                                messages=MSG, extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"}) as s:
            first = s.get_final_message()
        use = [b for b in first.content if b.type == "tool_use"][0]
        history = MSG + [
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "Look it up.", "signature": "EqQBsig=="}]
             + [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "42",
                                          "cache_control": {"type": "ephemeral"}}]}]
        second = an.messages.create(model=model, max_tokens=2048, system=system, tools=tools, thinking=thinking,
                                    messages=history)
        assert second.stop_reason in ("tool_use", "end_turn"), second
        assert second.usage.input_tokens >= 0, second.usage
    return run


for target, name in [("anthropic/m1", "Anthropic"), ("vertex/claude-m1@20250514", "Claude on Vertex"),
                     ("bedrock/eu.anthropic.claude-m1-v1:0", "Claude on Bedrock")]:
    check(f"anthropic: caching, thinking and tools over two turns, {name}", an_session(target))
check("anthropic: a request the target cannot express raises BadRequestError",
      an_error(an, "openai/m1", anthropic.BadRequestError,
               extra_body={"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]}))



def _raises(call, exc, code):
    try:
        call()
    except exc as e:
        return e.code == code
    return False


def mock_vector(text, dims=4):
    """What the mocks embed a text as (tests/src/native_mock/google.rs `mock_vector`)."""
    return [len(text) / 8.0] + [1.0 / (i + 1) for i in range(1, dims)]


def oa_embeddings(model, inputs, dims=None, encoding=None):
    """The SDK asks for base64 unless told otherwise, and decodes it: the floats must be the
    upstream's, in input order."""
    def run():
        kw = {}
        if dims:
            kw["dimensions"] = dims
        if encoding:
            kw["encoding_format"] = encoding
        r = oa.embeddings.create(model=model, input=inputs, **kw)
        texts = [inputs] if isinstance(inputs, str) else inputs
        assert [d.index for d in r.data] == list(range(len(texts))), r.data
        for d, t in zip(r.data, texts):
            want = mock_vector(t, dims or 4)
            got = d.embedding
            assert len(got) == len(want) and all(abs(a - b) < 1e-6 for a, b in zip(got, want)), (got, want)
    return run


check("openai: embeddings translated to Gemini (batched, base64)", oa_embeddings("gemini/m1", ["hello", "a longer text"]))
check("openai: embeddings translated to Gemini with dimensions, as floats", oa_embeddings("gemini/m1", ["hi"], 8, "float"))
check("openai: embeddings translated to Vertex predict", oa_embeddings("vertex/text-embedding-m1", ["hello", "world!"], 6))
check("openai: embeddings translated to Bedrock Titan", oa_embeddings("bedrock/amazon.titan-embed-text-v2:0", "hello", 256))
check("openai: embeddings translated to Bedrock Cohere embed (batched)", oa_embeddings("bedrock/cohere.embed-v4:0", ["a", "bc", "def"]))
check("openai: several inputs to Titan raise BadRequestError",
      lambda: (_ for _ in ()).throw(AssertionError("no error")) if not _raises(
          lambda: oa.embeddings.create(model="bedrock/amazon.titan-embed-text-v2:0", input=["a", "b"]),
          openai.BadRequestError, "unsupported_by_target") else None)

finish("SDK checks")
