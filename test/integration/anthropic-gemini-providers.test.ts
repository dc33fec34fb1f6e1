import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { anthropicError, type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeGemini, geminiError, startFakeGemini } from "../support/fake-gemini.js";

/**
 * The worker's Anthropic and Gemini providers against fakes that speak each wire format over real
 * HTTP: requests arrive in the provider's shape, and every reason the contract names for them is
 * produced from the provider's real error bodies and finish reasons.
 */
describe("anthropic and gemini providers through the worker", () => {
  let anthropic: FakeAnthropic;
  let gemini: FakeGemini;
  let stack: Stack;
  // Gemini gets images as bytes: Cascade downloads them from here (loopback, so the test config
  // allows private networks; the guard itself is covered by the webhook SSRF tests).
  const png = Buffer.from("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489", "hex");
  let imageServer: Server;
  let imageUrl = "";

  beforeAll(async () => {
    imageServer = createServer((request, response) => {
      if (request.url === "/cat.png") response.writeHead(200, { "content-type": "image/png" }).end(png);
      else if (request.url === "/cut.png") {
        // Headers and a few bytes, then the connection drops.
        response.writeHead(200, { "content-type": "image/png", "content-length": "4096" });
        response.write(png.subarray(0, 8), () => response.socket?.destroy());
      } else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => imageServer.listen(0, "127.0.0.1", resolve));
    const address = imageServer.address();
    imageUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/cat.png`;
    anthropic = await startFakeAnthropic({ apiKey: "sk-ant-test" });
    gemini = await startFakeGemini({ apiKey: "AIza-test" });
    const model = (provider: string, name: string) => ({
      provider,
      name,
      price: { input_per_mtok: 3, output_per_mtok: 15 },
      capabilities: ["tools", "json", "vision"],
    });
    const anthropicProvider = (keyEnv: string) => ({
      type: "anthropic",
      base_url: anthropic.url,
      api_key_env: keyEnv,
    });
    const geminiProvider = (keyEnv: string) => ({
      type: "gemini",
      base_url: gemini.url,
      api_key_env: keyEnv,
    });
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: { ANTHROPIC_KEY: "sk-ant-test", GEMINI_KEY: "AIza-test", WRONG_KEY: "not-the-key" },
      config: {
        webhooks: { allow_private_networks: true },
        // Each failing case has its own provider where a 429 would cool down the whole provider.
        providers: {
          anth: anthropicProvider("ANTHROPIC_KEY"),
          "anth-backup": anthropicProvider("ANTHROPIC_KEY"),
          "anth-limited": anthropicProvider("ANTHROPIC_KEY"),
          "anth-badkey": anthropicProvider("WRONG_KEY"),
          // One socket: a second call waits for it inside the process.
          "anth-narrow": { ...anthropicProvider("ANTHROPIC_KEY"), connections: 1 },
          gem: geminiProvider("GEMINI_KEY"),
          "gem-backup": geminiProvider("GEMINI_KEY"),
          "gem-limited": geminiProvider("GEMINI_KEY"),
          "gem-badkey": geminiProvider("WRONG_KEY"),
        },
        models: {
          claude: model("anth", "up-claude"),
          "claude-backup": model("anth-backup", "up-claude-backup"),
          "claude-limited": model("anth-limited", "up-claude-limited"),
          "claude-badkey": model("anth-badkey", "up-claude"),
          "claude-narrow": model("anth-narrow", "up-claude-narrow"),
          // A name @ai-sdk/anthropic knows to take native structured outputs (output_config.format).
          "claude-native": model("anth", "claude-sonnet-4-5"),
          gemini: model("gem", "up-gemini"),
          // Real names: 2.x takes no JSON mime type beside function declarations, 3 does.
          "gemini-25": model("gem", "gemini-2.5-flash"),
          "gemini-3": model("gem", "gemini-3-flash-preview"),
          "gemini-backup": model("gem-backup", "up-gemini-backup"),
          "gemini-limited": model("gem-limited", "up-gemini-limited"),
          "gemini-badkey": model("gem-badkey", "up-gemini"),
          // Anthropic's list rates for cache reads (0.1×) and 5-minute writes (1.25×).
          "claude-cached": {
            ...model("anth", "up-claude-cached"),
            price: {
              input_per_mtok: 3,
              output_per_mtok: 15,
              cached_input_per_mtok: 0.3,
              cache_write_per_mtok: 3.75,
            },
          },
          "gemini-cached": {
            ...model("gem", "up-gemini-cached"),
            price: { input_per_mtok: 1.25, output_per_mtok: 10, cached_input_per_mtok: 0.125 },
          },
        },
        routes: {
          default: { chain: [{ model: "claude", timeout_ms: 2000 }, { model: "claude-backup" }] },
          "anthropic-429": {
            chain: [{ model: "claude-limited", max_retries: 1 }, { model: "claude-backup" }],
          },
          "anthropic-401": { chain: [{ model: "claude-badkey" }, { model: "claude-backup" }] },
          "narrow-long": { chain: [{ model: "claude-narrow", timeout_ms: 3000 }] },
          "narrow-short": { chain: [{ model: "claude-narrow", timeout_ms: 500 }] },
          "via-gemini": { chain: [{ model: "gemini", timeout_ms: 2000 }, { model: "gemini-backup" }] },
          "via-gemini-25": { chain: [{ model: "gemini-25" }] },
          "via-gemini-3": { chain: [{ model: "gemini-3" }] },
          "gemini-429": {
            chain: [{ model: "gemini-limited", max_retries: 1 }, { model: "gemini-backup" }],
          },
          "gemini-bad-key": { chain: [{ model: "gemini-badkey" }, { model: "gemini-backup" }] },
          "via-claude-cached": { chain: [{ model: "claude-cached" }] },
          "via-gemini-cached": { chain: [{ model: "gemini-cached" }] },
        },
      },
    });
  });
  afterAll(async () => {
    await new Promise((resolve) => imageServer?.close(resolve));
    await stack?.close();
    await anthropic?.close();
    await gemini?.close();
  });
  beforeEach(() => {
    anthropic.reset();
    gemini.reset();
  });

  async function run(body: Record<string, unknown>) {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "What is 2+2?" }], max_tokens: 50 }, ...body },
    });
    expect(created.status).toBe(202);
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`);
    return done.body;
  }

  const addTool = {
    type: "function",
    function: {
      name: "add",
      parameters: { type: "object", properties: { a: { type: "number" }, b: { type: "number" } } },
    },
  };
  const imageMessage = {
    role: "user",
    content: [
      { type: "text", text: "describe" },
      { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
    ],
  };
  const answerFormat = {
    type: "json_schema",
    json_schema: {
      name: "answer",
      schema: { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
    },
  };

  describe("anthropic", () => {
    it("posts to {base_url}/messages with Anthropic's headers and returns a chat.completion", async () => {
      anthropic.script("up-claude", {
        kind: "ok",
        content: "4",
        usage: { input_tokens: 12, output_tokens: 3, cache_read_input_tokens: 2 },
      });
      const job = await run({
        request: {
          messages: [
            { role: "system", content: "Be terse." },
            { role: "user", content: "What is 2+2?" },
          ],
          max_tokens: 50,
        },
      });
      expect(job).toMatchObject({ status: "succeeded", model: "claude", provider: "anth" });
      expect(job.result).toMatchObject({
        object: "chat.completion",
        model: "claude",
        choices: [{ index: 0, message: { role: "assistant", content: "4" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 14, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 2 } },
      });
      const [call] = anthropic.callsFor("up-claude");
      expect(call?.path).toBe("/v1/messages");
      expect(call?.headers["x-api-key"]).toBe("sk-ant-test");
      expect(call?.headers["anthropic-version"]).toBe("2023-06-01");
      expect(call?.body).toMatchObject({
        model: "up-claude",
        max_tokens: 50,
        system: [{ type: "text", text: "Be terse." }],
        messages: [{ role: "user", content: [{ type: "text", text: "What is 2+2?" }] }],
      });
    });

    it("prices cache reads and writes at the model's cache prices, the rest of the prompt at its input price", async () => {
      anthropic.script("up-claude-cached", {
        kind: "ok",
        content: "4",
        usage: {
          input_tokens: 40,
          cache_creation_input_tokens: 200,
          cache_read_input_tokens: 1000,
          output_tokens: 12,
        },
      });
      const job = await run({ route: "via-claude-cached" });
      expect(job.result.usage).toMatchObject({
        prompt_tokens: 1240,
        prompt_tokens_details: { cached_tokens: 1000 },
      });
      // 40 × $3 + 200 × $3.75 + 1000 × $0.30 + 12 × $15, per million tokens.
      expect(job.cost_usd).toBeCloseTo((40 * 3 + 200 * 3.75 + 1000 * 0.3 + 12 * 15) / 1e6, 12);
    });

    it("sends max_tokens 4096 when the request has none (Anthropic requires it)", async () => {
      await run({ request: { messages: [{ role: "user", content: "Hi" }] } });
      expect(anthropic.callsFor("up-claude")[0]?.body.max_tokens).toBe(4096);
    });

    it("passes tools and returns tool_calls", async () => {
      anthropic.script("up-claude", {
        kind: "ok",
        toolCalls: [{ id: "toolu_01", name: "add", arguments: '{"a":2,"b":2}' }],
      });
      const job = await run({
        request: {
          messages: [{ role: "user", content: "add 2 and 2" }],
          tools: [addTool],
          tool_choice: "required",
        },
      });
      expect(job.result.choices[0]).toMatchObject({
        finish_reason: "tool_calls",
        message: {
          content: null,
          tool_calls: [
            { id: "toolu_01", type: "function", function: { name: "add", arguments: '{"a":2,"b":2}' } },
          ],
        },
      });
      const body = anthropic.callsFor("up-claude")[0]?.body;
      expect(body.tools[0]).toMatchObject({ name: "add", input_schema: { type: "object" } });
      expect(body.tool_choice).toMatchObject({ type: "any" });
    });

    it("keeps the caller's tool_choice when json_object comes with tools (no forced json tool)", async () => {
      anthropic.script(
        "up-claude",
        { kind: "ok", content: '{"sum":4}' },
        { kind: "ok", content: '{"sum":4}' },
      );
      const messages = [{ role: "user", content: "add 2 and 2, answer in JSON" }];
      await run({ request: { messages, tools: [addTool], response_format: { type: "json_object" } } });
      const auto = anthropic.callsFor("up-claude")[0]?.body;
      expect(auto.tools.map((tool: { name: string }) => tool.name)).toEqual(["add"]);
      expect(auto.tool_choice ?? { type: "auto" }).toMatchObject({ type: "auto" });
      expect(auto.tool_choice?.disable_parallel_tool_use).not.toBe(true);
      await run({
        request: {
          messages,
          tools: [addTool],
          tool_choice: { type: "function", function: { name: "add" } },
          response_format: { type: "json_object" },
        },
      });
      const named = anthropic.callsFor("up-claude")[1]?.body;
      expect(named.tool_choice).toMatchObject({ type: "tool", name: "add" });
    });

    it("answers json_schema through the SDK's json tool and passes image URLs through", async () => {
      anthropic.script("up-claude", { kind: "ok", toolCalls: [{ name: "json", arguments: '{"a":"cat"}' }] });
      const job = await run({ request: { messages: [imageMessage], response_format: answerFormat } });
      expect(job.result.choices[0]).toMatchObject({
        finish_reason: "stop",
        message: { content: '{"a":"cat"}' },
      });
      const body = anthropic.callsFor("up-claude")[0]?.body;
      expect(body.tools).toEqual([
        expect.objectContaining({ name: "json", input_schema: expect.objectContaining({ required: ["a"] }) }),
      ]);
      expect(body.messages[0].content[1]).toEqual({
        type: "image",
        source: { type: "url", url: "https://example.com/cat.png" },
      });
    });

    const toolNames = (body: { tools?: Array<{ name: string }> }) =>
      (body.tools ?? []).map((tool) => tool.name);

    for (const stream of [false, true])
      it(`json_schema with tools: the model may call the caller's tool, and its JSON answer comes as text, not a tool call (stream: ${stream})`, async () => {
        anthropic.script(
          "up-claude",
          { kind: "ok", toolCalls: [{ id: "toolu_01", name: "add", arguments: '{"a":2,"b":2}' }] },
          { kind: "ok", toolCalls: [{ id: "toolu_02", name: "json", arguments: '{"a":"4"}' }] },
        );
        const question = { role: "user", content: "add 2 and 2, answer in JSON" };
        const request = { tools: [addTool], response_format: answerFormat, max_tokens: 50, stream };
        const first = await run({ request: { ...request, messages: [question] } });
        expect(first).toMatchObject({ status: "succeeded", model: "claude" });
        expect(first.result.choices[0]).toMatchObject({
          finish_reason: "tool_calls",
          message: {
            content: null,
            tool_calls: [
              { id: "toolu_01", type: "function", function: { name: "add", arguments: '{"a":2,"b":2}' } },
            ],
          },
        });
        expect(first.result.choices[0].message.tool_calls).toHaveLength(1);
        // The SDK's json tool beside the caller's: the model calls one of them, a tool or its answer.
        const asked = anthropic.callsFor("up-claude")[0]?.body;
        expect(toolNames(asked)).toEqual(["add", "json"]);
        expect(asked.tool_choice).toMatchObject({ type: "any" });

        const second = await run({
          request: {
            ...request,
            messages: [
              question,
              { role: "assistant", content: null, tool_calls: first.result.choices[0].message.tool_calls },
              { role: "tool", tool_call_id: "toolu_01", content: "4" },
            ],
          },
        });
        expect(second.result.choices[0]).toMatchObject({
          finish_reason: "stop",
          message: { content: '{"a":"4"}' },
        });
        expect(second.result.choices[0].message.tool_calls).toBeUndefined();
        const answered = anthropic.callsFor("up-claude")[1]?.body;
        expect(toolNames(answered)).toEqual(["add", "json"]);
        expect(answered.messages.at(-1).content[0]).toMatchObject({
          type: "tool_result",
          tool_use_id: "toolu_01",
        });
      });

    it("json_schema with tool_choice required or a named tool: the caller's tools and choice as sent, no json tool to answer instead", async () => {
      const addCall = {
        kind: "ok" as const,
        toolCalls: [{ id: "toolu_01", name: "add", arguments: '{"a":2,"b":2}' }],
      };
      anthropic.script("up-claude", addCall, addCall, addCall);
      const messages = [{ role: "user", content: "add 2 and 2" }];
      const request = { messages, tools: [addTool], response_format: answerFormat };
      const required = await run({ request: { ...request, tool_choice: "required" } });
      expect(required.result.choices[0]).toMatchObject({
        finish_reason: "tool_calls",
        message: { tool_calls: [{ function: { name: "add" } }] },
      });
      const requiredBody = anthropic.callsFor("up-claude")[0]?.body;
      expect(toolNames(requiredBody)).toEqual(["add"]);
      expect(requiredBody.tool_choice).toEqual({ type: "any" });

      await run({ request: { ...request, tool_choice: { type: "function", function: { name: "add" } } } });
      const named = anthropic.callsFor("up-claude")[1]?.body;
      expect(toolNames(named)).toEqual(["add"]);
      expect(named.tool_choice).toEqual({ type: "tool", name: "add" });

      await run({ request: { ...request, tool_choice: "required", parallel_tool_calls: false } });
      const serial = anthropic.callsFor("up-claude")[2]?.body;
      expect(serial.tool_choice).toEqual({ type: "any", disable_parallel_tool_use: true });
    });

    it("json_schema with tools on a model with native structured outputs: output_config.format, the caller's tools and choice as sent", async () => {
      anthropic.script("claude-sonnet-4-5", { kind: "ok", content: '{"a":"4"}' });
      const job = await run({
        models: ["claude-native"],
        request: {
          messages: [{ role: "user", content: "add 2 and 2, answer in JSON" }],
          tools: [addTool],
          response_format: answerFormat,
        },
      });
      expect(job.result.choices[0]).toMatchObject({
        finish_reason: "stop",
        message: { content: '{"a":"4"}' },
      });
      const body = anthropic.callsFor("claude-sonnet-4-5")[0]?.body;
      expect(body.output_config?.format).toMatchObject({ type: "json_schema", schema: { required: ["a"] } });
      expect(toolNames(body)).toEqual(["add"]);
      expect(body.tool_choice ?? { type: "auto" }).toMatchObject({ type: "auto" });
    });

    it("waits Anthropic's retry-after before retrying a 429", async () => {
      anthropic.script("up-claude-limited", { kind: "rate_limited", retryAfterSeconds: 1 });
      const job = await run({ route: "anthropic-429" });
      expect(job.status).toBe("succeeded");
      expect(job.model).toBe("claude-limited");
      expect(job.attempts[0]).toMatchObject({ outcome: "error", reason: "rate_limited", http_status: 429 });
      const calls = anthropic.callsFor("up-claude-limited");
      expect(calls).toHaveLength(2);
      expect((calls[1]?.at ?? 0) - (calls[0]?.at ?? 0)).toBeGreaterThanOrEqual(1000);
    });

    const fallbacks: Array<[string, Parameters<FakeAnthropic["script"]>[1], string, number | undefined]> = [
      ["529 overloaded", { kind: "overloaded" }, "server_error", 529],
      ["500 api_error", { kind: "server_error" }, "server_error", 500],
      ["prompt too long", { kind: "context_length" }, "context_length", 400],
      [
        "a refusal",
        { kind: "ok", content: "I can't help with that.", finishReason: "refusal" },
        "content_filter",
        undefined,
      ],
      [
        "an unknown model",
        { kind: "status", status: 404, body: anthropicError("not_found_error", "model: up-claude") },
        "bad_request",
        404,
      ],
      [
        "temperature and top_p together",
        {
          kind: "bad_request",
          message: "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
        },
        "bad_request",
        400,
      ],
      ["a malformed body", { kind: "malformed" }, "invalid_response", 200],
      ["a hang", { kind: "hang" }, "timeout", undefined],
    ];
    for (const [name, behaviour, reason, status] of fallbacks) {
      it(`falls back on ${name} with reason ${reason}`, async () => {
        anthropic.script("up-claude", behaviour);
        const job = await run({});
        expect(job.status).toBe("succeeded");
        expect(job.model).toBe("claude-backup");
        expect(job.attempts[0]).toMatchObject({
          model: "claude",
          provider: "anth",
          outcome: "error",
          reason,
        });
        if (status !== undefined) expect(job.attempts[0].http_status).toBe(status);
      });
    }

    it("falls back on a rejected key with reason auth_error", async () => {
      const job = await run({ route: "anthropic-401" });
      expect(job.model).toBe("claude-backup");
      expect(job.attempts[0]).toMatchObject({
        model: "claude-badkey",
        reason: "auth_error",
        http_status: 401,
      });
    });

    it("fails the job at once on the caller's bad request", async () => {
      anthropic.script("up-claude", {
        kind: "bad_request",
        message: 'messages: roles must alternate between "user" and "assistant"',
      });
      const job = await run({});
      expect(job.status).toBe("failed");
      expect(job.error.type).toBe("bad_request");
      expect(anthropic.callsFor("up-claude-backup")).toHaveLength(0);
    });
  });

  it("sends Anthropic no whitespace-only stop sequence and only tool ids it takes (paired as before)", async () => {
    // OpenAI takes both; Anthropic answers each with a 400 that would fail the job.
    anthropic.script("up-claude", { kind: "ok", content: "Sunny." });
    const job = await run({
      models: ["claude"],
      request: {
        max_tokens: 50,
        stop: ["\n", "END"],
        messages: [
          { role: "user", content: "Weather?" },
          {
            role: "assistant",
            content: null,
            tool_calls: [
              {
                id: "functions.get_weather:0",
                type: "function",
                function: { name: "get_weather", arguments: "{}" },
              },
            ],
          },
          { role: "tool", tool_call_id: "functions.get_weather:0", content: "sunny" },
        ],
        tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }],
      },
    });
    expect(job.status).toBe("succeeded");
    const body = anthropic.callsFor("up-claude").at(-1)?.body;
    expect(body.stop_sequences).toEqual(["END"]);
    const toolUse = body.messages[1].content.find((block: { type: string }) => block.type === "tool_use");
    const toolResult = body.messages[2].content.find(
      (block: { type: string }) => block.type === "tool_result",
    );
    expect(toolUse.id).toBe("functions_get_weather_0");
    expect(toolResult.tool_use_id).toBe("functions_get_weather_0");
  });

  it("sends Anthropic no blank text, no empty turn and no blank tool arguments (each a 400 there)", async () => {
    // OpenAI takes an empty system prompt, blank text parts, an assistant turn of "" and a tool
    // call whose arguments are ""; Anthropic refuses each with a 400 that would fail the job.
    anthropic.script("up-claude", { kind: "ok", content: "Sunny." });
    const job = await run({
      models: ["claude"],
      request: {
        max_tokens: 50,
        messages: [
          { role: "system", content: "" },
          { role: "developer", content: "  " },
          {
            role: "user",
            content: [
              { type: "text", text: "" },
              { type: "text", text: "Hi" },
            ],
          },
          { role: "assistant", content: "" },
          { role: "user", content: "Weather?" },
          {
            role: "assistant",
            content: " ",
            tool_calls: [
              { id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } },
            ],
          },
          { role: "tool", tool_call_id: "call_1", content: "sunny" },
        ],
        tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }],
      },
    });
    expect(job.status).toBe("succeeded");
    const body = anthropic.callsFor("up-claude").at(-1)?.body;
    expect(body.system).toBeUndefined();
    expect(body.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "Hi" },
          { type: "text", text: "Weather?" },
        ],
      },
      { role: "assistant", content: [{ type: "tool_use", id: "call_1", name: "get_weather", input: {} }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "call_1", content: "sunny" }] },
    ]);
  });

  it("charges a Claude call that timed out with no max_tokens the 4096 it sent, not the 1024 estimate", async () => {
    // Anthropic needs max_tokens: Cascade sends 4096 for none, and Claude may bill all of it.
    anthropic.script("up-claude", { kind: "hang" });
    const job = await run({ request: { messages: [{ role: "user", content: "x" }] } });
    expect(job.attempts[0]).toMatchObject({ model: "claude", reason: "timeout" });
    // 4096 output tokens at 15 USD per million, with the prompt and the backup's answer on top.
    expect(job.cost_usd).toBeGreaterThanOrEqual((4096 * 15) / 1_000_000);
  });

  it("streams past an Anthropic event type it does not know (Anthropic may add some; clients ignore them)", async () => {
    anthropic.script("up-claude", {
      kind: "ok",
      content: "All of it.",
      extraEvents: [["future_event", { type: "future_event", detail: { anything: true } }]],
    });
    const job = await run({
      models: ["claude"],
      request: { messages: [{ role: "user", content: "x" }], max_tokens: 50, stream: true },
    });
    expect(job.status).toBe("succeeded");
    expect(job.result.choices[0].message.content).toBe("All of it.");
  });

  it("charges a Claude call that timed out waiting for a socket (no provider saw it) no whole answer", async () => {
    anthropic.script("up-claude-narrow", { kind: "hang" }, { kind: "hang" });
    const request = { messages: [{ role: "user", content: "x" }] };
    const first = await stack.request("POST", "/v1/jobs", { body: { request, route: "narrow-long" } });
    const deadline = Date.now() + 10_000;
    while (anthropic.callsFor("up-claude-narrow").length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // The one socket is taken: this call waits for it past its 500 ms and times out unsent.
    const second = await run({ request, route: "narrow-short" });
    expect(second.attempts[0]).toMatchObject({ reason: "timeout" });
    expect(anthropic.callsFor("up-claude-narrow")).toHaveLength(1);
    // The header naming the call for the dispatcher's interceptor never reaches the provider.
    expect(anthropic.callsFor("up-claude-narrow")[0]?.headers["x-cascade-sent-id"]).toBeUndefined();
    expect(second.cost_usd).toBeLessThan((1024 * 15) / 1_000_000);
    const sent = (await stack.request("GET", `/v1/jobs/${first.body.id}?wait=20`)).body;
    expect(sent.cost_usd).toBeGreaterThanOrEqual((4096 * 15) / 1_000_000);
  });

  describe("refusals the provider answered", () => {
    // 1,000 prompt and 100 output tokens at 3 and 15 USD per million: 0.0045, as billed.
    const refusals = {
      "Anthropic's refusal": () =>
        anthropic.script("up-claude", {
          kind: "ok",
          content: "I can't help with that.",
          finishReason: "refusal",
          usage: { input_tokens: 1000, output_tokens: 100 },
        }),
      "Gemini's SAFETY finish": () =>
        gemini.script("up-gemini", {
          kind: "ok",
          content: "Partial",
          finishReason: "SAFETY",
          usage: { promptTokenCount: 1000, candidatesTokenCount: 100 },
        }),
      "Gemini's MALFORMED_FUNCTION_CALL finish": () =>
        gemini.script("up-gemini", {
          kind: "ok",
          content: "Partial",
          finishReason: "MALFORMED_FUNCTION_CALL",
          usage: { promptTokenCount: 1000, candidatesTokenCount: 100 },
        }),
    };
    it.each([
      ["Anthropic's refusal", "claude", false, "content_filter"],
      ["Anthropic's refusal", "claude", true, "content_filter"],
      ["Gemini's SAFETY finish", "gemini", false, "content_filter"],
      ["Gemini's SAFETY finish", "gemini", true, "content_filter"],
      ["Gemini's MALFORMED_FUNCTION_CALL finish", "gemini", false, "invalid_response"],
    ] as const)(
      "charges %s (%s, streamed: %s) the usage the provider reported",
      async (name, model, stream, reason) => {
        refusals[name]();
        const job = await run({
          models: [model],
          request: { messages: [{ role: "user", content: "x" }], max_tokens: 50, stream },
        });
        expect(job.status).toBe("failed");
        expect(job.attempts[0]).toMatchObject({ model, reason });
        expect(job.cost_usd).toBeCloseTo(0.0045, 9);
      },
    );
  });

  describe("gemini", () => {
    it("prices cached content at the model's cached input price, streamed or not", async () => {
      for (const stream of [false, true]) {
        gemini.script("up-gemini-cached", {
          kind: "ok",
          content: "4",
          usage: { promptTokenCount: 1000, cachedContentTokenCount: 800, candidatesTokenCount: 10 },
        });
        const job = await run({
          route: "via-gemini-cached",
          request: { messages: [{ role: "user", content: "x" }], max_tokens: 50, stream },
        });
        expect(job.result.usage).toMatchObject({
          prompt_tokens: 1000,
          prompt_tokens_details: { cached_tokens: 800 },
        });
        expect(job.cost_usd).toBeCloseTo((200 * 1.25 + 800 * 0.125 + 10 * 10) / 1e6, 12);
      }
    });

    it("posts to {base_url}/models/{model}:generateContent with the key header and returns a chat.completion", async () => {
      gemini.script("up-gemini", {
        kind: "ok",
        content: "4",
        usage: { promptTokenCount: 12, candidatesTokenCount: 3 },
      });
      const job = await run({
        route: "via-gemini",
        request: {
          messages: [
            { role: "system", content: "Be terse." },
            { role: "user", content: "What is 2+2?" },
          ],
          max_tokens: 50,
        },
      });
      expect(job).toMatchObject({ status: "succeeded", model: "gemini", provider: "gem" });
      expect(job.result).toMatchObject({
        object: "chat.completion",
        model: "gemini",
        choices: [{ index: 0, message: { role: "assistant", content: "4" }, finish_reason: "stop" }],
        usage: { prompt_tokens: 12, completion_tokens: 3 },
      });
      const [call] = gemini.callsFor("up-gemini");
      expect(call?.path).toBe("/v1beta/models/up-gemini:generateContent");
      expect(call?.headers["x-goog-api-key"]).toBe("AIza-test");
      expect(call?.body).toMatchObject({
        generationConfig: { maxOutputTokens: 50 },
        systemInstruction: { parts: [{ text: "Be terse." }] },
        contents: [{ role: "user", parts: [{ text: "What is 2+2?" }] }],
      });
    });

    it("sends Gemini no model turn without parts and no blank function args (each a 400 there)", async () => {
      gemini.script("up-gemini", { kind: "ok", content: "4" });
      const job = await run({
        route: "via-gemini",
        request: {
          max_tokens: 50,
          messages: [
            { role: "user", content: "Hi" },
            { role: "assistant", content: "" },
            { role: "user", content: "add 2 and 2" },
            {
              role: "assistant",
              content: null,
              tool_calls: [{ id: "call_1", type: "function", function: { name: "add", arguments: "" } }],
            },
            { role: "tool", tool_call_id: "call_1", content: "4" },
          ],
          tools: [addTool],
        },
      });
      expect(job.status).toBe("succeeded");
      const body = gemini.callsFor("up-gemini").at(-1)?.body;
      expect(body.contents.map((content: { role: string }) => content.role)).toEqual([
        "user",
        "model",
        "user",
      ]);
      expect(body.contents[0].parts).toEqual([{ text: "Hi" }, { text: "add 2 and 2" }]);
      expect(body.contents[1].parts[0].functionCall).toMatchObject({ name: "add", args: {} });
    });

    it("passes tools and returns tool_calls", async () => {
      gemini.script("up-gemini", { kind: "ok", toolCalls: [{ name: "add", arguments: '{"a":2,"b":2}' }] });
      const job = await run({
        route: "via-gemini",
        request: {
          messages: [{ role: "user", content: "add 2 and 2" }],
          tools: [addTool],
          tool_choice: "required",
        },
      });
      expect(job.result.choices[0]).toMatchObject({
        finish_reason: "tool_calls",
        message: {
          tool_calls: [{ type: "function", function: { name: "add", arguments: '{"a":2,"b":2}' } }],
        },
      });
      const body = gemini.callsFor("up-gemini")[0]?.body;
      expect(body.tools[0].functionDeclarations[0]).toMatchObject({ name: "add" });
      expect(body.toolConfig).toMatchObject({ functionCallingConfig: { mode: "ANY" } });
    });

    it("passes json_schema as a response schema and images downloaded as inline bytes", async () => {
      gemini.script("up-gemini", { kind: "ok", content: '{"a":"cat"}' });
      const localImage = {
        role: "user",
        content: [
          { type: "text", text: "What animal is this?" },
          { type: "image_url", image_url: { url: imageUrl } },
        ],
      };
      const job = await run({
        route: "via-gemini",
        request: { messages: [localImage], response_format: answerFormat },
      });
      expect(job.result.choices[0].message.content).toBe('{"a":"cat"}');
      const body = gemini.callsFor("up-gemini")[0]?.body;
      expect(body.generationConfig).toMatchObject({
        responseMimeType: "application/json",
        responseSchema: { type: "object", required: ["a"] },
      });
      expect(body.contents[0].parts[1]).toEqual({
        inlineData: { mimeType: "image/png", data: png.toString("base64") },
      });
    });

    it("a 400 quoting the request is no key oracle, whatever words it holds (billing words made it an auth failure)", async () => {
      // What a tenant could have sent: pieces of our Gemini key ("AIza-test") beside the words
      // that classify the error as an auth failure; the upstream quotes them back in a 400.
      const quoted = "Your prepayment credits are depleted: AIza-tes Iza-test xAIza-tesx";
      gemini.script("up-gemini", { kind: "status", status: 400, body: geminiError(400, quoted) });
      const job = await run({ models: ["gemini"] });
      expect(job.attempts[0]).toMatchObject({ model: "gemini", outcome: "error", reason: "auth_error" });
      expect(job.attempts[0].message).toContain(quoted);
      expect(job.attempts[0].message).not.toContain("[redacted]");
    });

    it("an image it cannot download is a skipped attempt (nothing went to Gemini), and the chain moves on", async () => {
      const before = gemini.callsFor("up-gemini").length;
      const missing = {
        role: "user",
        content: [
          { type: "text", text: "What animal is this?" },
          { type: "image_url", image_url: { url: imageUrl.replace("cat.png", "gone.png") } },
        ],
      };
      const job = await run({ route: "via-gemini", request: { messages: [missing] } });
      expect(job.attempts[0]).toMatchObject({ model: "gemini", outcome: "skipped", reason: "bad_request" });
      expect(job.attempts[0].message).toContain("could not download image");
      expect(job.attempts[0].http_status).toBeUndefined();
      expect(gemini.callsFor("up-gemini").length).toBe(before);
      // Cut off while its bytes came: the same (it was a breaker failure of Gemini's, invalid_response).
      const cut = {
        role: "user",
        content: [{ type: "image_url", image_url: { url: imageUrl.replace("cat.png", "cut.png") } }],
      };
      const broken = await run({ route: "via-gemini", request: { messages: [cut] } });
      expect(broken.attempts[0]).toMatchObject({
        model: "gemini",
        outcome: "skipped",
        reason: "bad_request",
      });
      expect(broken.attempts[0].message).toMatch(/could not download image .*broke off/);
      expect(gemini.callsFor("up-gemini").length).toBe(before);
    });

    for (const stream of [false, true]) {
      it(`JSON mode with tools on Gemini 2.x: left to the prompt (it 400s on both), kept on Gemini 3 (stream: ${stream})`, async () => {
        const formats = [{ type: "json_object" }, answerFormat];
        for (const response_format of formats) {
          for (const tool_choice of ["auto", "none", "required"]) {
            const request = {
              messages: [{ role: "user", content: "Answer in JSON" }],
              tools: [addTool],
              tool_choice,
              response_format,
              stream,
            };
            gemini.script("gemini-2.5-flash", { kind: "ok", content: '{"a":"older"}' });
            const older = await run({ route: "via-gemini-25", request });
            expect(older.status).toBe("succeeded");
            expect(older.result.choices[0].message.content).toBe('{"a":"older"}');
            const sent = gemini.callsFor("gemini-2.5-flash").at(-1)?.body;
            expect(sent.tools[0].functionDeclarations[0]).toMatchObject({ name: "add" });
            expect(sent.generationConfig?.responseMimeType).toBeUndefined();
            expect(sent.generationConfig?.responseSchema).toBeUndefined();

            gemini.script("gemini-3-flash-preview", { kind: "ok", content: '{"a":"newer"}' });
            const newer = await run({ route: "via-gemini-3", request });
            expect(newer.status).toBe("succeeded");
            const kept = gemini.callsFor("gemini-3-flash-preview").at(-1)?.body;
            expect(kept.tools[0].functionDeclarations[0]).toMatchObject({ name: "add" });
            expect(kept.generationConfig?.responseMimeType).toBe("application/json");
          }
        }
        // Without tools, Gemini 2.x keeps its JSON mode.
        gemini.script("gemini-2.5-flash", { kind: "ok", content: '{"a":"plain"}' });
        await run({
          route: "via-gemini-25",
          request: { messages: [{ role: "user", content: "JSON" }], response_format: answerFormat, stream },
        });
        const plain = gemini.callsFor("gemini-2.5-flash").at(-1)?.body;
        expect(plain.generationConfig).toMatchObject({
          responseMimeType: "application/json",
          responseSchema: { type: "object", required: ["a"] },
        });
      });
    }

    it("waits Gemini's RetryInfo retryDelay before retrying a 429", async () => {
      gemini.script("up-gemini-limited", { kind: "rate_limited", retryAfterSeconds: 1 });
      const job = await run({ route: "gemini-429" });
      expect(job.status).toBe("succeeded");
      expect(job.model).toBe("gemini-limited");
      expect(job.attempts[0]).toMatchObject({ outcome: "error", reason: "rate_limited", http_status: 429 });
      const calls = gemini.callsFor("up-gemini-limited");
      expect(calls).toHaveLength(2);
      expect((calls[1]?.at ?? 0) - (calls[0]?.at ?? 0)).toBeGreaterThanOrEqual(1000);
    });

    const fallbacks: Array<[string, Parameters<FakeGemini["script"]>[1], string, number | undefined]> = [
      ["503 overloaded", { kind: "overloaded" }, "server_error", 503],
      ["500 internal", { kind: "server_error" }, "server_error", 500],
      ["input token count exceeded", { kind: "context_length" }, "context_length", 400],
      [
        "a blocked prompt",
        { kind: "prompt_blocked", blockReason: "PROHIBITED_CONTENT" },
        "content_filter",
        undefined,
      ],
      ["a SAFETY finish", { kind: "ok", finishReason: "SAFETY" }, "content_filter", undefined],
      // The SDK calls these "other"; each is a candidate Gemini did not finish, never a "stop".
      ["a LANGUAGE finish", { kind: "ok", finishReason: "LANGUAGE" }, "content_filter", undefined],
      ["an OTHER finish", { kind: "ok", finishReason: "OTHER" }, "invalid_response", undefined],
      [
        "a MALFORMED_RESPONSE finish",
        { kind: "ok", finishReason: "MALFORMED_RESPONSE" },
        "invalid_response",
        undefined,
      ],
      [
        "a MISSING_THOUGHT_SIGNATURE finish",
        { kind: "ok", finishReason: "MISSING_THOUGHT_SIGNATURE" },
        "invalid_response",
        undefined,
      ],
      [
        "an IMAGE_PROHIBITED_CONTENT finish",
        { kind: "ok", finishReason: "IMAGE_PROHIBITED_CONTENT" },
        "content_filter",
        undefined,
      ],
      // The enum's default names no reason: nothing says the candidate ended, as with no finishReason.
      [
        "a FINISH_REASON_UNSPECIFIED finish",
        { kind: "ok", finishReason: "FINISH_REASON_UNSPECIFIED" },
        "invalid_response",
        undefined,
      ],
      [
        "a finish reason Gemini adds later",
        { kind: "ok", finishReason: "NEW_REASON" },
        "invalid_response",
        undefined,
      ],
      ["a BLOCKLIST finish", { kind: "ok", finishReason: "BLOCKLIST" }, "content_filter", undefined],
      [
        "a PROHIBITED_CONTENT finish",
        { kind: "ok", finishReason: "PROHIBITED_CONTENT" },
        "content_filter",
        undefined,
      ],
      ["an SPII finish", { kind: "ok", finishReason: "SPII" }, "content_filter", undefined],
      ["an IMAGE_SAFETY finish", { kind: "ok", finishReason: "IMAGE_SAFETY" }, "content_filter", undefined],
      [
        "a MALFORMED_FUNCTION_CALL finish",
        { kind: "ok", finishReason: "MALFORMED_FUNCTION_CALL" },
        "invalid_response",
        undefined,
      ],
      [
        "an unsupported location",
        {
          kind: "status",
          status: 400,
          body: {
            error: {
              code: 400,
              message: "User location is not supported for the API use.",
              status: "FAILED_PRECONDITION",
            },
          },
        },
        "bad_request",
        400,
      ],
      [
        "an unknown model",
        {
          kind: "status",
          status: 404,
          body: geminiError(
            404,
            "models/up-gemini is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.",
          ),
        },
        "bad_request",
        404,
      ],
      ["a malformed body", { kind: "malformed" }, "invalid_response", 200],
    ];
    for (const [name, behaviour, reason, status] of fallbacks) {
      it(`falls back on ${name} with reason ${reason}`, async () => {
        gemini.script("up-gemini", behaviour);
        const job = await run({ route: "via-gemini" });
        expect(job.status).toBe("succeeded");
        expect(job.model).toBe("gemini-backup");
        expect(job.attempts[0]).toMatchObject({ model: "gemini", provider: "gem", outcome: "error", reason });
        if (status !== undefined) expect(job.attempts[0].http_status).toBe(status);
      });
    }

    // A streamed answer's last chunk carries the finish reason: the same reasons, the same outcomes.
    const streamedFinishes: Array<[string, string]> = [
      ["FINISH_REASON_UNSPECIFIED", "invalid_response"],
      ["OTHER", "invalid_response"],
      ["NEW_REASON", "invalid_response"],
      ["MALFORMED_FUNCTION_CALL", "invalid_response"],
      ["SAFETY", "content_filter"],
      ["SPII", "content_filter"],
      ["BLOCKLIST", "content_filter"],
    ];
    for (const [finishReason, reason] of streamedFinishes) {
      it(`falls back on a streamed ${finishReason} finish with reason ${reason}`, async () => {
        gemini.script("up-gemini", { kind: "ok", content: "Half an ans", finishReason });
        const job = await run({
          route: "via-gemini",
          request: { messages: [{ role: "user", content: "What is 2+2?" }], max_tokens: 50, stream: true },
        });
        expect(gemini.callsFor("up-gemini")[0]?.path).toMatch(/:streamGenerateContent$/);
        expect(job.status).toBe("succeeded");
        expect(job.model).toBe("gemini-backup");
        expect(job.attempts[0]).toMatchObject({ model: "gemini", outcome: "error", reason });
        expect(job.result.choices[0].finish_reason).toBe("stop");
      });
    }

    it("falls back on an invalid key (a 400 with ErrorInfo API_KEY_INVALID) with reason auth_error", async () => {
      const job = await run({ route: "gemini-bad-key" });
      expect(job.model).toBe("gemini-backup");
      expect(job.attempts[0]).toMatchObject({
        model: "gemini-badkey",
        reason: "auth_error",
        http_status: 400,
      });
    });

    it("turns a later system message into user text instead of failing before the call", async () => {
      await run({
        route: "via-gemini",
        request: {
          messages: [
            { role: "user", content: "Hi" },
            { role: "assistant", content: "Hello" },
            { role: "system", content: "Answer in French." },
            { role: "user", content: "How are you?" },
          ],
        },
      });
      const body = gemini.callsFor("up-gemini")[0]?.body;
      expect(body.contents).toEqual([
        { role: "user", parts: [{ text: "Hi" }] },
        { role: "model", parts: [{ text: "Hello" }] },
        { role: "user", parts: [{ text: "Answer in French." }, { text: "How are you?" }] },
      ]);
    });

    it("answers parallel tool calls in one turn: a functionResponse for each functionCall (Gemini 400s otherwise)", async () => {
      await run({
        route: "via-gemini",
        request: {
          tools: [{ type: "function", function: { name: "weather", parameters: { type: "object" } } }],
          messages: [
            { role: "user", content: "Weather in Paris and Rome?" },
            {
              role: "assistant",
              content: null,
              tool_calls: [
                { id: "c1", type: "function", function: { name: "weather", arguments: '{"city":"Paris"}' } },
                { id: "c2", type: "function", function: { name: "weather", arguments: '{"city":"Rome"}' } },
              ],
            },
            { role: "tool", tool_call_id: "c1", content: "20C" },
            { role: "tool", tool_call_id: "c2", content: [{ type: "text", text: "25C" }] },
            { role: "user", content: "Which is warmer?" },
          ],
        },
      });
      const contents = gemini.callsFor("up-gemini")[0]?.body.contents as Array<{
        role: string;
        parts: Array<Record<string, unknown>>;
      }>;
      // Function responses are a user turn, so the question after them joins it: the responses
      // first, then the text (Gemini wants turns to alternate).
      expect(contents.map((turn) => turn.role)).toEqual(["user", "model", "user"]);
      expect(contents[1]?.parts.filter((part) => part.functionCall)).toHaveLength(2);
      const answers = contents[2]?.parts ?? [];
      expect(answers).toHaveLength(3);
      expect(answers.slice(0, 2).map((part) => (part.functionResponse as { name: string }).name)).toEqual([
        "weather",
        "weather",
      ]);
      expect(answers[2]).toEqual({ text: "Which is warmer?" });
    });

    for (const stream of [false, true])
      it(`sends a tool result and the user text after it as one user turn, and alternates every turn (stream: ${stream})`, async () => {
        gemini.script("up-gemini", { kind: "ok", content: "Take a coat." });
        const job = await run({
          route: "via-gemini",
          request: {
            stream,
            tools: [{ type: "function", function: { name: "weather", parameters: { type: "object" } } }],
            messages: [
              { role: "user", content: "Hi" },
              { role: "user", content: "Weather in Paris?" },
              {
                role: "assistant",
                content: null,
                tool_calls: [
                  {
                    id: "c1",
                    type: "function",
                    function: { name: "weather", arguments: '{"city":"Paris"}' },
                  },
                ],
              },
              { role: "tool", tool_call_id: "c1", content: "8C, rain" },
              { role: "user", content: "Do I need a coat?" },
              { role: "assistant", content: "Yes." },
              { role: "assistant", content: "And an umbrella." },
              { role: "user", content: "Thanks" },
            ],
          },
        });
        expect(job.status).toBe("succeeded");
        expect(job.model).toBe("gemini");
        const contents = gemini.callsFor("up-gemini")[0]?.body.contents as Array<{
          role: string;
          parts: Array<Record<string, unknown>>;
        }>;
        expect(contents.map((turn) => turn.role)).toEqual(["user", "model", "user", "model", "user"]);
        expect(contents[0]?.parts).toEqual([{ text: "Hi" }, { text: "Weather in Paris?" }]);
        expect(contents[2]?.parts).toEqual([
          { functionResponse: expect.objectContaining({ name: "weather" }) },
          { text: "Do I need a coat?" },
        ]);
        expect(contents[3]?.parts).toEqual([{ text: "Yes." }, { text: "And an umbrella." }]);
        expect(contents[4]?.parts).toEqual([{ text: "Thanks" }]);
        expect(gemini.callsFor("up-gemini")[0]?.path).toMatch(
          stream ? /:streamGenerateContent$/ : /:generateContent$/,
        );
      });

    it("fails the job at once on the caller's bad request", async () => {
      gemini.script("up-gemini", {
        kind: "bad_request",
        message:
          "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field.",
      });
      const job = await run({ route: "via-gemini" });
      expect(job.status).toBe("failed");
      expect(job.error.type).toBe("bad_request");
      expect(gemini.callsFor("up-gemini-backup")).toHaveLength(0);
    });
  });
});
