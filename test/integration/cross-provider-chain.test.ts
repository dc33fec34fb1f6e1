import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeGemini, startFakeGemini } from "../support/fake-gemini.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import { readEvents } from "../support/sse-client.js";

/**
 * One chain across the three wire formats (OpenAI → Anthropic → Gemini): whatever hop answers,
 * the caller gets the same OpenAI-shaped result, and a stream cut on one hop restarts on the next.
 */
describe("a fallback chain across OpenAI, Anthropic and Gemini", () => {
  let openai: FakeOpenAI;
  let anthropic: FakeAnthropic;
  let gemini: FakeGemini;
  let stack: Stack;

  beforeAll(async () => {
    [openai, anthropic, gemini] = await Promise.all([
      startFakeOpenAI({ apiKey: "sk-o" }),
      startFakeAnthropic({ apiKey: "sk-a" }),
      startFakeGemini({ apiKey: "g-key" }),
    ]);
    const capabilities = ["tools", "json", "vision"];
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      env: { O_KEY: "sk-o", A_KEY: "sk-a", G_KEY: "g-key" },
      config: {
        providers: {
          oa: { type: "openai", base_url: openai.url, api_key_env: "O_KEY" },
          an: { type: "anthropic", base_url: anthropic.url, api_key_env: "A_KEY" },
          ge: { type: "gemini", base_url: gemini.url, api_key_env: "G_KEY" },
        },
        models: {
          gpt: { provider: "oa", name: "up-gpt", capabilities },
          claude: { provider: "an", name: "up-claude", capabilities },
          flash: { provider: "ge", name: "up-flash", capabilities },
        },
        routes: { default: { chain: [{ model: "gpt" }, { model: "claude" }, { model: "flash" }] } },
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

  async function run(request: Record<string, unknown>) {
    const created = await stack.request("POST", "/v1/jobs", { body: { request } });
    expect(created.status).toBe(202);
    return {
      id: created.body.id as string,
      job: async () => (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`)).body,
    };
  }
  const question = [{ role: "user", content: "Name a colour." }];

  it("plain text: falls through OpenAI and Anthropic to Gemini", async () => {
    openai.script("up-gpt", { kind: "server_error" });
    anthropic.script("up-claude", { kind: "overloaded" });
    gemini.script("up-flash", { kind: "ok", content: "Blue." });
    const job = await (await run({ messages: question, max_tokens: 20 })).job();
    expect(
      job.attempts.map((attempt: { model: string; reason?: string }) => [
        attempt.model,
        attempt.reason ?? "ok",
      ]),
    ).toEqual([
      ["gpt", "server_error"],
      ["claude", "server_error"],
      ["flash", "ok"],
    ]);
    expect(job.result).toMatchObject({
      object: "chat.completion",
      model: "flash",
      choices: [{ message: { role: "assistant", content: "Blue." }, finish_reason: "stop" }],
    });
    expect(job.result.usage.total_tokens).toBeGreaterThan(0);
  });

  it("tools: Anthropic's tool_use comes back as OpenAI tool_calls", async () => {
    openai.script("up-gpt", { kind: "server_error" });
    anthropic.script("up-claude", {
      kind: "ok",
      toolCalls: [{ name: "paint", arguments: '{"colour":"blue"}' }],
    });
    const job = await (
      await run({
        messages: question,
        max_tokens: 50,
        tools: [
          {
            type: "function",
            function: {
              name: "paint",
              parameters: { type: "object", properties: { colour: { type: "string" } } },
            },
          },
        ],
        tool_choice: { type: "function", function: { name: "paint" } },
      })
    ).job();
    expect(job.model).toBe("claude");
    expect(job.result.choices[0]).toMatchObject({
      finish_reason: "tool_calls",
      message: {
        tool_calls: [{ type: "function", function: { name: "paint", arguments: '{"colour":"blue"}' } }],
      },
    });
    expect(anthropic.callsFor("up-claude")[0]?.body.tool_choice).toMatchObject({
      type: "tool",
      name: "paint",
    });
  });

  it("JSON schema: Gemini answers with JSON under a response schema", async () => {
    openai.script("up-gpt", { kind: "server_error" });
    anthropic.script("up-claude", { kind: "overloaded" });
    gemini.script("up-flash", { kind: "ok", content: '{"colour":"blue"}' });
    const schema = { type: "object", properties: { colour: { type: "string" } }, required: ["colour"] };
    const job = await (
      await run({
        messages: question,
        max_tokens: 50,
        response_format: { type: "json_schema", json_schema: { name: "pick", schema } },
      })
    ).job();
    expect(JSON.parse(job.result.choices[0].message.content)).toEqual({ colour: "blue" });
    expect(gemini.callsFor("up-flash")[0]?.body.generationConfig).toMatchObject({
      responseMimeType: "application/json",
    });
  });

  it("image: the URL reaches Anthropic as an image source after OpenAI fails", async () => {
    openai.script("up-gpt", { kind: "server_error" });
    const job = await (
      await run({
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "What colour is this?" },
              { type: "image_url", image_url: { url: "https://example.com/blue.png" } },
            ],
          },
        ],
        max_tokens: 20,
      })
    ).job();
    expect(job.model).toBe("claude");
    expect(openai.callsFor("up-gpt")[0]?.body.messages[0].content[1]).toMatchObject({
      type: "image_url",
      image_url: { url: "https://example.com/blue.png" },
    });
    const content = anthropic.callsFor("up-claude")[0]?.body.messages[0].content;
    expect(content[1]).toMatchObject({
      type: "image",
      source: { type: "url", url: "https://example.com/blue.png" },
    });
  });

  it("stream: a cut on OpenAI and an error event on Anthropic restart the output; Gemini finishes it", async () => {
    openai.script("up-gpt", { kind: "stream_cut", afterChunks: 3, content: "Reddish orange and more words" });
    anthropic.script("up-claude", {
      kind: "stream_error",
      afterChunks: 4,
      content: "Green, like grass in spring",
    });
    gemini.script("up-flash", { kind: "ok", content: "Blue as the sky.", chunkDelayMs: 5 });
    const submitted = await run({ messages: question, max_tokens: 50, stream: true });
    const { events } = await readEvents(`${stack.url}/v1/jobs/${submitted.id}/events`, { timeoutMs: 20_000 });
    const kinds = events.map((event) => event.event);
    expect(kinds[0]).toBe("status");
    expect(kinds.at(-1)).toBe("done");
    const restarts = events.filter((event) => event.event === "restart").map((event) => event.data);
    expect(restarts).toEqual([
      { hop: 0, reason: "network_error" },
      { hop: 1, reason: "server_error" },
    ]);
    // What a reader keeps: the deltas after the last restart.
    const lastRestart = kinds.lastIndexOf("restart");
    const kept = events
      .slice(lastRestart + 1)
      .filter((event) => event.event === "delta")
      .map((event) => event.data.content ?? "")
      .join("");
    expect(kept).toBe("Blue as the sky.");
    const deltaHops = new Set(
      events.filter((event) => event.event === "delta").map((event) => event.data.hop),
    );
    expect(deltaHops).toEqual(new Set([0, 1, 2]));
    const done = events.at(-1)?.data;
    expect(done).toMatchObject({ status: "succeeded", model: "flash" });
    expect(done.result.choices[0].message.content).toBe("Blue as the sky.");
    expect(done.attempts.map((attempt: { reason?: string }) => attempt.reason ?? "ok")).toEqual([
      "network_error",
      "server_error",
      "ok",
    ]);
    // Replay from the start gives the same events.
    const replay = await readEvents(`${stack.url}/v1/jobs/${submitted.id}/events`, { timeoutMs: 5_000 });
    expect(replay.events.map((event) => event.id)).toEqual(events.map((event) => event.id));
    // Resuming mid-way gives only what came after.
    const middle = events[Math.floor(events.length / 2)]?.id as string;
    const resumed = await readEvents(`${stack.url}/v1/jobs/${submitted.id}/events`, {
      headers: { "last-event-id": middle },
      timeoutMs: 5_000,
    });
    expect(resumed.events.map((event) => event.id)).toEqual(
      events.slice(Math.floor(events.length / 2) + 1).map((event) => event.id),
    );
  });
});
