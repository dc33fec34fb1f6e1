/**
 * The gateway (contract, "Gateway") driven by real clients, not hand-made HTTP: the official
 * `openai` SDK (answers, trace headers, streams, its stream helper, tools, json mode, Cascade's
 * extension fields, one SDK error class per row of the error table, models.list) and the AI SDK
 * (`ai` + `@ai-sdk/openai-compatible`: generateText, streamText, tool calls, APICallError), plus a
 * stream cut mid-way that is continued on a prefill hop or ends with an error event.
 */
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { APICallError, generateText, jsonSchema, streamText, tool } from "ai";
import OpenAI, { type APIError } from "openai";
import type { ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, openAIError, startFakeOpenAI } from "../support/fake-openai.js";

const KEY = "sk-gw-sdk-tenant";
const POOR_KEY = "sk-gw-sdk-poor";
let fake: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up" });
  const model = (name: string, provider: string, capabilities = ["tools", "json"]) => ({
    provider,
    name,
    price: { input_per_mtok: 1, output_per_mtok: 2 },
    capabilities,
  });
  const provider = (extra = {}) => ({ type: "openai", base_url: fake.url, api_key_env: "UP_KEY", ...extra });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", GW_KEYS: KEY, POOR_KEYS: POOR_KEY },
    withoutWorker: true,
    config: {
      providers: { pa: provider(), pb: provider(), pp: provider(), slow: provider({ limits: { rpm: 1 } }) },
      models: {
        a: model("up-a", "pa"),
        b: model("up-b", "pb"),
        p: model("up-p", "pp", ["tools", "json", "prefill"]),
        limited: model("up-limited", "slow"),
        pricey: { ...model("up-pricey", "pb"), price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
      },
      routes: {
        default: { chain: [{ model: "a", timeout_ms: 5000 }, { model: "b" }] },
        capped: { chain: [{ model: "pricey", max_cost_usd: 0.0001 }] },
        limits: { sync_deadline_ms: 100, chain: [{ model: "limited" }] },
        resumable: { on_stream_failure: "continue", chain: [{ model: "a" }, { model: "p" }] },
        strict: { on_stream_failure: "error", chain: [{ model: "a" }, { model: "p" }] },
      },
      fallbacks: { a: ["b"] },
      tenants: {
        acme: { api_keys_env: "GW_KEYS" },
        // Any priced call is over this budget at admission: (prompt + max_tokens) × price > 1e-6.
        poor: { api_keys_env: "POOR_KEYS", budget: { daily_usd: 0.000001 } },
      },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});
beforeEach(() => fake.reset());

const openai = (apiKey = KEY) => new OpenAI({ baseURL: `${stack.url}/v1`, apiKey, maxRetries: 0 });
const hello = { messages: [{ role: "user" as const, content: "Say hi" }], max_tokens: 20 };
const usage = (prompt: number, completion: number) => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
});
/** OpenAI's params plus Cascade's extension fields (contract, "Gateway"). */
type CascadeParams = ChatCompletionCreateParamsNonStreaming & {
  route?: string;
  models?: string[];
  max_cost_usd?: number;
};
const query = { type: "object", properties: { q: { type: "string" } }, required: ["q"] };
const lookupTool = {
  type: "function" as const,
  function: { name: "lookup", strict: true, parameters: query },
};

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail("expected the call to fail"),
    (error: unknown) => error,
  );
}

