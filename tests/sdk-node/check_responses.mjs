// The official OpenAI Node SDK's Responses API (`responses.create`, `responses.stream`) against a
// running to11 gateway whose targets are mocks (started by tests/tests/sdks.rs): natively to
// OpenAI, and translated for a chat-only server, Claude (Anthropic, Vertex, Bedrock), Gemini and
// Bedrock Converse. The oracle for a translated target is the same request through chat
// completions.
//
// Env: TO11_GATEWAY (http://host:port), TO11_KEY (a to11 gateway key).

import OpenAI from "openai";

const GW = process.env.TO11_GATEWAY;
const KEY = process.env.TO11_KEY;
const oa = new OpenAI({
  baseURL: `${GW}/v1`,
  apiKey: KEY,
  defaultHeaders: { "x-to11-authorization": `Bearer ${KEY}` },
  maxRetries: 0,
});
const failures = [];

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures.push(name);
    console.log(`FAIL ${name}: ${e?.constructor?.name}: ${e?.message}`);
  }
}

function assert(cond, what) {
  if (!cond) throw new Error(typeof what === "string" ? what : JSON.stringify(what));
}

const TOOL = {
  type: "function", name: "lookup", description: "Look something up", strict: false,
  parameters: { type: "object", properties: { q: { type: "string" } }, required: ["q"] },
};
const SCHEMA = {
  type: "json_schema", name: "query", strict: true,
  schema: { type: "object", properties: { q: { type: "string" } }, required: ["q"], additionalProperties: false },
};
const TARGETS = [
  ["openai/m1", "OpenAI (native)"],
  ["compat/m1", "an OpenAI-compatible server without a Responses API"],
  ["anthropic/m1", "Anthropic"],
  ["vertex/claude-m1@20250514", "Claude on Vertex"],
  ["bedrock/eu.anthropic.claude-m1-v1:0", "Claude on Bedrock"],
  ["gemini/m1", "Gemini"],
  ["bedrock/m1", "Bedrock Converse"],
];

async function chatText(model) {
  const r = await oa.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
  return r.choices[0].message.content;
}

for (const [model, name] of TARGETS) {
  const want = async () => (model === "openai/m1" ? "mock" : await chatText(model));
  await check(`node responses: whole, ${name}`, async () => {
    const r = await oa.responses.create({ model, input: "hi", instructions: "Be brief.", max_output_tokens: 64 });
    const w = await want();
    assert(r.status === "completed" && r.output_text === w, [r.output_text, w]);
    assert(r.usage && r.usage.output_tokens > 0, r.usage);
  });
  await check(`node responses: streamed, ${name}`, async () => {
    const s = oa.responses.stream({ model, input: "hi" });
    let deltas = "";
    const types = [];
    for await (const e of s) {
      types.push(e.type);
      if (e.type === "response.output_text.delta") deltas += e.delta;
    }
    const final = await s.finalResponse();
    const w = await want();
    assert(deltas === w && final.output_text === w, [deltas, final.output_text, w]);
    assert(types[0] === "response.created" && types.at(-1) === "response.completed", types);
  });
}

for (const [model, name] of TARGETS.slice(1)) {
  await check(`node responses: function tool over two turns, ${name}`, async () => {
    const first = await oa.responses.create({ model, input: "hi", tools: [TOOL] });
    const calls = first.output.filter((o) => o.type === "function_call");
    assert(calls.length === 1 && calls[0].name === "lookup", first.output);
    assert(JSON.parse(calls[0].arguments).q === "x", calls[0]);
    const second = await oa.responses.create({
      model, tools: [TOOL], store: false,
      input: [{ role: "user", content: "hi" }, ...first.output,
        { type: "function_call_output", call_id: calls[0].call_id, output: "42" }],
    });
    assert(second.status === "completed" && second.output.length > 0, second);
  });
}

for (const [model, name] of [["anthropic/m1", "Anthropic"], ["gemini/m1", "Gemini"], ["bedrock/m1", "Bedrock Converse"]]) {
  await check(`node responses: JSON schema answer, ${name}`, async () => {
    const r = await oa.responses.create({ model, input: "hi", text: { format: SCHEMA } });
    assert(JSON.parse(r.output_text).q === "x", r.output_text);
  });
}

await check("node responses: a hosted tool the target cannot run raises BadRequestError", async () => {
  try {
    await oa.responses.create({ model: "anthropic/m1", input: "hi", tools: [{ type: "web_search" }] });
  } catch (e) {
    assert(e instanceof OpenAI.BadRequestError && e.code === "unsupported_by_target", [e.code, e.message]);
    return;
  }
  throw new Error("no error");
});

if (failures.length) {
  console.log(`${failures.length} Node Responses check(s) failed`);
  process.exit(1);
}
console.log("all Node Responses checks passed");
