/**
 * Proves the Anthropic fake speaks the real wire format by driving it with the official
 * `@anthropic-ai/sdk`: if the SDK parses our messages, SSE events and error bodies into its own
 * types and error classes, provider code tested against the fake behaves the same against
 * api.anthropic.com.
 */
import Anthropic, { type APIError } from "@anthropic-ai/sdk";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "./fake-anthropic.js";

const MODEL = "claude-sonnet-5";
const messages = [{ role: "user" as const, content: "Hello there" }];
const request = { model: MODEL, max_tokens: 1024, messages };

let fake: FakeAnthropic;
let client: Anthropic;

beforeAll(async () => {
  fake = await startFakeAnthropic();
  client = new Anthropic({ apiKey: "sk-ant-test", baseURL: fake.origin, maxRetries: 0 });
});
afterEach(() => fake.reset());
afterAll(() => fake.close());

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

const post = (base: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/messages`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
  });

describe("fake Anthropic: successes", () => {
  it("answers a plain message with a deterministic echo, usage and Anthropic's headers", async () => {
    const { data, response } = await client.messages.create(request).withResponse();

    expect(data).toMatchObject({
      type: "message",
      role: "assistant",
      model: MODEL,
      content: [{ type: "text", text: "Echo: Hello there" }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    });
    expect(data.id).toMatch(/^msg_01[A-Za-z0-9]{22}$/);
    expect(data.usage.input_tokens).toBeGreaterThan(0);
    expect(data.usage.output_tokens).toBeGreaterThan(0);
    expect(response.headers.get("request-id")).toMatch(/^req_011C/);
    expect(response.headers.get("anthropic-ratelimit-requests-remaining")).toBe("49");
    expect(fake.calls[0]?.headers["anthropic-version"]).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(fake.calls[0]?.headers.authorization).toBe("Bearer sk-ant-test");
  });

  it("returns scripted content, stop reason and usage", async () => {
    fake.script(MODEL, {
      kind: "ok",
      content: "cut short",
      finishReason: "max_tokens",
      usage: {
        input_tokens: 11,
        output_tokens: 7,
        cache_read_input_tokens: 5,
        cache_creation_input_tokens: 2,
      },
    });
    const message = await client.messages.create(request);

    expect(message.content).toEqual([{ type: "text", text: "cut short" }]);
    expect(message.stop_reason).toBe("max_tokens");
    expect(message.usage).toMatchObject({
      input_tokens: 11,
      output_tokens: 7,
      cache_read_input_tokens: 5,
      cache_creation_input_tokens: 2,
    });
  });

  it("echoes the stop sequence that matched", async () => {
    fake.script(MODEL, { kind: "ok", content: "one two", finishReason: "stop_sequence" });
    const message = await client.messages.create({ ...request, stop_sequences: ["three"] });

    expect(message.stop_reason).toBe("stop_sequence");
    expect(message.stop_sequence).toBe("three");
  });

  it("returns tool_use blocks with parsed input and stop_reason tool_use", async () => {
    fake.script(MODEL, {
      kind: "ok",
      content: "Let me check.",
      toolCalls: [{ id: "toolu_01abc", name: "get_weather", arguments: '{"city":"Paris"}' }],
    });
    const message = await client.messages.create({
      ...request,
      tools: [
        { name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } },
      ],
    });

    expect(message.stop_reason).toBe("tool_use");
    expect(message.content).toEqual([
      { type: "text", text: "Let me check." },
      { type: "tool_use", id: "toolu_01abc", name: "get_weather", input: { city: "Paris" } },
    ]);
  });

  it("streams the real event sequence, which the SDK's MessageStream reassembles", async () => {
    fake.script(MODEL, { kind: "ok", content: "The quick brown fox jumps over the lazy dog" });
    const stream = client.messages.stream(request);
    const texts: string[] = [];
    const events: string[] = [];
    stream.on("text", (text) => texts.push(text));
    stream.on("streamEvent", (event) => events.push(event.type));
    const message = await stream.finalMessage();

    expect(texts.length).toBeGreaterThan(3);
    expect(texts.join("")).toBe("The quick brown fox jumps over the lazy dog");
    expect(message.content).toEqual([{ type: "text", text: "The quick brown fox jumps over the lazy dog" }]);
    expect(message.stop_reason).toBe("end_turn");
    expect(message.usage.input_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBe(11);
    // The SDK skips pings; everything else arrives in Anthropic's order.
    expect(events[0]).toBe("message_start");
    expect(events[1]).toBe("content_block_start");
    expect(events.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
  });

  it("puts event names, a ping and SSE framing on the wire", async () => {
    fake.script(MODEL, { kind: "ok", content: "Hi" });
    const text = await (await post(fake.url, { ...request, stream: true })).text();

    expect(
      text
        .split("\n\n")
        .filter(Boolean)
        .map((frame) => frame.split("\n")[0]),
    ).toEqual([
      "event: message_start",
      "event: content_block_start",
      "event: ping",
      "event: content_block_delta",
      "event: content_block_stop",
      "event: message_delta",
      "event: message_stop",
    ]);
    expect(text).toContain('data: {"type":"ping"}\n\n');
  });

  it("streams tool input as input_json_delta pieces", async () => {
    fake.script(MODEL, {
      kind: "ok",
      toolCalls: [{ name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' }],
    });
    const stream = client.messages.stream(request);
    const partials: string[] = [];
    stream.on("streamEvent", (event) => {
      if (event.type === "content_block_delta" && event.delta.type === "input_json_delta")
        partials.push(event.delta.partial_json);
    });
    const message = await stream.finalMessage();

    expect(partials[0]).toBe("");
    expect(partials.length).toBeGreaterThan(2);
    expect(message.stop_reason).toBe("tool_use");
    expect(message.content).toEqual([
      expect.objectContaining({
        type: "tool_use",
        name: "get_weather",
        input: { city: "Paris", unit: "celsius" },
      }),
    ]);
  });
});

describe("fake Anthropic: failures", () => {
  it("surfaces 429 as RateLimitError with retry-after and anthropic-ratelimit headers", async () => {
    fake.script(MODEL, { kind: "rate_limited", retryAfterSeconds: 7 });
    const error = (await caught(client.messages.create(request))) as APIError;

    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    expect(error.status).toBe(429);
    expect(error.headers?.get("retry-after")).toBe("7");
    expect(error.headers?.get("anthropic-ratelimit-requests-remaining")).toBe("0");
    expect(Date.parse(error.headers?.get("anthropic-ratelimit-requests-reset") ?? "")).toBeGreaterThan(
      Date.now(),
    );
    expect(error.type).toBe("rate_limit_error");
    expect(error.requestID).toMatch(/^req_/);
    expect(error.error).toMatchObject({ type: "error", request_id: error.requestID });
  });

  it("surfaces 529 as an overloaded error (an InternalServerError with status 529)", async () => {
    fake.script(MODEL, { kind: "overloaded" });
    const error = (await caught(client.messages.create(request))) as APIError;

    expect(error).toBeInstanceOf(Anthropic.InternalServerError);
    expect(error.status).toBe(529);
    expect(error.type).toBe("overloaded_error");
    expect(error.apiMessage).toBe("Overloaded");
  });

  it("surfaces 500 as InternalServerError with type api_error", async () => {
    fake.script(MODEL, { kind: "server_error" });
    const error = (await caught(client.messages.create(request))) as APIError;

    expect(error).toBeInstanceOf(Anthropic.InternalServerError);
    expect(error.status).toBe(500);
    expect(error.type).toBe("api_error");
  });

  it("surfaces a too-long prompt as BadRequestError with Anthropic's message", async () => {
    fake.script(MODEL, { kind: "context_length" });
    const error = (await caught(client.messages.create(request))) as APIError;

    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect(error.type).toBe("invalid_request_error");
    expect(error.apiMessage).toBe("prompt is too long: 210000 tokens > 200000 maximum");
  });

  it("rejects a missing or wrong x-api-key with authentication_error when apiKey is set", async () => {
    const guarded = await startFakeAnthropic({ apiKey: "sk-ant-right" });
    try {
      const wrong = new Anthropic({ apiKey: "sk-ant-wrong", baseURL: guarded.origin, maxRetries: 0 });
      const error = (await caught(wrong.messages.create(request))) as APIError;
      expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
      expect(error.error).toMatchObject({
        type: "error",
        error: { type: "authentication_error", message: "invalid x-api-key" },
      });

      const missing = await post(guarded.url, request);
      expect(missing.status).toBe(401);
      expect(await missing.json()).toMatchObject({ error: { message: "x-api-key header is required" } });
      const wrongHeader = await post(guarded.url, request, { "x-api-key": "sk-ant-wrong" });
      expect(await wrongHeader.json()).toMatchObject({ error: { message: "invalid x-api-key" } });
      const rightHeader = await post(guarded.url, request, { "x-api-key": "sk-ant-right" });
      expect(rightHeader.status).toBe(200);

      const right = new Anthropic({ apiKey: "sk-ant-right", baseURL: guarded.origin, maxRetries: 0 });
      await expect(right.messages.create(request)).resolves.toMatchObject({ type: "message" });
    } finally {
      await guarded.close();
    }
  });

  it("throws from the SDK stream on a mid-stream error event, after the text before it", async () => {
    fake.script(MODEL, { kind: "stream_error", afterChunks: 5, content: "one two three four" });
    const stream = client.messages.stream(request);
    const texts: string[] = [];
    stream.on("text", (text) => texts.push(text));
    const error = (await caught(stream.finalMessage())) as APIError;

    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect(error.type).toBe("overloaded_error");
    expect(error.message).toContain("Overloaded");
    expect(texts).toEqual(["one", " two"]);
  });

  it("hangs until the client's AbortSignal fires", async () => {
    fake.script(MODEL, { kind: "hang" });
    const started = Date.now();
    const error = await caught(client.messages.create(request, { signal: AbortSignal.timeout(200) }));

    expect(error).toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it("fails on malformed JSON, a reset connection and a cut stream", async () => {
    fake.script(MODEL, { kind: "malformed" }, { kind: "reset" }, { kind: "stream_cut", afterChunks: 4 });

    await expect(client.messages.create(request)).rejects.toThrow();
    expect(await caught(client.messages.create(request))).toBeInstanceOf(Anthropic.APIConnectionError);
    const stream = client.messages.stream(request);
    const texts: string[] = [];
    stream.on("text", (text) => texts.push(text));
    await expect(stream.finalMessage()).rejects.toThrow();
    expect(texts).toEqual(["Echo:"]);
  });

  it("validates like Anthropic: max_tokens, messages, the version header, system role, JSON, path", async () => {
    const errorOf = async (response: Response) => ({
      status: response.status,
      ...((await response.json()) as { error: { type: string; message: string } }).error,
    });
    const noMaxTokens = await post(fake.url, { model: MODEL, messages });
    expect(await errorOf(noMaxTokens)).toEqual({
      status: 400,
      type: "invalid_request_error",
      message: "max_tokens: Field required",
    });
    const noMessages = await post(fake.url, { model: MODEL, max_tokens: 10 });
    expect((await errorOf(noMessages)).message).toBe("messages: Field required");
    const systemMessages = { ...request, messages: [{ role: "system", content: "Be brief" }, ...messages] };
    const systemRole = await post(fake.url, systemMessages);
    expect((await errorOf(systemRole)).message).toMatch(/top-level `system` parameter/);
    const newerVersion = await post(fake.url, systemMessages, { "anthropic-version": "2026-10-21" });
    expect(newerVersion.status).toBe(200);
    const noVersion = await post(fake.url, request, { "anthropic-version": "" });
    expect(noVersion.status).toBe(400);
    const badJson = await post(fake.url, "{nope");
    expect(badJson.status).toBe(400);
    const badPath = await fetch(`${fake.origin}/v1/complete`, { method: "POST", body: "{}" });
    expect(await errorOf(badPath)).toMatchObject({ status: 404, type: "not_found_error" });

    const withSystem = await client.messages.create({ ...request, system: "Be brief" });
    expect(withSystem.content).toEqual([{ type: "text", text: "Echo: Hello there" }]);
  });
});

describe("fake Anthropic: scripting, recording, connections", () => {
  it("consumes a script in order, then the model default, then the global default", async () => {
    fake.setDefault(MODEL, { kind: "ok", content: "model default" });
    fake.script(MODEL, { kind: "server_error", status: 529 }, { kind: "ok", content: "second" });
    const outcome = (model: string) =>
      client.messages.create({ ...request, model }).then(
        (message) => (message.content[0]?.type === "text" ? message.content[0].text : ""),
        (error: APIError) => error.status,
      );

    expect(await outcome(MODEL)).toBe(529);
    expect(await outcome(MODEL)).toBe("second");
    expect(await outcome(MODEL)).toBe("model default");
    expect(await outcome("claude-haiku-5-5")).toBe("Echo: Hello there");
  });

  it("records every call with model, timestamp, body, headers, path and connection", async () => {
    const before = Date.now();
    await client.messages.create({ ...request, max_tokens: 5, system: "Be brief" });
    await client.messages.create({ ...request, model: "claude-haiku-5-5" });

    expect(fake.calls.map((call) => call.model)).toEqual([MODEL, "claude-haiku-5-5"]);
    const [first] = fake.calls;
    expect(first?.at).toBeGreaterThanOrEqual(before);
    expect(first?.path).toBe("/v1/messages");
    expect(first?.body).toMatchObject({ model: MODEL, max_tokens: 5, system: "Be brief", messages });
    expect(first?.connectionId).toBeGreaterThan(0);
    expect(fake.callsFor("claude-haiku-5-5")).toHaveLength(1);
  });

  it("delays the answer by delayMs and closes promptly while a request hangs", async () => {
    fake.script(MODEL, { kind: "ok", delayMs: 150 });
    const started = Date.now();
    await client.messages.create(request);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);

    const other = await startFakeAnthropic();
    other.setDefault("*", { kind: "hang" });
    const otherClient = new Anthropic({ apiKey: "sk-ant-test", baseURL: other.origin, maxRetries: 0 });
    const pending = caught(otherClient.messages.create(request));
    while (other.calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const closing = Date.now();
    await other.close();
    expect(Date.now() - closing).toBeLessThan(1000);
    expect(await pending).toBeInstanceOf(Anthropic.APIConnectionError);
  });
});