describe("openai SDK", () => {
  it("creates a completion named by the config model id, with usage and trace headers", async () => {
    fake.script("up-a", { kind: "ok", content: "hi!", usage: usage(10, 5) });
    const { data, response } = await openai()
      .chat.completions.create({ model: "default", ...hello })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe("hi!");
    expect(data.model).toBe("a");
    expect(data.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
    expect(data).toHaveProperty("system_fingerprint", null);
    expect(response.headers.get("x-cascade-model")).toBe("a");
    expect(response.headers.get("x-cascade-provider")).toBe("pa");
    expect(response.headers.get("x-cascade-attempts")).toBe("1");
    expect(response.headers.get("x-cascade-fallbacks")).toBeNull();
    expect(Number(response.headers.get("x-cascade-cost-usd"))).toBeCloseTo(20 / 1e6, 12);
    expect(response.headers.get("x-request-id")).toMatch(/^req_/);
  });

  it("reads x-cascade-fallbacks after a fallback", async () => {
    fake.script("up-a", { kind: "server_error" });
    fake.script("up-b", { kind: "ok", content: "from b" });
    const { data, response } = await openai()
      .chat.completions.create({ model: "a", ...hello })
      .withResponse();
    expect(data).toMatchObject({ model: "b", choices: [{ message: { content: "from b" } }] });
    expect(response.headers.get("x-cascade-attempts")).toBe("2");
    expect(response.headers.get("x-cascade-fallbacks")).toBe("a:server_error");
  });

  it("passes a refusal through as OpenAI answers it: message.refusal, finish_reason stop, no fallback", async () => {
    const refusal = "I'm sorry, I can't help with that.";
    fake.script("up-a", { kind: "ok", refusal });
    const { data: answer, response } = await openai()
      .chat.completions.create({ model: "default", ...hello })
      .withResponse();
    expect(answer.choices[0]).toMatchObject({
      message: { role: "assistant", content: null, refusal },
      finish_reason: "stop",
    });
    expect(response.headers.get("x-cascade-model")).toBe("a");
    expect(response.headers.get("x-cascade-attempts")).toBe("1");
    expect(fake.callsFor("up-b")).toHaveLength(0);

    fake.script("up-a", { kind: "ok", refusal });
    const stream = await openai().chat.completions.create({ model: "default", ...hello, stream: true });
    const deltas: Array<Record<string, unknown>> = [];
    const finishes: unknown[] = [];
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        deltas.push(choice.delta as Record<string, unknown>);
        if (choice.finish_reason) finishes.push(choice.finish_reason);
      }
    }
    expect(deltas.map((delta) => delta.refusal ?? "").join("")).toBe(refusal);
    expect(deltas.map((delta) => delta.content ?? "").join("")).toBe("");
    expect(finishes).toEqual(["stop"]);
    expect(fake.callsFor("up-b")).toHaveLength(0);
  });

  it("streams chunks with a final usage chunk, and the stream helper's finalChatCompletion", async () => {
    fake.script("up-a", { kind: "ok", content: "one two three", usage: usage(7, 3) });
    const stream = await openai().chat.completions.create({
      model: "default",
      ...hello,
      stream: true,
      // The SDK's own option for OpenAI's padding: accepted (Cascade pads nothing).
      stream_options: { include_usage: true, include_obfuscation: false },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toBe("one two three");
    expect(chunks.every((chunk) => chunk.model === "a")).toBe(true);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: usage(7, 3) });
    // As OpenAI's: every chunk before the usage chunk says usage: null; each has system_fingerprint.
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
    expect(chunks.every((chunk) => "system_fingerprint" in chunk)).toBe(true);

    fake.script("up-a", { kind: "ok", content: "four five" });
    const helper = openai().chat.completions.stream({ model: "default", ...hello });
    const final = await helper.finalChatCompletion();
    expect(final.choices[0]?.message.content).toBe("four five");
    expect(final.choices[0]?.finish_reason).toBe("stop");
    expect(final.model).toBe("a");
  });

  it("answers tool calls, whole and streamed (assembled by the stream helper)", async () => {
    const toolCall = { id: "call_1", name: "lookup", arguments: '{"q":"weather in Paris"}' };
    fake.script("up-a", { kind: "ok", toolCalls: [toolCall] }, { kind: "ok", toolCalls: [toolCall] });
    const whole = await openai().chat.completions.create({ model: "default", ...hello, tools: [lookupTool] });
    expect(whole.choices[0]?.finish_reason).toBe("tool_calls");
    expect(whole.choices[0]?.message.tool_calls).toEqual([
      { id: "call_1", type: "function", function: { name: "lookup", arguments: toolCall.arguments } },
    ]);
    const streamed = openai().chat.completions.stream({ model: "default", ...hello, tools: [lookupTool] });
    const final = await streamed.finalChatCompletion();
    expect(final.choices[0]?.finish_reason).toBe("tool_calls");
    expect(final.choices[0]?.message.tool_calls?.[0]).toMatchObject({
      id: "call_1",
      function: {
        name: "lookup",
        arguments: toolCall.arguments,
        parsed_arguments: { q: "weather in Paris" },
      },
    });
  });

  it("takes back the assistant messages its answers and the stream helper give (next turn), sending upstream only the request's fields", async () => {
    const toolCall = { id: "call_1", name: "lookup", arguments: '{"q":"Paris"}' };
    fake.script("up-a", { kind: "ok", toolCalls: [toolCall] }, { kind: "ok", content: "sunny" });
    const question = { role: "user" as const, content: "weather?" };
    // The stream helper's message carries `parsed`, its tool calls `parsed_arguments`.
    const first = await openai()
      .chat.completions.stream({ model: "default", messages: [question], tools: [lookupTool] })
      .finalMessage();
    expect(first).toHaveProperty("parsed");
    const next = await openai().chat.completions.create({
      model: "default",
      tools: [lookupTool],
      messages: [
        question,
        first,
        { role: "tool", tool_call_id: "call_1", content: "sunny, 21C" },
        // As OpenAI returns a message (annotations), with the nulls recorded histories hold.
        {
          role: "assistant",
          content: "It is sunny.",
          refusal: null,
          annotations: [],
          audio: null,
          function_call: null,
        },
        { role: "user", content: "thanks" },
      ] as OpenAI.ChatCompletionMessageParam[],
    });
    expect(next.choices[0]?.message.content).toBe("sunny");
    const sent = fake.callsFor("up-a")[1]?.body.messages;
    expect(sent[1]).toMatchObject({
      role: "assistant",
      tool_calls: [
        { id: "call_1", type: "function", function: { name: "lookup", arguments: toolCall.arguments } },
      ],
    });
    expect(sent[3]).toMatchObject({ role: "assistant", content: "It is sunny." });
    for (const message of [sent[1], sent[3]]) {
      for (const key of ["parsed", "annotations", "audio", "function_call"])
        expect(message).not.toHaveProperty(key);
    }
    expect(sent[1].tool_calls[0].function).not.toHaveProperty("parsed_arguments");
    // A history as Python's model_dump() writes it: every optional field, unset ones null; OpenAI
    // takes them as unset. Nothing null goes upstream.
    fake.script("up-a", { kind: "ok", content: "ok" });
    const dumped = await openai().chat.completions.create({
      model: "default",
      tools: [{ type: "function", function: { ...lookupTool.function, description: null, strict: null } }],
      response_format: {
        type: "json_schema",
        json_schema: { name: "answer", description: null, schema: { type: "object" }, strict: null },
      },
      messages: [
        { role: "system", content: "be brief", name: null },
        { role: "user", content: "weather?", name: null },
        { role: "assistant", content: "It is sunny.", tool_calls: null, name: null, refusal: null },
        { role: "user", content: "thanks" },
      ],
    } as unknown as ChatCompletionCreateParamsNonStreaming);
    expect(dumped.choices[0]?.message.content).toBe("ok");
    const dumpedBody = fake.callsFor("up-a")[2]?.body;
    expect(JSON.stringify(dumpedBody)).not.toContain("null");
    expect(dumpedBody.messages[2]).toEqual({ role: "assistant", content: "It is sunny." });
    // Asking for what Cascade cannot give is still a 400 naming the field.
    const legacy = await rejection(
      openai().chat.completions.create({
        model: "default",
        messages: [
          question,
          { role: "assistant", content: null, function_call: { name: "f", arguments: "{}" } },
        ],
      }),
    );
    expect(legacy).toMatchObject({ status: 400, param: "messages[1].function_call" });
  });

  it("passes response_format json_object upstream", async () => {
    fake.script("up-a", { kind: "ok", content: '{"ok":true}' });
    const json = await openai().chat.completions.create({
      model: "default",
      ...hello,
      response_format: { type: "json_object" },
    });
    expect(JSON.parse(json.choices[0]?.message.content ?? "")).toEqual({ ok: true });
    expect(fake.callsFor("up-a")[0]?.body.response_format).toEqual({ type: "json_object" });
  });

  it("honours the extension fields (models, route, metadata, max_cost_usd) and keeps them from the provider", async () => {
    const extensions = { models: ["b"], metadata: { doc_id: "42" }, max_cost_usd: 1 };
    const byModels: CascadeParams = { model: "default", ...hello, ...extensions };
    expect((await openai().chat.completions.create(byModels)).model).toBe("b");
    const byRoute: CascadeParams = { model: "b", route: "default", ...hello };
    expect((await openai().chat.completions.create(byRoute)).model).toBe("a");
    for (const call of [...fake.callsFor("up-b"), ...fake.callsFor("up-a")]) {
      for (const field of ["models", "route", "metadata", "max_cost_usd"]) {
        expect(call.body[field]).toBeUndefined();
      }
    }
  });

  it("raises AuthenticationError, NotFoundError and BadRequestError by the contract's table", async () => {
    const auth = await rejection(openai("sk-wrong").chat.completions.create({ model: "default", ...hello }));
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(auth).toMatchObject({ status: 401, type: "authentication_error" });

    const unknown = await rejection(openai().chat.completions.create({ model: "nope", ...hello }));
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknown).toMatchObject({ status: 404, type: "not_found_error", code: "model_not_found" });

    const malformed = await rejection(openai().chat.completions.create({ model: "default", messages: [] }));
    expect(malformed).toBeInstanceOf(OpenAI.BadRequestError);
    expect(malformed).toMatchObject({ status: 400, type: "invalid_request_error" });

    const capped = await rejection(openai().chat.completions.create({ model: "capped", ...hello }));
    expect(capped).toBeInstanceOf(OpenAI.BadRequestError);
    expect(capped).toMatchObject({ status: 400, type: "invalid_request_error", code: "price_ceiling" });

    const wrong = "Invalid type for 'messages[0].content': expected a string, but got an integer instead.";
    const upstream400 = openAIError(wrong, "invalid_request_error", "messages[0].content", "invalid_type");
    fake.script("up-a", { kind: "status", status: 400, body: upstream400 });
    const bad = await rejection(openai().chat.completions.create({ model: "default", ...hello }));
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad).toMatchObject({ status: 400, type: "invalid_request_error", code: "bad_request" });
    expect(fake.callsFor("up-b")).toHaveLength(0);
  });

  it("raises RateLimitError for limits (with Retry-After) and for a spent budget", async () => {
    await openai().chat.completions.create({ model: "limits", ...hello });
    const limited = await rejection(openai().chat.completions.create({ model: "limits", ...hello }));
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect(limited).toMatchObject({ status: 429, type: "rate_limit_error", code: "rate_limited" });
    expect(Number((limited as APIError).headers?.get("retry-after"))).toBeGreaterThanOrEqual(1);

    const broke = await rejection(openai(POOR_KEY).chat.completions.create({ model: "default", ...hello }));
    expect(broke).toBeInstanceOf(OpenAI.RateLimitError);
    expect(broke).toMatchObject({ status: 429, type: "insufficient_quota", code: "over_budget" });
    expect(fake.calls).toHaveLength(1);
  });

  it("raises InternalServerError (502 all_models_failed) when every hop fails", async () => {
    fake.script("up-a", { kind: "server_error" });
    fake.script("up-b", { kind: "server_error" });
    const failed = await rejection(openai().chat.completions.create({ model: "default", ...hello }));
    expect(failed).toBeInstanceOf(OpenAI.InternalServerError);
    expect(failed).toMatchObject({ status: 502, type: "api_error", code: "all_models_failed" });
    expect(fake.calls).toHaveLength(2);
  });

  it("lists routes and models with models.list()", async () => {
    const ids: string[] = [];
    for await (const entry of openai().models.list()) {
      expect(entry).toMatchObject({ object: "model", owned_by: "cascade" });
      ids.push(entry.id);
    }
    expect(ids).toEqual(expect.arrayContaining(["default", "capped", "resumable", "a", "b", "p", "pricey"]));
  });

  it("retrieves one route or model with models.retrieve(), and raises NotFoundError for others", async () => {
    for (const id of ["default", "a"]) {
      expect(await openai().models.retrieve(id)).toMatchObject({ id, object: "model", owned_by: "cascade" });
    }
    const missing = await rejection(openai().models.retrieve("gpt-9"));
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing).toMatchObject({ status: 404, code: "model_not_found", param: "model" });
  });
});

