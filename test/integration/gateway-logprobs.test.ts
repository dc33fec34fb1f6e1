/**
 * OpenAI parity of the gateway (and of jobs, which run the same engine) for two things a caller
 * of OpenAI's API reads back, driven by the official `openai` SDK against fake upstreams that
 * speak OpenAI's and Anthropic's wire formats:
 * - `logprobs` / `top_logprobs`: sent to a provider that takes OpenAI's fields, and its
 *   `choices[0].logprobs` returned unchanged (`{content, refusal}` entries with `token`,
 *   `logprob`, `bytes`, `top_logprobs`), whole when not streamed and chunk by chunk when streamed;
 *   `null` from any hop that cannot give them (Anthropic, `openai_fields: drop`), a fallback or a
 *   continued stream included (ADR 0017, revision of 2026-12-05). Streamed, every entry the
 *   upstream sent reaches the caller, those that came in a chunk without text too.
 * - `top_logprobs` without `logprobs: true`: a 400 naming `top_logprobs`, as OpenAI answers, at
 *   the gateway and at the jobs door, before any upstream call.
 * - an upstream 400's `error.param`, carried to the gateway's 400 `bad_request`; a job's error
 *   object has no `param` in the contract and gets none.
 */
import OpenAI, { APIError } from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.js";
import { type FakeOpenAI, openAIError, startFakeOpenAI, tokenLogprobs } from "../support/fake-openai.js";
import { splitText } from "../support/fake-upstream-common.js";
import { readEvents } from "../support/sse-client.js";

const KEY = "sk-logprobs-tenant";
let fake: FakeOpenAI;
let anthropic: FakeAnthropic;
let stack: Stack;

beforeAll(async () => {
  [fake, anthropic] = await Promise.all([
    startFakeOpenAI({ apiKey: "sk-up" }),
    startFakeAnthropic({ apiKey: "sk-ant" }),
  ]);
  const openai = (openai_fields: "forward" | "drop") => ({
    type: "openai",
    base_url: fake.url,
    api_key_env: "UP_KEY",
    openai_fields,
    // Breakers stay shut: tests fail these providers on purpose.
    breaker: { min_requests: 1000 },
  });
  const model = (provider: string, name: string, capabilities: string[] = []) => ({
    provider,
    name,
    capabilities,
  });
  const first = { model: "a", idle_timeout_ms: 300, timeout_ms: 10_000 };
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", ANT_KEY: "sk-ant", LP_KEYS: KEY },
    config: {
      providers: {
        fwd: openai("forward"),
        drop: openai("drop"),
        ant: { type: "anthropic", base_url: anthropic.url, api_key_env: "ANT_KEY" },
      },
      models: {
        a: model("fwd", "up-a"),
        p: model("fwd", "up-p", ["prefill"]),
        d: model("drop", "up-d"),
        c: model("ant", "claude-up", ["prefill"]),
      },
      routes: {
        default: { chain: [first] },
        dropped: { chain: [{ model: "d" }] },
        to_anthropic: { chain: [first, { model: "c" }] },
        resumable: { on_stream_failure: "continue", chain: [first, { model: "p" }] },
        resumable_anthropic: { on_stream_failure: "continue", chain: [first, { model: "c" }] },
        hold: { stream_hold_ms: 2000, chain: [first, { model: "p" }] },
        strict_bad: { on_bad_request: "fail", chain: [{ model: "a" }, { model: "p" }] },
      },
      tenants: { acme: { api_keys_env: "LP_KEYS" } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await Promise.all([fake?.close(), anthropic?.close()]);
});
beforeEach(() => {
  fake.reset();
  anthropic.reset();
});

const client = () => new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: KEY, maxRetries: 0 });
const TEXT = "Cats purr when content, über-happy.";
const hello = { messages: [{ role: "user" as const, content: "Say hi" }], max_tokens: 50 };
type Params = { model: string; logprobs?: boolean; top_logprobs?: number };

/** What OpenAI answers for TEXT, asked with `top` alternatives. */
const expected = (text: string, top: number) => ({
  content: tokenLogprobs(splitText(text), top),
  refusal: null,
});

async function streamed(params: Params) {
  const stream = await client().chat.completions.create({ ...hello, ...params, stream: true });
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}
const textOf = (chunks: ChatCompletionChunk[]) =>
  chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("");
/** Every content entry of the chunks' logprobs, in order. */
const streamedEntries = (chunks: ChatCompletionChunk[]) =>
  chunks.flatMap((chunk) => chunk.choices[0]?.logprobs?.content ?? []);

