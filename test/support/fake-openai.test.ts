/**
 * Proves the OpenAI fake speaks the real wire format by driving it with the official `openai` SDK:
 * if the SDK parses our objects, chunks and error bodies into its own types and error classes,
 * provider code tested against the fake will behave the same against api.openai.com.
 */
import OpenAI, { type APIError } from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FakeOpenAI, startFakeOpenAI } from "./fake-openai.js";

let fake: FakeOpenAI;
let client: OpenAI;
const messages = [{ role: "user" as const, content: "Hello there" }];

beforeAll(async () => {
  fake = await startFakeOpenAI();
  client = new OpenAI({ baseURL: fake.url, apiKey: "sk-test", maxRetries: 0 });
});
afterEach(() => fake.reset());
afterAll(() => fake.close());

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

async function errorOf(response: Response): Promise<ErrorBody["error"]> {
  return ((await response.json()) as ErrorBody).error;
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

describe("fake OpenAI: successes", () => {
  it("answers a plain completion with a deterministic echo and usage", async () => {
    const completion = await client.chat.completions.create({ model: "gpt-4o", messages });

    expect(completion).toMatchObject({ object: "chat.completion", model: "gpt-4o" });
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.choices[0]).toMatchObject({
      index: 0,
      finish_reason: "stop",
      logprobs: null,
      message: { role: "assistant", content: "Echo: Hello there", refusal: null },
    });
    const usage = completion.usage;
    expect(usage?.prompt_tokens).toBeGreaterThan(0);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
    expect(usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    expect(usage?.completion_tokens_details?.reasoning_tokens).toBe(0);
  });

  it("returns scripted content, finish reason, usage and OpenAI's headers", async () => {
    fake.script("gpt-4o", {
      kind: "ok",
      content: "cut short",
      finishReason: "length",
      usage: { prompt_tokens: 11, completion_tokens: 7, cached_tokens: 5, reasoning_tokens: 3 },
    });
    const { data, response } = await client.chat.completions
      .create({ model: "gpt-4o", messages })
      .withResponse();

    expect(data.choices[0]?.message.content).toBe("cut short");
    expect(data.choices[0]?.finish_reason).toBe("length");
    expect(data.usage).toMatchObject({
      prompt_tokens: 11,
      completion_tokens: 7,
      total_tokens: 18,
      prompt_tokens_details: { cached_tokens: 5 },
      completion_tokens_details: { reasoning_tokens: 3 },
    });
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
    expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("499");
  });

  it("returns tool calls the SDK parses", async () => {
    fake.script("gpt-4o", {
      kind: "ok",
      toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }],
    });
    const completion = await client.chat.completions.create({ model: "gpt-4o", messages });

    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    expect(choice?.message.content).toBeNull();
    expect(choice?.message.tool_calls).toEqual([
      { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
    ]);
  });

  it("streams a role delta, several content deltas, a finish chunk and a usage chunk", async () => {
    fake.script("gpt-4o", { kind: "ok", content: "The quick brown fox jumps over the lazy dog" });
    const stream = await client.chat.completions.create({
      model: "gpt-4o",
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks.every((chunk) => chunk.object === "chat.completion.chunk")).toBe(true);
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1);
    expect(chunks[0]?.choices[0]?.delta).toMatchObject({ role: "assistant", content: "" });
    const deltas = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta.content ?? ""));
    expect(deltas.filter(Boolean).length).toBeGreaterThan(3);
    expect(deltas.join("")).toBe("The quick brown fox jumps over the lazy dog");
    const finish = chunks.at(-2);
    expect(finish?.choices[0]?.finish_reason).toBe("stop");
    expect(finish?.usage).toBeNull();
    const usageChunk = chunks.at(-1);
    expect(usageChunk?.choices).toEqual([]);
    expect(usageChunk?.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it("omits the usage chunk unless stream_options.include_usage is set", async () => {
    const stream = await client.chat.completions.create({ model: "gpt-4o", messages, stream: true });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("stop");
    expect(chunks.some((chunk) => chunk.usage)).toBe(false);
  });

  it("streams tool-call deltas the SDK's stream helper reassembles", async () => {
    fake.script("gpt-4o", {
      kind: "ok",
      toolCalls: [
        { id: "call_a", name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' },
        { id: "call_b", name: "get_time", arguments: '{"zone":"Europe/Paris"}' },
      ],
    });
    const stream = client.chat.completions.stream({
      model: "gpt-4o",
      messages,
      stream_options: { include_usage: true },
    });
    const completion = await stream.finalChatCompletion();

    expect(completion.choices[0]?.finish_reason).toBe("tool_calls");
    expect(completion.choices[0]?.message.tool_calls).toEqual([
      {
        id: "call_a",
        type: "function",
        function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' },
      },
      {
        id: "call_b",
        type: "function",
        function: { name: "get_time", arguments: '{"zone":"Europe/Paris"}' },
      },
    ]);
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);
  });
});

describe("fake OpenAI: failures", () => {
  it("surfaces 429 as RateLimitError with retry-after and OpenAI's body", async () => {
    fake.script("gpt-4o", { kind: "rate_limited", retryAfterSeconds: 7 });
    const error = await caught(client.chat.completions.create({ model: "gpt-4o", messages }));

    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    const rateLimit = error as InstanceType<typeof OpenAI.RateLimitError>;
    expect(rateLimit.status).toBe(429);
    expect(rateLimit.headers.get("retry-after")).toBe("7");
    expect(rateLimit.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(rateLimit.code).toBe("rate_limit_exceeded");
    expect(rateLimit.type).toBe("requests");
    expect(rateLimit.message).toContain("Rate limit reached for gpt-4o");
  });

  it("sends retry-after-ms when scripted in milliseconds", async () => {
    fake.script("gpt-4o", { kind: "rate_limited", retryAfterMs: 1500 });
    const error = (await caught(client.chat.completions.create({ model: "gpt-4o", messages }))) as APIError;

    expect(error.headers?.get("retry-after-ms")).toBe("1500");
    expect(error.headers?.get("retry-after")).toBe("2");
  });

  it("surfaces context length as BadRequestError with code context_length_exceeded", async () => {
    fake.script("gpt-4o", { kind: "context_length" });
    const error = (await caught(client.chat.completions.create({ model: "gpt-4o", messages }))) as APIError;

    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect(error.code).toBe("context_length_exceeded");
    expect(error.param).toBe("messages");
    expect(error.type).toBe("invalid_request_error");
  });

  it("surfaces 500 as InternalServerError with type server_error", async () => {
    fake.script("gpt-4o", { kind: "server_error" });
    const error = (await caught(client.chat.completions.create({ model: "gpt-4o", messages }))) as APIError;

    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.status).toBe(500);
    expect(error.type).toBe("server_error");
  });

  it("answers any status with a scripted body and headers", async () => {
    fake.script("gpt-4o", {
      kind: "status",
      status: 503,
      body: "upstream connect error",
      headers: { "x-custom": "1" },
    });
    const error = (await caught(client.chat.completions.create({ model: "gpt-4o", messages }))) as APIError;

    expect(error.status).toBe(503);
    expect(error.headers?.get("x-custom")).toBe("1");
  });

  it("hangs until the client's AbortSignal fires", async () => {
    fake.script("gpt-4o", { kind: "hang" });
    const started = Date.now();
    const error = await caught(
      client.chat.completions.create({ model: "gpt-4o", messages }, { signal: AbortSignal.timeout(200) }),
    );

    expect(error).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it("raises on a malformed JSON body", async () => {
    fake.script("gpt-4o", { kind: "malformed" });
    await expect(client.chat.completions.create({ model: "gpt-4o", messages })).rejects.toThrow(SyntaxError);
  });

  it("resets the connection as a network error", async () => {
    fake.script("gpt-4o", { kind: "reset" });
    const error = await caught(client.chat.completions.create({ model: "gpt-4o", messages }));

    expect(error).toBeInstanceOf(OpenAI.APIConnectionError);
  });

  it("cuts a stream after N chunks", async () => {
    fake.script("gpt-4o", { kind: "stream_cut", afterChunks: 2, content: "one two three four five" });
    const stream = await client.chat.completions.create({ model: "gpt-4o", messages, stream: true });
    const received: string[] = [];
    const error = await caught(
      (async () => {
        for await (const chunk of stream) received.push(chunk.choices[0]?.delta.content ?? "");
      })(),
    );

    expect(error).toBeInstanceOf(Error);
    expect(received).toEqual(["", "one"]);
  });

  it("validates the request like OpenAI (missing model, missing messages, bad JSON, bad path)", async () => {
    const post = (path: string, body: string) =>
      fetch(`${fake.url}${path}`, { method: "POST", body, headers: { "content-type": "application/json" } });

    const noModel = await post("/chat/completions", JSON.stringify({ messages }));
    expect(noModel.status).toBe(400);
    expect(await errorOf(noModel)).toEqual({
      message: "you must provide a model parameter",
      type: "invalid_request_error",
      param: null,
      code: null,
    });
    const noMessages = await post("/chat/completions", JSON.stringify({ model: "gpt-4o" }));
    expect(await errorOf(noMessages)).toMatchObject({
      param: "messages",
      code: "missing_required_parameter",
    });
    const badJson = await post("/chat/completions", "{nope");
    expect((await errorOf(badJson)).message).toMatch(/^We could not parse the JSON body/);
    const badPath = await post("/completions/chat", "{}");
    expect(badPath.status).toBe(404);
    expect((await errorOf(badPath)).message).toBe("Invalid URL (POST /v1/completions/chat)");
    expect(fake.calls).toHaveLength(4);
  });
});

describe("fake OpenAI: scripting, recording, connections", () => {
  it("consumes a script in order, then falls back to the model default, then the global default", async () => {
    fake.setDefault("gpt-4o", { kind: "ok", content: "model default" });
    fake.script("gpt-4o", { kind: "server_error" }, { kind: "ok", content: "second" });
    const outcome = (promise: Promise<OpenAI.ChatCompletion>) =>
      promise.then(
        (completion) => completion.choices[0]?.message.content,
        (error: APIError) => error.status,
      );

    expect(await outcome(client.chat.completions.create({ model: "gpt-4o", messages }))).toBe(500);
    expect(await outcome(client.chat.completions.create({ model: "gpt-4o", messages }))).toBe("second");
    expect(await outcome(client.chat.completions.create({ model: "gpt-4o", messages }))).toBe(
      "model default",
    );
    expect(await outcome(client.chat.completions.create({ model: "gpt-4o-mini", messages }))).toBe(
      "Echo: Hello there",
    );
  });

  it("records every call with model, timestamp, body, headers and path", async () => {
    const before = Date.now();
    await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5 });
    await client.chat.completions.create({ model: "gpt-4o-mini", messages });

    expect(fake.calls.map((call) => call.model)).toEqual(["gpt-4o", "gpt-4o-mini"]);
    const [first, second] = fake.calls;
    expect(first?.at).toBeGreaterThanOrEqual(before);
    expect(second?.at).toBeGreaterThanOrEqual(first?.at ?? 0);
    expect(first?.path).toBe("/v1/chat/completions");
    expect(first?.body).toMatchObject({ model: "gpt-4o", max_tokens: 5, messages });
    expect(first?.headers.authorization).toBe("Bearer sk-test");
    expect(fake.callsFor("gpt-4o-mini")).toHaveLength(1);
  });

  it("keeps connections alive across calls", async () => {
    const fresh = await startFakeOpenAI();
    try {
      const freshClient = new OpenAI({ baseURL: fresh.url, apiKey: "sk-test", maxRetries: 0 });
      for (let call = 0; call < 6; call++)
        await freshClient.chat.completions.create({ model: "gpt-4o", messages });
      // undici's pool may alternate between two warm connections, but never opens one per call.
      expect(new Set(fresh.calls.map((call) => call.connectionId)).size).toBeLessThanOrEqual(2);
    } finally {
      await fresh.close();
    }
  });

  it("delays the answer by delayMs", async () => {
    fake.script("gpt-4o", { kind: "ok", delayMs: 150 });
    const started = Date.now();
    await client.chat.completions.create({ model: "gpt-4o", messages });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("rejects a missing or wrong API key with OpenAI's 401 bodies when apiKey is set", async () => {
    const guarded = await startFakeOpenAI({ apiKey: "sk-right-key-123" });
    try {
      const wrong = new OpenAI({ baseURL: guarded.url, apiKey: "sk-wrong-key-456", maxRetries: 0 });
      const error = (await caught(wrong.chat.completions.create({ model: "gpt-4o", messages }))) as APIError;
      expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
      expect(error.code).toBe("invalid_api_key");
      expect(error.message).not.toContain("sk-wrong-key-456");

      const missing = await fetch(`${guarded.url}/chat/completions`, { method: "POST", body: "{}" });
      expect(missing.status).toBe(401);
      expect((await errorOf(missing)).message).toMatch(/^You didn't provide an API key/);

      const right = new OpenAI({ baseURL: guarded.url, apiKey: "sk-right-key-123", maxRetries: 0 });
      await expect(right.chat.completions.create({ model: "gpt-4o", messages })).resolves.toBeDefined();
    } finally {
      await guarded.close();
    }
  });

  it("closes promptly while a request hangs", async () => {
    const other = await startFakeOpenAI();
    other.setDefault("*", { kind: "hang" });
    const otherClient = new OpenAI({ baseURL: other.url, apiKey: "sk-test", maxRetries: 0 });
    const pending = caught(otherClient.chat.completions.create({ model: "gpt-4o", messages }));
    while (other.calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));

    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await pending).toBeInstanceOf(OpenAI.APIConnectionError);
  });
});