describe("AI SDK (@ai-sdk/openai-compatible)", () => {
  const settings = () => ({ name: "cascade", baseURL: `${stack.url}/v1`, apiKey: KEY, includeUsage: true });
  const cascade = (model = "default") => createOpenAICompatible(settings()).chatModel(model);
  const ask = { prompt: "Say hi", maxOutputTokens: 20 };

  it("generateText answers with text and usage", async () => {
    fake.script("up-a", { kind: "ok", content: "hi there", usage: usage(9, 2) });
    const result = await generateText({ model: cascade(), ...ask });
    expect(result.text).toBe("hi there");
    expect(result.finishReason).toBe("stop");
    expect(result.usage).toMatchObject({ inputTokens: 9, outputTokens: 2 });
    expect(result.response.modelId).toBe("a");
  });

  it("streamText streams the text, then usage and finish reason", async () => {
    const content = "streamed words arrive here";
    fake.script("up-a", { kind: "ok", content, usage: usage(8, 4), chunkDelayMs: 5 });
    const result = streamText({ model: cascade(), ...ask });
    let text = "";
    for await (const piece of result.textStream) text += piece;
    expect(text).toBe(content);
    expect(await result.usage).toMatchObject({ inputTokens: 8, outputTokens: 4 });
    expect(await result.finishReason).toBe("stop");
  });

  it("generateText throws APICallError 404 for an unknown model", async () => {
    const error = await rejection(generateText({ model: cascade("nope"), ...ask, maxRetries: 0 }));
    expect(APICallError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ statusCode: 404 });
  });

  it("generateText returns the tool calls of a tool-call answer", async () => {
    fake.script("up-a", {
      kind: "ok",
      toolCalls: [{ id: "call_7", name: "lookup", arguments: '{"q":"tides"}' }],
    });
    const lookup = tool({ description: "Looks something up", inputSchema: jsonSchema<{ q: string }>(query) });
    const result = await generateText({ model: cascade(), ...ask, tools: { lookup } });
    expect(result.finishReason).toBe("tool-calls");
    expect(result.toolCalls).toEqual([
      expect.objectContaining({ toolCallId: "call_7", toolName: "lookup", input: { q: "tides" } }),
    ]);
    expect(fake.callsFor("up-a")[0]?.body.tools?.[0]?.function.name).toBe("lookup");
  });
});

