import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import { readEvents } from "../support/sse-client.js";

/**
 * The worker's OpenAI-compatible provider against a fake that speaks OpenAI's wire format over
 * real HTTP: every reason the contract names for it is produced from a real response.
 */
describe("openai provider through the worker", () => {
  let fake: FakeOpenAI;
  let stack: Stack;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: "sk-test-123" });
    const model = (name: string) => ({
      provider: "fake",
      name,
      price: { input_per_mtok: 2, output_per_mtok: 8 },
      capabilities: ["tools", "json", "vision"],
    });
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: { FAKE_KEY: "sk-test-123" },
      config: {
        providers: {
          fake: { type: "openai", base_url: fake.url, api_key_env: "FAKE_KEY" },
          // The backup is its own provider: a 429 cools down the whole provider that sent it.
          "fake-backup": { type: "openai", base_url: fake.url, api_key_env: "FAKE_KEY" },
          nowhere: { type: "openai", base_url: "http://127.0.0.1:9/v1" },
          // Fails on purpose, again and again: its breaker must not open on the others' tests.
          echoing: {
            type: "openai",
            base_url: fake.url,
            api_key_env: "FAKE_KEY",
            breaker: { min_requests: 1000 },
          },
        },
        models: {
          primary: model("up-primary"),
          backup: { ...model("up-backup"), provider: "fake-backup" },
          lost: { provider: "nowhere", name: "up-lost" },
          echo: { provider: "echoing", name: "up-echo" },
        },
        routes: {
          default: { chain: [{ model: "primary", timeout_ms: 1000 }, { model: "backup" }] },
          retrying: { chain: [{ model: "primary", max_retries: 2 }, { model: "backup" }] },
          lenient: { on_bad_request: "fallback", chain: [{ model: "primary" }, { model: "backup" }] },
          unreachable: { chain: [{ model: "lost" }, { model: "backup" }] },
        },
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await fake?.close();
  });
  beforeEach(() => fake.reset());

  async function run(body: Record<string, unknown>) {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "What is 2+2?" }], max_tokens: 50 }, ...body },
    });
    expect(created.status).toBe(202);
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`);
    return done.body;
  }

  it("sends the upstream model name and key to {base_url}/chat/completions and returns a chat.completion", async () => {
    fake.script("up-primary", {
      kind: "ok",
      content: "4",
      usage: { prompt_tokens: 12, completion_tokens: 3, cached_tokens: 2 },
    });
    const job = await run({});
    expect(job).toMatchObject({ status: "succeeded", model: "primary", provider: "fake" });
    expect(job.result).toMatchObject({
      object: "chat.completion",
      model: "primary",
      choices: [{ index: 0, message: { role: "assistant", content: "4" }, finish_reason: "stop" }],
      usage: {
        prompt_tokens: 12,
        completion_tokens: 3,
        total_tokens: 15,
        prompt_tokens_details: { cached_tokens: 2 },
      },
    });
    expect(job.cost_usd).toBeCloseTo((12 * 2 + 3 * 8) / 1e6, 12);
    const [call] = fake.callsFor("up-primary");
    expect(call?.path).toBe("/v1/chat/completions");
    expect(call?.headers.authorization).toBe("Bearer sk-test-123");
    expect(call?.body).toMatchObject({
      model: "up-primary",
      max_tokens: 50,
      messages: [{ role: "user", content: "What is 2+2?" }],
    });
  });

  it("passes tools and returns tool_calls", async () => {
    fake.script("up-primary", {
      kind: "ok",
      toolCalls: [{ id: "call_1", name: "add", arguments: '{"a":2,"b":2}' }],
      finishReason: "tool_calls",
    });
    const job = await run({
      request: {
        messages: [{ role: "user", content: "add 2 and 2" }],
        tools: [
          {
            type: "function",
            function: {
              name: "add",
              parameters: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } } },
            },
          },
        ],
        tool_choice: "required",
      },
    });
    expect(job.result.choices[0]).toMatchObject({
      finish_reason: "tool_calls",
      message: {
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "add", arguments: '{"a":2,"b":2}' } },
        ],
      },
    });
    const body = fake.callsFor("up-primary")[0]?.body;
    expect(body.tools[0].function.name).toBe("add");
    expect(body.tool_choice).toBe("required");
  });

  it("streams a job's tool-call deltas to its events in OpenAI's shape", async () => {
    fake.script("up-primary", {
      kind: "ok",
      toolCalls: [{ id: "call_7", name: "add", arguments: '{"a":2,"b":2}' }],
      finishReason: "tool_calls",
    });
    const tools = [{ type: "function", function: { name: "add", parameters: { type: "object" } } }];
    const job = await run({
      request: { messages: [{ role: "user", content: "add" }], max_tokens: 50, tools, stream: true },
    });
    expect(job.status).toBe("succeeded");
    const { events } = await readEvents(`${stack.url}/v1/jobs/${job.id}/events`);
    const calls = events
      .filter((event) => event.event === "delta")
      .flatMap((event) => event.data.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, id: "call_7", type: "function", function: { name: "add" } });
    const args = calls.map((call: { function: { arguments?: string } }) => call.function.arguments ?? "");
    expect(args.join("")).toBe('{"a":2,"b":2}');
  });

  it("scrubs our provider key from an upstream's error text before a tenant or the log sees it", async () => {
    // Some OpenAI-compatible servers and proxies echo the Authorization header they got.
    fake.script("up-primary", {
      kind: "status",
      status: 401,
      body: {
        error: { message: "Incorrect API key provided: Bearer sk-test-123", type: "invalid_request_error" },
      },
    });
    const job = await run({ models: ["primary"] });
    expect(job.status).toBe("failed");
    const text = JSON.stringify(job);
    expect(text).not.toContain("sk-test-123");
    expect(job.attempts[0].message).toContain("Bearer [redacted]");
  });

  it("scrubs our key where an upstream quotes only part of it (OpenAI's masked 401) or its base64", async () => {
    const key = "sk-test-123";
    for (const quoted of [
      `${key.slice(0, 8)}${"*".repeat(24)}${key.slice(-4)}`,
      `${key.slice(0, 9)}...`,
      Buffer.from(`user:${key}`).toString("base64"),
    ]) {
      fake.script("up-primary", {
        kind: "status",
        status: 401,
        body: {
          error: {
            message: `Incorrect API key provided: ${quoted}. See the docs.`,
            type: "invalid_request_error",
          },
        },
      });
      const job = await run({ models: ["primary"] });
      expect(job.status).toBe("failed");
      expect(job.attempts[0].message, quoted).toContain("provided: [redacted]. See the docs.");
      expect(JSON.stringify(job), quoted).not.toContain(quoted);
    }
  });

  it("lets no echoed request tell which words are pieces of our key (a tenant could read it off window by window)", async () => {
    // 8-character windows, masked forms and a base64 piece of "sk-test-123", and the provider's
    // host, as a tenant probing for them would send them; the upstream's 400 quotes the request.
    const probe = `probe test-123 k-test-1x sk-test-1*** ***t-123 ${Buffer.from("sk-test-1").toString("base64")} 127.0.0.1x`;
    const asked = { messages: [{ role: "user", content: probe }], max_tokens: 50 };
    fake.script("up-echo", { kind: "status", status: 400, echoMessages: true });
    const job = await run({ models: ["echo"], request: asked });
    expect(job.status).toBe("failed");
    expect(job.attempts[0]).toMatchObject({ outcome: "error", reason: "bad_request" });
    expect(job.attempts[0].message).toContain(probe);
    expect(job.attempts[0].message).not.toContain("[redacted]");
    fake.script("up-echo", { kind: "status", status: 400, echoMessages: true });
    const answer = await stack.request("POST", "/v1/chat/completions", { body: { model: "echo", ...asked } });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toContain(probe);
    // The whole key, echoed, is still scrubbed.
    fake.script("up-echo", { kind: "status", status: 400, echoMessages: true });
    const whole = await run({
      models: ["echo"],
      request: { messages: [{ role: "user", content: "key sk-test-123 here" }], max_tokens: 50 },
    });
    expect(whole.attempts[0].message).toContain("key [redacted] here");
  });

  it("scrubs our key from a long error text before cutting it short (a key across the cut leaked its start)", async () => {
    // "HTTP 500: " + padding + "Bearer " puts the key at characters 491..510 of the message: the
    // 500-character bound falls inside the key for each of these paddings.
    for (const padding of [474, 478, 482]) {
      fake.script("up-echo", {
        kind: "status",
        status: 500,
        body: { error: { message: `${"a".repeat(padding)}Bearer sk-test-123 and more` } },
      });
      const job = await run({ models: ["echo"] });
      expect(job.status).toBe("failed");
      const message: string = job.attempts[0].message;
      expect(message.length, `padding ${padding}`).toBeLessThanOrEqual(500);
      expect(message, `padding ${padding}`).not.toMatch(/sk-t/);
      expect(message, `padding ${padding}`).toMatch(/Bearer \[/);
      expect(JSON.stringify(job)).not.toMatch(/sk-t/);
    }
  });

  it("passes json_schema response formats and images by URL", async () => {
    await run({
      request: {
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "describe" },
              { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
              { type: "image_url", image_url: { url: "https://example.com/dog.png", detail: "low" } },
            ],
          },
        ],
        response_format: {
          type: "json_schema",
          json_schema: { name: "answer", schema: { type: "object", properties: { a: { type: "string" } } } },
        },
      },
    });
    const body = fake.callsFor("up-primary")[0]?.body;
    expect(body.response_format).toMatchObject({ type: "json_schema", json_schema: { name: "answer" } });
    expect(body.messages[0].content[1]).toMatchObject({
      type: "image_url",
      image_url: { url: "https://example.com/cat.png" },
    });
    // The detail a caller asked for is what is billed: it reaches the provider.
    expect(body.messages[0].content[2]).toEqual({
      type: "image_url",
      image_url: { url: "https://example.com/dog.png", detail: "low" },
    });
  });

  it("keeps a refusal an answer (message.refusal, finish_reason stop), streamed as refusal deltas", async () => {
    const refusal = "I can't help with that.";
    fake.script("up-primary", { kind: "ok", refusal });
    const plain = await run({});
    expect(plain).toMatchObject({ status: "succeeded", model: "primary" });
    expect(plain.result.choices[0]).toMatchObject({
      message: { content: null, refusal },
      finish_reason: "stop",
    });
    fake.script("up-primary", { kind: "ok", refusal });
    const streamed = await run({
      request: { messages: [{ role: "user", content: "x" }], max_tokens: 20, stream: true },
    });
    expect(streamed).toMatchObject({ status: "succeeded", model: "primary" });
    expect(streamed.result.choices[0]).toMatchObject({
      message: { content: null, refusal },
      finish_reason: "stop",
    });
    const { events } = await readEvents(`${stack.url}/v1/jobs/${streamed.id}/events`);
    const deltas = events.filter((event) => event.event === "delta").map((event) => event.data);
    expect(deltas.map((delta) => delta.refusal ?? "").join("")).toBe(refusal);
    expect(deltas.every((delta) => delta.content === undefined)).toBe(true);
    expect(fake.callsFor("up-backup")).toHaveLength(0);
  });

  it("charges a stream cut after the provider started answering, before any text, its prompt", async () => {
    const streamed = {
      messages: [{ role: "user", content: "What is 2+2? ".repeat(40) }],
      max_tokens: 50,
      stream: true,
    };
    // A plain 500: the provider bills nothing; the job pays for the backup's answer only.
    fake.script("up-primary", { kind: "server_error" });
    const refused = await run({ request: streamed });
    expect(refused.attempts.map((attempt: { reason?: string }) => attempt.reason ?? "ok")).toEqual([
      "server_error",
      "ok",
    ]);
    // A 200 whose stream broke off after its first event (the role chunk): the provider had the
    // prompt and started on it, as Anthropic's message_start reports its input tokens.
    fake.script("up-primary", { kind: "stream_cut", afterChunks: 1 });
    const cut = await run({ request: streamed });
    expect(cut.attempts.map((attempt: { reason?: string }) => attempt.reason ?? "ok")).toEqual([
      "network_error",
      "ok",
    ]);
    // The prompt estimate: 520 characters / 4 + 10 per message = 140 tokens at $2 per million.
    expect(cut.cost_usd - refused.cost_usd).toBeCloseTo((140 * 2) / 1_000_000, 9);
    // A stream the provider itself ended with an error event (an upstream 5xx behind a proxy)
    // before any text: not billed, as a plain 500 is not.
    fake.script("up-primary", {
      kind: "error_event",
      afterChunks: 1,
      error: { message: "The server had an error", type: "server_error", code: null },
    });
    const failed = await run({ request: streamed });
    expect(failed.attempts.map((attempt: { reason?: string }) => attempt.reason ?? "ok")).toEqual([
      "server_error",
      "ok",
    ]);
    expect(failed.cost_usd).toBeCloseTo(refused.cost_usd, 12);
  });

  it("sends each message's name (OpenAI's participant name), streamed or not", async () => {
    const messages = [
      { role: "system", content: "Be brief.", name: "house_rules" },
      { role: "user", content: "Hi, I'm Alice.", name: "alice" },
      { role: "assistant", content: "Hello Alice.", name: "helper" },
      { role: "user", content: "And I'm Bob.", name: "bob" },
      { role: "user", content: "Who spoke?" },
    ];
    for (const stream of [false, true]) {
      fake.reset();
      const job = await run({ request: { messages, max_tokens: 20, stream } });
      expect(job.status).toBe("succeeded");
      const sent = fake.callsFor("up-primary")[0]?.body.messages as Array<{ role: string; name?: string }>;
      expect(
        sent.map((message) => message.name ?? null),
        `stream ${stream}`,
      ).toEqual(["house_rules", "alice", "helper", "bob", null]);
    }
  });

  it("sends json_schema's strict as the caller set it (OpenAI's default is false), streamed or not", async () => {
    const schema = { type: "object", properties: { a: { type: "string" } } };
    for (const [strict, stream, sent] of [
      [undefined, false, false],
      [false, false, false],
      [true, false, true],
      [null, true, false],
      [true, true, true],
    ] as const) {
      fake.reset();
      const job = await run({
        request: {
          messages: [{ role: "user", content: "json please" }],
          max_tokens: 20,
          stream,
          response_format: {
            type: "json_schema",
            json_schema: { name: "answer", schema, ...(strict === undefined ? {} : { strict }) },
          },
        },
      });
      expect(job.status).toBe("succeeded");
      const body = fake.callsFor("up-primary")[0]?.body;
      expect(body.response_format.json_schema.strict, `strict ${strict}, stream ${stream}`).toBe(sent);
      // The schema goes as the caller wrote it: nothing added that strict mode would need.
      expect(body.response_format.json_schema.schema).toEqual(schema);
    }
  });

  const fallbacks: Array<[string, Parameters<FakeOpenAI["script"]>[1], string, number | undefined]> = [
    ["server_error", { kind: "server_error" }, "server_error", 500],
    ["rate limit", { kind: "rate_limited", retryAfterSeconds: 1 }, "rate_limited", 429],
    ["context length", { kind: "context_length" }, "context_length", 400],
    ["malformed body", { kind: "malformed" }, "invalid_response", 200],
    ["hang", { kind: "hang" }, "timeout", undefined],
    ["connection reset", { kind: "reset" }, "network_error", undefined],
    [
      "bad key",
      {
        kind: "status",
        status: 401,
        body: {
          error: {
            message: "Incorrect API key provided",
            type: "invalid_request_error",
            param: null,
            code: "invalid_api_key",
          },
        },
      },
      "auth_error",
      401,
    ],
    [
      "unsupported parameter",
      {
        kind: "status",
        status: 400,
        body: {
          error: {
            message: "Unsupported parameter: 'max_tokens'",
            type: "invalid_request_error",
            param: "max_tokens",
            code: "unsupported_parameter",
          },
        },
      },
      "bad_request",
      400,
    ],
  ];
  for (const [name, behaviour, reason, status] of fallbacks) {
    it(`falls back on ${name} with reason ${reason}`, async () => {
      fake.script("up-primary", behaviour);
      const job = await run({});
      expect(job.status).toBe("succeeded");
      expect(job.model).toBe("backup");
      expect(job.attempts[0]).toMatchObject({ model: "primary", provider: "fake", outcome: "error", reason });
      if (status !== undefined) expect(job.attempts[0].http_status).toBe(status);
      expect(job.attempts[1]).toMatchObject({ model: "backup", outcome: "success" });
    });
  }

  it("fails the job at once on the caller's bad request, unless the route says fallback", async () => {
    const invalid = {
      kind: "status" as const,
      status: 400,
      body: {
        error: {
          message: "Invalid value for 'temperature'",
          type: "invalid_request_error",
          param: "temperature",
          code: "invalid_value",
        },
      },
    };
    fake.script("up-primary", invalid);
    const failed = await run({});
    expect(failed.status).toBe("failed");
    expect(failed.error.type).toBe("bad_request");
    expect(fake.callsFor("up-backup")).toHaveLength(0);
    fake.script("up-primary", invalid);
    const lenient = await run({ route: "lenient" });
    expect(lenient.status).toBe("succeeded");
  });

  it("reports a network error for an unreachable endpoint and moves on", async () => {
    const job = await run({ route: "unreachable" });
    expect(job.attempts[0]).toMatchObject({ model: "lost", outcome: "error", reason: "network_error" });
    expect(job.model).toBe("backup");
    // A tenant learns why, not where the operator's provider lives (an internal vLLM's address).
    expect(job.attempts[0].message).toMatch(/ECONNREFUSED/);
    expect(JSON.stringify(job)).not.toContain("127.0.0.1");
  });

  it("reports a network error for an answer whose connection broke mid-body, not an invalid response", async () => {
    // The headers (200) and part of the JSON body, then the connection is cut.
    fake.script("up-primary", { kind: "stream_cut", afterChunks: 1 });
    const job = await run({});
    expect(job.attempts[0]).toMatchObject({ model: "primary", outcome: "error", reason: "network_error" });
    expect(job.model).toBe("backup");
  });

  it("retries the same hop with backoff, never sooner than Retry-After", async () => {
    fake.script("up-primary", { kind: "rate_limited", retryAfterSeconds: 2 }, { kind: "server_error" });
    const job = await run({ route: "retrying" });
    expect(job.status).toBe("succeeded");
    expect(job.model).toBe("primary");
    expect(
      job.attempts.map((attempt: { reason?: string; outcome: string }) => attempt.reason ?? attempt.outcome),
    ).toEqual(["rate_limited", "server_error", "success"]);
    const calls = fake.callsFor("up-primary");
    expect(calls).toHaveLength(3);
    expect((calls[1]?.at ?? 0) - (calls[0]?.at ?? 0)).toBeGreaterThanOrEqual(2000);
  });

  it("fails all_models_failed when every hop fails, with the whole trace", async () => {
    fake.setDefault("up-primary", { kind: "server_error" });
    fake.setDefault("up-backup", { kind: "server_error", status: 503 });
    const job = await run({});
    expect(job.status).toBe("failed");
    expect(job.error.type).toBe("all_models_failed");
    expect(job.attempts.map((attempt: { reason: string }) => attempt.reason)).toEqual([
      "server_error",
      "server_error",
    ]);
  });
});