describe("logprobs, not streamed", () => {
  it("sends logprobs and top_logprobs to a provider that takes OpenAI's fields and returns its logprobs unchanged", async () => {
    fake.script("up-a", { kind: "ok", content: TEXT });
    const answer = await client().chat.completions.create({
      ...hello,
      model: "a",
      logprobs: true,
      top_logprobs: 2,
    });
    expect(answer.choices[0]?.message.content).toBe(TEXT);
    expect(answer.choices[0]?.logprobs).toEqual(expected(TEXT, 2));
    expect(answer.choices[0]?.logprobs?.content?.[0]).toEqual({
      token: "Cats",
      logprob: expect.any(Number),
      bytes: [67, 97, 116, 115],
      top_logprobs: [
        { token: "Cats", logprob: expect.any(Number), bytes: [67, 97, 116, 115] },
        expect.objectContaining({ token: "Cats~1" }),
      ],
    });
    const sent = fake.callsFor("up-a")[0]?.body;
    expect(sent).toMatchObject({ logprobs: true, top_logprobs: 2 });
  });

  it("answers logprobs: null, and sends nothing, when they were not asked for", async () => {
    fake.script("up-a", { kind: "ok", content: TEXT });
    const answer = await client().chat.completions.create({ ...hello, model: "a" });
    expect(answer.choices[0]?.logprobs).toBeNull();
    expect(fake.callsFor("up-a")[0]?.body).not.toHaveProperty("logprobs");
    expect(fake.callsFor("up-a")[0]?.body).not.toHaveProperty("top_logprobs");
  });

  it("answers logprobs: null from a provider with openai_fields: drop, which is not asked for them", async () => {
    fake.script("up-d", { kind: "ok", content: TEXT });
    const answer = await client().chat.completions.create({ ...hello, model: "dropped", logprobs: true });
    expect(answer.choices[0]?.message.content).toBe(TEXT);
    expect(answer.choices[0]?.logprobs).toBeNull();
    expect(fake.callsFor("up-d")[0]?.body).not.toHaveProperty("logprobs");
  });

  it("answers logprobs: null when the chain falls back to Anthropic, which has none", async () => {
    fake.script("up-a", { kind: "server_error" });
    anthropic.script("claude-up", { kind: "ok", content: TEXT });
    const answer = await client()
      .chat.completions.create({ ...hello, model: "to_anthropic", logprobs: true, top_logprobs: 1 })
      .withResponse();
    expect(answer.response.headers.get("x-cascade-model")).toBe("c");
    expect(answer.data.choices[0]?.message.content).toBe(TEXT);
    expect(answer.data.choices[0]?.logprobs).toBeNull();
  });
});

describe("logprobs, streamed", () => {
  it("passes each chunk's logprobs on with its content, as the upstream sent them", async () => {
    fake.script("up-a", { kind: "ok", content: TEXT });
    const chunks = await streamed({ model: "a", logprobs: true, top_logprobs: 2 });
    expect(textOf(chunks)).toBe(TEXT);
    const pieces = splitText(TEXT);
    const content = chunks.filter((chunk) => chunk.choices[0]?.delta.content);
    expect(content).toHaveLength(pieces.length);
    content.forEach((chunk, position) => {
      expect(chunk.choices[0]?.logprobs).toEqual({
        content: tokenLogprobs([pieces[position] ?? ""], 2, position),
        refusal: null,
      });
    });
    // The finish chunk carries none, as OpenAI's.
    expect(chunks.at(-1)?.choices[0]).toMatchObject({ finish_reason: "stop", logprobs: null });
    expect(fake.callsFor("up-a")[0]?.body).toMatchObject({ logprobs: true, top_logprobs: 2, stream: true });
  });

  it("leaves every chunk's logprobs null when not asked for", async () => {
    fake.script("up-a", { kind: "ok", content: TEXT });
    const chunks = await streamed({ model: "a" });
    expect(textOf(chunks)).toBe(TEXT);
    for (const chunk of chunks) expect(chunk.choices[0]?.logprobs).toBeNull();
  });

  it("leaves them null from a provider with openai_fields: drop", async () => {
    fake.script("up-d", { kind: "ok", content: TEXT });
    const chunks = await streamed({ model: "dropped", logprobs: true });
    expect(textOf(chunks)).toBe(TEXT);
    for (const chunk of chunks) expect(chunk.choices[0]?.logprobs).toBeNull();
    expect(fake.callsFor("up-d")[0]?.body).not.toHaveProperty("logprobs");
  });

  it("continues a cut stream on a prefill hop with its logprobs, each chunk's its own hop's", async () => {
    const partial = splitText(TEXT).slice(0, 2).join("");
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: TEXT });
    fake.script("up-p", { kind: "ok", content: " and more." });
    const chunks = await streamed({ model: "resumable", logprobs: true, top_logprobs: 1 });
    expect(textOf(chunks)).toBe(`${partial} and more.`);
    expect(streamedEntries(chunks)).toEqual([
      ...tokenLogprobs(splitText(partial), 1),
      ...tokenLogprobs(splitText(" and more."), 1),
    ]);
    expect(fake.callsFor("up-p")[0]?.body).toMatchObject({ logprobs: true, top_logprobs: 1 });
  });

  it("continues on Anthropic with null logprobs after the first hop's, every chunk still OpenAI's shape", async () => {
    const partial = splitText(TEXT).slice(0, 2).join("");
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: TEXT });
    anthropic.script("claude-up", { kind: "ok", content: " and more." });
    const chunks = await streamed({ model: "resumable_anthropic", logprobs: true });
    expect(textOf(chunks)).toBe(`${partial} and more.`);
    const withText = chunks.filter((chunk) => chunk.choices[0]?.delta.content);
    const shownByA = splitText(partial).length;
    withText.forEach((chunk, position) => {
      const logprobs = chunk.choices[0]?.logprobs;
      if (position < shownByA) expect(logprobs?.content).toHaveLength(1);
      else expect(logprobs).toBeNull();
    });
  });

  it("drops what stream_hold_ms held back of a failed hop, its logprobs with it", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: "Never shown at all" });
    fake.script("up-p", { kind: "ok", content: TEXT });
    const chunks = await streamed({ model: "hold", logprobs: true, top_logprobs: 1 });
    expect(textOf(chunks)).toBe(TEXT);
    expect(streamedEntries(chunks)).toEqual(expected(TEXT, 1).content);
  });
});

