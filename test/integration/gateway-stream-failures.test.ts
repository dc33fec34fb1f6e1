/**
 * "Streams never lie" (contract, "Gateway"): an upstream stream that is cut, stalls past
 * idle_timeout_ms, ends without a finish reason or carries a malformed chunk, after the caller
 * already has tokens, ends in one whole answer (a prefill hop continues exactly what was sent) or
 * in one clean error event naming the original failure, never a truncated success. Also:
 * `on_stream_failure: error`, `stream_hold_ms` hiding an early failure, a failure before any token
 * as an ordinary HTTP error, and the same cut stream as a job (a restart, no continuation).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeBehaviour, type FakeOpenAI, openAIError, startFakeOpenAI } from "../support/fake-openai.js";
import { readEvents } from "../support/sse-client.js";

/** a's answer; every broken scenario below delivers exactly its first two pieces, PARTIAL. */
const A_TEXT = "Half of it never ends";
const PARTIAL = "Half of";
const CONTINUATION = " the answer.";
const B_WHOLE = "A fresh answer from b.";

let fake: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up-stream-key" });
  const model = (name: string, capabilities: string[] = []) => ({ provider: "up", name, capabilities });
  const first = { model: "a", idle_timeout_ms: 300, timeout_ms: 10_000 };
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up-stream-key" },
    config: {
      providers: {
        // Breakers stay shut: every test here fails the same provider on purpose.
        up: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY", breaker: { min_requests: 1000 } },
        // A pool's two deployments: the same fake and upstream name, told apart by a header.
        east: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY", headers: { "x-dep": "east" } },
        west: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY", headers: { "x-dep": "west" } },
      },
      models: {
        a: model("up-a"),
        b: model("up-b", ["prefill"]),
        c: model("up-c"),
        pool: {
          capabilities: ["prefill"],
          deployments: [
            { id: "east", provider: "east", name: "up-pool" },
            { id: "west", provider: "west", name: "up-pool" },
          ],
        },
        plain_pool: {
          deployments: [
            { id: "east", provider: "east", name: "up-plain-pool" },
            { id: "west", provider: "west", name: "up-plain-pool" },
          ],
        },
      },
      routes: {
        default: { chain: [first, { model: "b" }] },
        no_prefill: { chain: [first, { model: "c" }] },
        strict: { on_stream_failure: "error", chain: [first, { model: "b" }] },
        hold: { stream_hold_ms: 500, chain: [first, { model: "b" }] },
        pooled: { chain: [{ model: "pool", idle_timeout_ms: 300, timeout_ms: 10_000 }, { model: "c" }] },
        plain_pooled: { chain: [{ model: "plain_pool", idle_timeout_ms: 300 }, { model: "b" }] },
      },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});
beforeEach(() => fake.reset());

/** The ways a's stream breaks after sending PARTIAL, and the reason each one is. */
const BROKEN: Array<{ name: string; behaviour: FakeBehaviour; reason: string }> = [
  {
    name: "cut mid-stream",
    behaviour: { kind: "stream_cut", afterChunks: 3, content: A_TEXT },
    reason: "network_error",
  },
  { name: "stalled", behaviour: { kind: "stall", afterChunks: 3, content: A_TEXT }, reason: "timeout" },
  { name: "no finish reason", behaviour: { kind: "no_finish", content: PARTIAL }, reason: "network_error" },
  {
    name: "malformed chunk",
    behaviour: { kind: "malformed_chunk", afterChunks: 3, content: A_TEXT },
    reason: "invalid_response",
  },
];

// biome-ignore lint/suspicious/noExplicitAny: chunks are whatever JSON the gateway sent.
type Chunk = any;

