"""The official OpenAI Python SDK's Responses API (`responses.create`, `responses.stream`) and the
OpenAI Agents SDK against a running to11 gateway whose targets are mocks speaking each provider's
wire format (started by tests/tests/sdks.rs): natively to OpenAI, translated to chat completions
for an OpenAI-compatible server without a Responses API, and on to Claude (Anthropic, Vertex,
Bedrock), Gemini and Bedrock Converse. The oracle for a translated target is the same request
through chat completions: the same text, the same tool call.

Env: see harness.py."""

import asyncio
import json

import openai

from harness import GW, HEADERS, KEY, MSG, check, finish, oa

TOOL = {"type": "function", "name": "lookup", "description": "Look something up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}
CHAT_TOOL = {"type": "function", "function": {k: TOOL[k] for k in ("name", "description", "parameters")}}
SCHEMA = {"type": "json_schema", "name": "query", "strict": True, "schema": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": False}}

TARGETS = [
    ("openai/m1", "OpenAI (native)"),
    ("compat/m1", "an OpenAI-compatible server without a Responses API"),
    ("anthropic/m1", "Anthropic"),
    ("vertex/claude-m1@20250514", "Claude on Vertex"),
    ("bedrock/eu.anthropic.claude-m1-v1:0", "Claude on Bedrock"),
    ("gemini/m1", "Gemini"),
    ("bedrock/m1", "Bedrock Converse"),
]


def chat_text(model):
    return oa.chat.completions.create(model=model, messages=MSG).choices[0].message.content


def plain(model):
    def run():
        r = oa.responses.create(model=model, input="hi", instructions="Be brief.", max_output_tokens=64)
        assert r.status == "completed", r
        want = "mock" if model == "openai/m1" else chat_text(model)
        assert r.output_text == want, (r.output_text, want)
        assert r.usage is not None and r.usage.output_tokens > 0 and r.usage.input_tokens > 0, r.usage
    return run


def streamed(model):
    def run():
        deltas, names = "", []
        with oa.responses.stream(model=model, input=MSG, max_output_tokens=64) as s:
            for e in s:
                names.append(e.type)
                if e.type == "response.output_text.delta":
                    deltas += e.delta
            final = s.get_final_response()
        want = "mock" if model == "openai/m1" else chat_text(model)
        assert deltas == want and final.output_text == want, (deltas, final.output_text, want)
        assert names[0] == "response.created" and names[-1] == "response.completed", names
        assert final.status == "completed" and final.usage and final.usage.output_tokens > 0, final
        seq = [n for n in names if n.startswith("response.output_item")]
        assert seq[0] == "response.output_item.added" and seq[-1] == "response.output_item.done", seq
    return run


def tools(model, stream):
    """Two turns: the model calls the tool; its output goes back with the call; the next turn is
    accepted by the target. The call matches what chat completions gives for the same request."""
    def run():
        want = oa.chat.completions.create(model=model, messages=MSG, tools=[CHAT_TOOL]).choices[0].message.tool_calls[0]
        if stream:
            with oa.responses.stream(model=model, input=MSG, tools=[TOOL]) as s:
                args = "".join(e.delta for e in s if e.type == "response.function_call_arguments.delta")
                first = s.get_final_response()
            assert json.loads(args) == {"q": "x"}, args
        else:
            first = oa.responses.create(model=model, input=MSG, tools=[TOOL])
        calls = [o for o in first.output if o.type == "function_call"]
        assert len(calls) == 1, first.output
        c = calls[0]
        # Ids the gateway generates (Gemini gives none) differ per answer; others are the upstream's.
        same_id = c.call_id == want.id or (want.id.startswith("call_") and c.call_id.startswith("call_"))
        assert same_id and (c.name, json.loads(c.arguments)) == ("lookup", {"q": "x"}), (c, want)
        history = MSG + [o.model_dump(exclude_none=True) for o in first.output] + [
            {"type": "function_call_output", "call_id": c.call_id, "output": "42"}]
        second = oa.responses.create(model=model, input=history, tools=[TOOL], store=False)
        assert second.status == "completed" and second.output, second
    return run


def json_schema(model):
    def run():
        r = oa.responses.create(model=model, input=MSG, text={"format": SCHEMA})
        assert json.loads(r.output_text) == {"q": "x"}, r.output_text
        assert not [o for o in r.output if o.type == "function_call"], r.output
    return run


def refused(model, exc, code, **kw):
    def run():
        try:
            oa.responses.create(model=model, input="hi", **kw)
        except exc as e:
            assert e.code == code, (e.code, e.body)
            return
        raise AssertionError("no error")
    return run


for model, name in TARGETS:
    check(f"responses: whole, {name}", plain(model))
    check(f"responses: streamed, {name}", streamed(model))
for model, name in TARGETS[1:]:
    check(f"responses: function tool over two turns, {name}", tools(model, False))
    check(f"responses: streamed function tool, {name}", tools(model, True))
for model, name in [("anthropic/m1", "Anthropic"), ("gemini/m1", "Gemini"), ("bedrock/m1", "Bedrock Converse")]:
    check(f"responses: JSON schema answer, {name}", json_schema(model))
check("responses: a hosted tool the target cannot run raises BadRequestError",
      refused("anthropic/m1", openai.BadRequestError, "unsupported_by_target", tools=[{"type": "web_search"}]))
check("responses: previous_response_id on a translated target raises BadRequestError",
      refused("gemini/m1", openai.BadRequestError, "unsupported_by_target", previous_response_id="resp_1"))


def agent(model):
    """The OpenAI Agents SDK runs an agent with a function tool through a translated target: the
    model calls the tool, the SDK runs it and sends its output back, and the run completes."""
    def run():
        from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool, set_tracing_disabled
        set_tracing_disabled(True)
        seen = []

        @function_tool
        def lookup(q: str) -> str:
            """Look something up."""
            seen.append(q)
            return "42"

        client = openai.AsyncOpenAI(base_url=f"{GW}/v1", api_key=KEY, default_headers=HEADERS, max_retries=0)
        a = Agent(name="helper", instructions="Use the tool once.", tools=[lookup],
                  model=OpenAIResponsesModel(model=model, openai_client=client))
        from agents.exceptions import MaxTurnsExceeded
        # The mocks call the tool whenever tools are given, so the agent may loop until
        # max_turns: then the tool ran on every turn, and every turn after the first carried
        # the previous call and its output back to the target.
        try:
            result = asyncio.run(Runner.run(a, "look up x", max_turns=3, run_config=RunConfig(tracing_disabled=True)))
            assert result.raw_responses, result
            assert seen == ["x"], seen
        except MaxTurnsExceeded:
            assert len(seen) >= 2 and set(seen) == {"x"}, seen
    return run


check("agents SDK: an agent with a function tool through Claude (translated)", agent("anthropic/m1"))
check("agents SDK: an agent with a function tool through Gemini (translated)", agent("gemini/m1"))

finish("Responses checks")