describe("logprobs sent in a chunk without text, streamed", () => {
  const TAIL = ["<|eot|>"];
  const everyEntry = (top: number) => [
    ...tokenLogprobs(splitText(TEXT), top),
    ...tokenLogprobs(TAIL, top, splitText(TEXT).length),
  ];
  const carriers = ["empty_delta", "empty_content", "finish"] as const;

  it.each(
    carriers.flatMap((carrier) => [
      { carrier, model: "a" },
      { carrier, model: "hold" },
    ]),
  )(
    "reach the caller in order, before the finish chunk ($carrier, model $model)",
    async ({ carrier, model }) => {
      fake.script("up-a", { kind: "ok", content: TEXT, trailingLogprobs: { tokens: TAIL, carrier } });
      const chunks = await streamed({ model, logprobs: true, top_logprobs: 2 });
      expect(textOf(chunks)).toBe(TEXT);
      expect(streamedEntries(chunks)).toEqual(everyEntry(2));
      // The finish chunk ends the answer, as OpenAI's: nothing of the answer comes after it.
      const finishAt = chunks.findIndex((chunk) => chunk.choices[0]?.finish_reason !== null);
      expect(finishAt).toBe(chunks.length - 1);
      expect(chunks[finishAt]?.choices[0]?.finish_reason).toBe("stop");
      for (const chunk of chunks) expect(chunk.model).toBe("a");
    },
  );

  it("an answer with no text at all still shows them, on a chunk of their own before the finish", async () => {
    fake.script("up-a", {
      kind: "ok",
      content: "",
      trailingLogprobs: { tokens: TAIL, carrier: "empty_delta" },
    });
    const chunks = await streamed({ model: "a", logprobs: true, top_logprobs: 2 });
    expect(textOf(chunks)).toBe("");
    expect(streamedEntries(chunks)).toEqual(tokenLogprobs(TAIL, 2));
    expect(chunks.at(-1)?.choices[0]).toMatchObject({ finish_reason: "stop", logprobs: null });
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
  });

  /** A filtered answer with no text but log probabilities: on_content_filter falls back to Anthropic, which answers. */
  const filteredThenAnthropic = () => {
    fake.script("up-a", {
      kind: "ok",
      content: "",
      finishReason: "content_filter",
      trailingLogprobs: { tokens: TAIL, carrier: "finish" },
    });
    anthropic.script("claude-up", { kind: "ok", content: TEXT });
  };

  it("a hop that fails after sending only them shows none: the caller sees the next hop's answer alone", async () => {
    filteredThenAnthropic();
    const chunks = await streamed({ model: "to_anthropic", logprobs: true });
    expect(textOf(chunks)).toBe(TEXT);
    expect(streamedEntries(chunks)).toEqual([]);
    for (const chunk of chunks) expect(chunk.model).toBe("c");
  });

  it("a streamed job whose hop fails after sending only them has no restart event: it showed nothing", async () => {
    filteredThenAnthropic();
    const headers = { authorization: `Bearer ${KEY}` };
    const created = await stack.request("POST", "/v1/jobs", {
      headers,
      body: { route: "to_anthropic", request: { ...hello, logprobs: true, stream: true } },
    });
    const { events } = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, { headers });
    expect(events.at(-1)?.event).toBe("done");
    expect(events.at(-1)?.data).toMatchObject({ status: "succeeded", model: "c" });
    expect(events.filter((event) => event.event === "restart")).toEqual([]);
    const deltas = events.filter((event) => event.event === "delta");
    expect(deltas.map((delta) => delta.data.hop)).toEqual(deltas.map(() => 1));
    expect(deltas.map((delta) => delta.data.content).join("")).toBe(TEXT);
  });

  it("a streamed job's delta events carry its text only, none of them empty", async () => {
    fake.script("up-a", {
      kind: "ok",
      content: TEXT,
      // Slower than the job's delta batching, so the trailing chunk comes after a written event.
      chunkDelayMs: 80,
      trailingLogprobs: { tokens: TAIL, carrier: "empty_delta" },
    });
    const headers = { authorization: `Bearer ${KEY}` };
    const created = await stack.request("POST", "/v1/jobs", {
      headers,
      body: { request: { ...hello, model: "a", logprobs: true, stream: true } },
    });
    const { events } = await readEvents(`${stack.url}/v1/jobs/${created.body.id}/events`, { headers });
    expect(events.at(-1)?.event).toBe("done");
    const deltas = events.filter((event) => event.event === "delta");
    expect(deltas.length).toBeGreaterThan(1);
    for (const delta of deltas) expect(Object.keys(delta.data).sort()).toEqual(["content", "hop"]);
    expect(deltas.map((delta) => delta.data.content).join("")).toBe(TEXT);
    expect(events.at(-1)?.data.result.choices[0].logprobs).toEqual({ content: everyEntry(0), refusal: null });
  });

  it("are kept whole in a chat.completion and in a job's result, streamed or not", async () => {
    const tail = {
      kind: "ok" as const,
      content: TEXT,
      trailingLogprobs: { tokens: TAIL, carrier: "empty_delta" },
    };
    fake.script("up-a", tail, tail, tail);
    const answer = await client().chat.completions.create({
      ...hello,
      model: "a",
      logprobs: true,
      top_logprobs: 1,
    });
    expect(answer.choices[0]?.logprobs).toEqual({ content: everyEntry(1), refusal: null });
    for (const stream of [false, true]) {
      const created = await stack.request("POST", "/v1/jobs", {
        headers: { authorization: `Bearer ${KEY}` },
        body: { request: { ...hello, model: "a", logprobs: true, top_logprobs: 1, stream } },
      });
      expect(created.status).toBe(202);
      const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      expect(done.body.status).toBe("succeeded");
      expect(done.body.result.choices[0].logprobs).toEqual({ content: everyEntry(1), refusal: null });
    }
  });
});