/** A streamed gateway request read whole: every `data:` payload, parsed. */
async function streamRoute(route: string, extra: Record<string, unknown> = {}) {
  const response = await fetch(`${stack.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: route,
      messages: [{ role: "user", content: "Go on" }],
      stream: true,
      ...extra,
    }),
  });
  const text = await response.text();
  const payloads = text
    .split("\n\n")
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice("data: ".length));
  const parsed: Chunk[] = payloads.filter((data) => data !== "[DONE]").map((data) => JSON.parse(data));
  const chunks = parsed.filter((data) => data.object === "chat.completion.chunk");
  return {
    status: response.status,
    headers: response.headers,
    text,
    payloads,
    chunks,
    errors: parsed.filter((data) => data.error !== undefined),
    done: payloads.at(-1) === "[DONE]",
    content: chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join(""),
  };
}

/** The text each model produced, in order: [["a", "Half of"], ["b", " the answer."]]. */
function textByModel(chunks: Chunk[]): Array<[string, string]> {
  const runs: Array<[string, string]> = [];
  for (const chunk of chunks) {
    const content = chunk.choices[0]?.delta?.content;
    if (!content) continue;
    const last = runs.at(-1);
    if (last && last[0] === chunk.model) last[1] += content;
    else runs.push([chunk.model, content]);
  }
  return runs;
}

const lastMessage = (model: string) => fake.callsFor(model)[0]?.body.messages.at(-1);

describe("a stream that breaks after the caller has tokens (on_stream_failure: continue)", () => {
  it.each(BROKEN)(
    "$name: a prefill hop continues exactly what was sent, ending [DONE]",
    async ({ behaviour }) => {
      fake.script("up-a", behaviour);
      fake.script("up-b", { kind: "ok", content: CONTINUATION });
      const answer = await streamRoute("default");
      expect(answer.status).toBe(200);
      expect(answer.errors).toEqual([]);
      expect(answer.done).toBe(true);
      expect(answer.content).toBe(PARTIAL + CONTINUATION);
      expect(textByModel(answer.chunks)).toEqual([
        ["a", PARTIAL],
        ["b", CONTINUATION],
      ]);
      expect(answer.chunks.at(-1)).toMatchObject({ model: "b", choices: [{ finish_reason: "stop" }] });
      expect(lastMessage("up-b")).toEqual({ role: "assistant", content: PARTIAL });
    },
  );

  it.each(BROKEN)(
    "$name: with no prefill hop left, one error event with the original reason, no [DONE]",
    async ({ behaviour, reason }) => {
      fake.script("up-a", behaviour);
      const answer = await streamRoute("no_prefill");
      expect(answer.status).toBe(200);
      expect(answer.content).toBe(PARTIAL);
      expect(answer.done).toBe(false);
      expect(answer.errors).toHaveLength(1);
      expect(answer.payloads.at(-1)).toBe(JSON.stringify(answer.errors[0]));
      expect(answer.errors[0].error).toMatchObject({ code: reason });
      expect(fake.callsFor("up-c")).toHaveLength(0);
    },
  );

  it("the usage chunk of a continued answer counts every call it took, the broken one too", async () => {
    // a is cut after PARTIAL ("Half of": 2 tokens at 4 characters a token, as charged); b reports
    // its own usage. The caller reconciling tokens from the usage chunk must see both calls.
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: A_TEXT });
    fake.script("up-b", {
      kind: "ok",
      content: CONTINUATION,
      usage: { prompt_tokens: 40, completion_tokens: 3 },
    });
    const answer = await streamRoute("default", { stream_options: { include_usage: true } });
    expect(answer.done).toBe(true);
    expect(answer.content).toBe(PARTIAL + CONTINUATION);
    const usage = answer.chunks.at(-1).usage;
    expect(usage.completion_tokens).toBe(2 + 3);
    // a's prompt, as Cascade estimated and charged it, plus b's 40 (its prompt held the prefill).
    expect(usage.prompt_tokens).toBeGreaterThan(40);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
  });

  it("a break after only whitespace was shown: the next prefill hop answers afresh, with no empty prefill", async () => {
    // Anthropic refuses an empty text block, and its SDK trims a prefill's trailing whitespace.
    fake.script("up-a", { kind: "stream_cut", afterChunks: 2, content: "\n\n" });
    fake.script("up-b", { kind: "ok", content: B_WHOLE });
    const answer = await streamRoute("default");
    expect(answer.errors).toEqual([]);
    expect(answer.done).toBe(true);
    expect(answer.content).toBe(`\n\n${B_WHOLE}`);
    expect(lastMessage("up-b")).toEqual({ role: "user", content: "Go on" });
  });

  it("the error is the original failure even when a prefill hop tried and failed too", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: A_TEXT });
    fake.script("up-b", { kind: "server_error" });
    const answer = await streamRoute("default");
    expect(answer.done).toBe(false);
    expect(answer.errors).toHaveLength(1);
    expect(answer.errors[0].error.code).toBe("network_error");
    expect(fake.callsFor("up-b")).toHaveLength(1);
  });

  it("a prefill hop that rejects the continuation with a 400: the error names the original failure", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: A_TEXT });
    const rejection = openAIError("assistant prefill is not supported", "invalid_request_error", null, null);
    fake.script("up-b", { kind: "status", status: 400, body: rejection });
    const answer = await streamRoute("default");
    expect(answer.content).toBe(PARTIAL);
    expect(answer.done).toBe(false);
    expect(answer.errors).toHaveLength(1);
    expect(answer.errors[0].error.code).toBe("network_error");
    expect(answer.errors[0].error.code).not.toBe("bad_request");
    expect(lastMessage("up-b")).toEqual({ role: "assistant", content: PARTIAL });
  });
});

describe("a pooled model's stream that breaks after the caller has tokens", () => {
  it.each(BROKEN)(
    "$name: its other deployment continues it (a pool tries its deployments before the chain moves on)",
    async ({ behaviour }) => {
      fake.script("up-pool", behaviour, { kind: "ok", content: CONTINUATION });
      const answer = await streamRoute("pooled");
      expect(answer.errors).toEqual([]);
      expect(answer.done).toBe(true);
      expect(answer.content).toBe(PARTIAL + CONTINUATION);
      const calls = fake.callsFor("up-pool");
      expect(calls).toHaveLength(2);
      const [broken, continuing] = calls.map((call) => call.headers["x-dep"]);
      expect(new Set([broken, continuing])).toEqual(new Set(["east", "west"]));
      expect(calls[1]?.body.messages.at(-1)).toEqual({ role: "assistant", content: PARTIAL });
      expect(fake.callsFor("up-c")).toHaveLength(0);
    },
  );

  it("without prefill its other deployment is not asked: the next prefill hop continues", async () => {
    fake.script("up-plain-pool", { kind: "stream_cut", afterChunks: 3, content: A_TEXT });
    fake.script("up-b", { kind: "ok", content: CONTINUATION });
    const answer = await streamRoute("plain_pooled");
    expect(answer.done).toBe(true);
    expect(textByModel(answer.chunks)).toEqual([
      ["plain_pool", PARTIAL],
      ["b", CONTINUATION],
    ]);
    expect(fake.callsFor("up-plain-pool")).toHaveLength(1);
  });
});

describe("on_stream_failure: error", () => {
  it("ends the stream with the error at once, and the next hop is not called", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: A_TEXT });
    const answer = await streamRoute("strict");
    expect(answer.content).toBe(PARTIAL);
    expect(answer.done).toBe(false);
    expect(answer.errors).toHaveLength(1);
    expect(answer.errors[0].error.code).toBe("network_error");
    expect(fake.callsFor("up-b")).toHaveLength(0);
  });

  it("scrubs the provider key an upstream's mid-stream error echoes from the error the caller gets", async () => {
    fake.script("up-a", {
      kind: "error_event",
      afterChunks: 3,
      content: A_TEXT,
      error: {
        message: "proxy: upstream refused Authorization: Bearer sk-up-stream-key",
        type: "server_error",
      },
    });
    const answer = await streamRoute("strict");
    expect(answer.errors).toHaveLength(1);
    expect(answer.text).not.toContain("sk-up-stream-key");
    expect(answer.errors[0].error.message).toContain("Bearer [redacted]");
  });
});

describe("stream_hold_ms", () => {
  it("an early failure within the hold restarts unseen: only b's answer, [DONE], status 200", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 2, content: A_TEXT });
    fake.script("up-b", { kind: "ok", content: B_WHOLE });
    const answer = await streamRoute("hold");
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cascade-model")).toBe("b");
    expect(answer.done).toBe(true);
    expect(answer.content).toBe(B_WHOLE);
    expect(answer.chunks.every((chunk: Chunk) => chunk.model === "b")).toBe(true);
    expect(answer.text).not.toContain("Half");
    expect(lastMessage("up-b")?.role).toBe("user");
  });

  it("a failure after the hold has passed was seen: it continues like any other", async () => {
    fake.script("up-a", { kind: "stall", afterChunks: 4, content: "one two three four", chunkDelayMs: 250 });
    fake.script("up-b", { kind: "ok", content: " four." });
    const answer = await streamRoute("hold");
    expect(answer.done).toBe(true);
    expect(textByModel(answer.chunks)).toEqual([
      ["a", "one two three"],
      ["b", " four."],
    ]);
    expect(lastMessage("up-b")).toEqual({ role: "assistant", content: "one two three" });
  });

  it("without a hold the same failure was seen: a's text first, then the continuation", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 2, content: A_TEXT });
    fake.script("up-b", { kind: "ok", content: CONTINUATION });
    const answer = await streamRoute("default");
    expect(answer.done).toBe(true);
    expect(textByModel(answer.chunks)).toEqual([
      ["a", "Half"],
      ["b", CONTINUATION],
    ]);
    expect(lastMessage("up-b")).toEqual({ role: "assistant", content: "Half" });
  });
});

describe("failures before any token, and jobs", () => {
  it("every hop failing before a token is an ordinary 502 in OpenAI's error shape, not a stream", async () => {
    fake.script("up-a", { kind: "server_error" });
    fake.script("up-b", { kind: "server_error" });
    const answer = await streamRoute("default");
    expect(answer.status).toBe(502);
    expect(answer.headers.get("content-type")).toMatch(/^application\/json/);
    expect(JSON.parse(answer.text)).toEqual({
      error: { type: "api_error", code: "all_models_failed", message: expect.any(String), param: null },
    });
  });

  it("a job with the same cut stream restarts on b (no continuation) and succeeds with b's whole answer", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: A_TEXT });
    fake.script("up-b", { kind: "ok", content: B_WHOLE });
    const request = { messages: [{ role: "user", content: "Go on" }], stream: true };
    const created = await stack.request("POST", "/v1/jobs", { body: { route: "default", request } });
    expect(created.status).toBe(202);
    const { events } = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, {
      timeoutMs: 10_000,
    });
    const restarts = events.filter((event) => event.event === "restart").map((event) => event.data);
    expect(restarts).toEqual([{ hop: 0, reason: "network_error" }]);
    const done = events.at(-1);
    expect(done?.event).toBe("done");
    expect(done?.data).toMatchObject({ status: "succeeded", model: "b" });
    expect(done?.data.result.choices[0].message.content).toBe(B_WHOLE);
    expect(lastMessage("up-b")?.role).toBe("user");
  });
});