describe("a stream cut mid-way (openai SDK)", () => {
  // splitText sends "Hello", " world,", " how"...: after 3 chunks (role, 2 words) the cut.
  const cut = { kind: "stream_cut" as const, afterChunks: 3, content: "Hello world, how is it going" };

  /** The text the SDK's iteration assembled, and what it threw (if it did). */
  async function readStream(route: string): Promise<{ text: string; error?: unknown }> {
    const stream = await openai().chat.completions.create({ model: route, ...hello, stream: true });
    let text = "";
    try {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      return { text };
    } catch (error) {
      return { text, error };
    }
  }

  it("continues on the prefill hop (on_stream_failure: continue)", async () => {
    fake.script("up-a", cut);
    fake.script("up-p", { kind: "ok", content: " how are you?" });
    expect(await readStream("resumable")).toEqual({ text: "Hello world, how are you?" });
    const last = fake.callsFor("up-p")[0]?.body.messages.at(-1);
    expect(last).toEqual({ role: "assistant", content: "Hello world," });
  });

  it("ends with an error event the SDK throws as APIError (on_stream_failure: error)", async () => {
    fake.script("up-a", cut);
    const { text, error } = await readStream("strict");
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toMatchObject({ status: undefined, type: "api_error", code: "network_error" });
    expect(text).toBe("Hello world,");
    expect(fake.callsFor("up-p")).toHaveLength(0);
    // The same answer read raw through the SDK: one error event last, and no [DONE].
    fake.script("up-a", cut);
    const raw = await openai()
      .chat.completions.create({ model: "strict", ...hello, stream: true })
      .asResponse();
    const events = (await raw.text()).split("\n\n").filter(Boolean);
    expect(events.at(-1)).toMatch(/^data: \{"error":/);
    expect(events).not.toContain("data: [DONE]");
  });
});