describe("top_logprobs without logprobs: true", () => {
  const post = (path: string, body: unknown) =>
    stack.request("POST", path, { headers: { authorization: `Bearer ${KEY}` }, body });
  const WITHOUT = [
    { top_logprobs: 2 },
    { logprobs: false, top_logprobs: 2 },
    { logprobs: false, top_logprobs: 0 },
    // null is unset, as for OpenAI's other optional fields.
    { logprobs: null, top_logprobs: 5 },
  ];

  it("the gateway answers 400 naming top_logprobs, as OpenAI does, and calls no upstream", async () => {
    for (const fields of WITHOUT) {
      for (const stream of [false, true]) {
        const answer = await post("/v1/chat/completions", { ...hello, model: "a", ...fields, stream });
        expect(answer.status, JSON.stringify({ fields, stream })).toBe(400);
        expect(answer.body).toEqual({
          error: {
            type: "invalid_request_error",
            message: expect.stringMatching(/top_logprobs.*logprobs is true/),
            code: null,
            param: "top_logprobs",
          },
        });
      }
    }
    // What a drop-in client sees: the openai SDK's BadRequestError naming the field.
    const refused = await client()
      .chat.completions.create({ ...hello, model: "a", top_logprobs: 3 })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(refused).toBeInstanceOf(APIError);
    expect(refused).toMatchObject({ status: 400, type: "invalid_request_error", param: "top_logprobs" });
    expect(fake.calls).toHaveLength(0);
  });

  it("POST /v1/jobs answers 400 naming request.top_logprobs, as the gateway does", async () => {
    for (const fields of WITHOUT) {
      const answer = await post("/v1/jobs", { request: { ...hello, model: "a", ...fields } });
      expect(answer.status, JSON.stringify(fields)).toBe(400);
      expect(answer.body.error).toMatchObject({
        type: "invalid_request_error",
        param: "request.top_logprobs",
        message: expect.stringMatching(/top_logprobs.*logprobs is true/),
      });
    }
  });

  it("still takes top_logprobs 0 to 20 with logprobs: true, and refuses any other number", async () => {
    for (const top of [0, 20]) {
      fake.script("up-a", { kind: "ok", content: TEXT });
      const answer = await post("/v1/chat/completions", {
        ...hello,
        model: "a",
        logprobs: true,
        top_logprobs: top,
      });
      expect(answer.status, String(top)).toBe(200);
      expect(answer.body.choices[0].logprobs).toEqual(expected(TEXT, top));
    }
    for (const top of [21, -1, 1.5, "2"]) {
      const answer = await post("/v1/chat/completions", {
        ...hello,
        model: "a",
        logprobs: true,
        top_logprobs: top,
      });
      expect(answer.status, String(top)).toBe(400);
      expect(answer.body.error).toMatchObject({ type: "invalid_request_error", param: "top_logprobs" });
    }
    // top_logprobs: null without logprobs is unset: nothing asked, nothing refused.
    fake.script("up-a", { kind: "ok", content: TEXT });
    const unset = await post("/v1/chat/completions", { ...hello, model: "a", top_logprobs: null });
    expect(unset.status).toBe(200);
    expect(unset.body.choices[0].logprobs).toBeNull();
    expect(fake.calls).toHaveLength(3);
  });
});

