/**
 * A tool call in the history whose `arguments` are not a JSON object (a call cut off by
 * `max_tokens` comes back as `{"city": "Par`, and agent loops send the history back as it was).
 * OpenAI takes any text there; Anthropic's `tool_use.input` and Gemini's `functionCall.args` must
 * be objects. So an `openai`-type provider gets the caller's text as sent (the AI SDK's converter
 * would send `"{}"`: the history changed), and Anthropic and Gemini hops are skipped as
 * `capability_missing` without a call, so the chain falls back instead of failing the request as
 * a bad request on their 400 (found by a black-box probe).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeGemini, startFakeGemini } from "../support/fake-gemini.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

const TRUNCATED = '{"city": "Par';
const tool = {
  type: "function",
  function: { name: "weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
};

/** A history whose second tool call's arguments are `args`; the first's are a whole object. */
const history = (args: string) => [
  { role: "user", content: "Weather in Paris and Rome?" },
  {
    role: "assistant",
    content: null,
    tool_calls: [
      { id: "call_1", type: "function", function: { name: "weather", arguments: '{"city": "Rome"}' } },
      { id: "call_2", type: "function", function: { name: "weather", arguments: args } },
    ],
  },
  { role: "tool", tool_call_id: "call_1", content: "sunny" },
  { role: "tool", tool_call_id: "call_2", content: "error: arguments were cut off" },
];

let openai: FakeOpenAI;
let anthropic: FakeAnthropic;
let gemini: FakeGemini;
let stack: Stack;

beforeAll(async () => {
  [openai, anthropic, gemini] = await Promise.all([
    startFakeOpenAI({ apiKey: "sk-up-key" }),
    startFakeAnthropic({ apiKey: "sk-ant-key" }),
    startFakeGemini({ apiKey: "AIza-key" }),
  ]);
  const tools = ["tools"];
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up-key", ANT_KEY: "sk-ant-key", GEM_KEY: "AIza-key" },
    config: {
      providers: {
        up: { type: "openai", base_url: openai.url, api_key_env: "UP_KEY" },
        ant: { type: "anthropic", base_url: anthropic.url, api_key_env: "ANT_KEY" },
        gem: { type: "gemini", base_url: gemini.url, api_key_env: "GEM_KEY" },
      },
      models: {
        gpt: { provider: "up", name: "up-gpt", capabilities: tools },
        claude: { provider: "ant", name: "up-claude", capabilities: tools },
        gemini: { provider: "gem", name: "up-gemini", capabilities: tools },
      },
      routes: {
        default: { chain: [{ model: "claude" }, { model: "gemini" }, { model: "gpt" }] },
        "claude-only": { chain: [{ model: "claude" }] },
      },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await Promise.all([openai?.close(), anthropic?.close(), gemini?.close()]);
});
beforeEach(() => {
  openai.reset();
  anthropic.reset();
  gemini.reset();
});

const gateway = (body: Record<string, unknown>) =>
  fetch(`${stack.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** The arguments of the tool calls the OpenAI fake received, in order (an object's as the SDK serialises it). */
const sentArguments = () => {
  const messages: Array<{ tool_calls?: Array<{ function: { arguments: string } }> }> =
    openai.callsFor("up-gpt")[0]?.body.messages ?? [];
  return messages.flatMap((message) => message.tool_calls ?? []).map((call) => call.function.arguments);
};

describe("a tool call's arguments that are not a JSON object", () => {
  it.each([
    { name: "cut off", args: TRUNCATED },
    { name: "an array", args: '["Paris"]' },
    { name: "a string", args: '"Paris"' },
  ])(
    "$name: Anthropic and Gemini are skipped without a call, the openai-type hop gets them as sent",
    async ({ args }) => {
      const response = await gateway({ model: "default", messages: history(args), tools: [tool] });
      expect(response.status).toBe(200);
      const body = await response.json();
      expect(body.model).toBe("gpt");
      expect(anthropic.calls).toHaveLength(0);
      expect(gemini.calls).toHaveLength(0);
      expect(sentArguments()).toEqual(['{"city":"Rome"}', args]);
      // The skips are told (x-cascade-attempts counts them; the fallbacks name the reason).
      expect(response.headers.get("x-cascade-fallbacks")).toContain("capability_missing");
    },
  );

  it("streamed: the openai-type hop gets them as sent", async () => {
    const response = await gateway({
      model: "default",
      messages: history(TRUNCATED),
      tools: [tool],
      stream: true,
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("data: [DONE]");
    expect(anthropic.calls).toHaveLength(0);
    expect(sentArguments()).toEqual(['{"city":"Rome"}', TRUNCATED]);
  });

  it("as a job: the skipped hops are attempts with capability_missing, the answer from gpt", async () => {
    const created = await fetch(`${stack.url}/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ route: "default", request: { messages: history(TRUNCATED), tools: [tool] } }),
    });
    expect(created.status).toBe(202);
    const { id } = await created.json();
    const job = await (await fetch(`${stack.url}/v1/jobs/${id}?wait=20`)).json();
    expect(job).toMatchObject({ status: "succeeded", model: "gpt" });
    expect(job.attempts).toEqual([
      expect.objectContaining({ model: "claude", outcome: "skipped", reason: "capability_missing" }),
      expect.objectContaining({ model: "gemini", outcome: "skipped", reason: "capability_missing" }),
      expect.objectContaining({ model: "gpt", outcome: "success" }),
    ]);
    expect(sentArguments()).toEqual(['{"city":"Rome"}', TRUNCATED]);
  });

  it("with no openai-type hop, the request is not sent anywhere and the error says why", async () => {
    const response = await gateway({ model: "claude-only", messages: history(TRUNCATED), tools: [tool] });
    expect(response.status).toBeGreaterThanOrEqual(400);
    const body = await response.json();
    expect(JSON.stringify(body.error)).toContain("not a JSON object");
    expect(anthropic.calls).toHaveLength(0);
  });

  it("whole objects (and blank arguments) still reach Anthropic and Gemini", async () => {
    const response = await gateway({ model: "default", messages: history(""), tools: [tool] });
    expect(response.status).toBe(200);
    expect((await response.json()).model).toBe("claude");
    const sent = anthropic.calls[0]?.body as { messages: Array<{ content: unknown }> };
    expect(JSON.stringify(sent.messages)).toContain('"input":{"city":"Rome"}');
    expect(JSON.stringify(sent.messages)).toContain('"input":{}');
  });
});