describe("logprobs in jobs", () => {
  const job = async (stream: boolean) => {
    const created = await stack.request("POST", "/v1/jobs", {
      headers: { authorization: `Bearer ${KEY}` },
      body: { request: { ...hello, model: "a", logprobs: true, top_logprobs: 2, stream } },
    });
    expect(created.status).toBe(202);
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(done.body.status).toBe("succeeded");
    return done.body;
  };

  it("a job's result carries the upstream's logprobs, streamed or not", async () => {
    fake.script("up-a", { kind: "ok", content: TEXT }, { kind: "ok", content: TEXT });
    const plain = await job(false);
    expect(plain.result.choices[0].logprobs).toEqual(expected(TEXT, 2));
    const whole = await job(true);
    expect(whole.result.choices[0].message.content).toBe(TEXT);
    expect(whole.result.choices[0].logprobs).toEqual(expected(TEXT, 2));
  });
});

describe("an upstream 400's param", () => {
  const invalid = openAIError(
    "Invalid value for 'temperature': must be at most 1.",
    "invalid_request_error",
    "temperature",
    "invalid_value",
  );
  const caught = async (promise: Promise<unknown>): Promise<APIError> => {
    try {
      await promise;
    } catch (error) {
      if (error instanceof APIError) return error;
      throw error;
    }
    throw new Error("the request did not fail");
  };

  it("the gateway's 400 bad_request names the param the upstream named", async () => {
    fake.script("up-a", { kind: "status", status: 400, body: invalid });
    const error = await caught(client().chat.completions.create({ ...hello, model: "strict_bad" }));
    expect(error).toMatchObject({
      status: 400,
      type: "invalid_request_error",
      code: "bad_request",
      param: "temperature",
    });
    expect(fake.callsFor("up-p")).toHaveLength(0);
  });

  it("so does a streamed request that fails before any token", async () => {
    fake.script("up-a", { kind: "status", status: 400, body: invalid });
    const error = await caught(streamed({ model: "strict_bad" }));
    expect(error).toMatchObject({ status: 400, code: "bad_request", param: "temperature" });
  });

  it("param stays null when the upstream named none", async () => {
    const unnamed = openAIError("Something about the request is wrong.", "invalid_request_error", null, null);
    fake.script("up-a", { kind: "status", status: 400, body: unnamed });
    const error = await caught(client().chat.completions.create({ ...hello, model: "strict_bad" }));
    expect(error).toMatchObject({ status: 400, code: "bad_request", param: null });
  });

  it("a failed job's error keeps the contract's fields, type and message", async () => {
    fake.script("up-a", { kind: "status", status: 400, body: invalid });
    const created = await stack.request("POST", "/v1/jobs", {
      headers: { authorization: `Bearer ${KEY}` },
      body: { request: hello, route: "strict_bad" },
    });
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    expect(done.body.status).toBe("failed");
    expect(Object.keys(done.body.error).sort()).toEqual(["message", "type"]);
    expect(done.body.error.type).toBe("bad_request");
  });
});
