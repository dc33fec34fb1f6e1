/**
 * The gateway (contract, "Gateway") over real HTTP against a fake that speaks OpenAI's wire
 * format: answers and their trace headers, fallbacks, the error table, streaming chunks, provider
 * headers, usage records shared with jobs, and GET /v1/models.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, openAIError, startFakeOpenAI } from "../support/fake-openai.js";

const KEY = "sk-gw-tenant-key";
let fake: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up" });
  const model = (name: string, provider = "pa") => ({
    provider,
    name,
    price: { input_per_mtok: 1, output_per_mtok: 2 },
    capabilities: ["tools", "json"],
  });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", GW_KEYS: KEY, APP_TITLE: "Cascade tests" },
    withoutWorker: true,
    config: {
      providers: {
        pa: {
          type: "openai",
          base_url: fake.url,
          api_key_env: "UP_KEY",
          headers: { "HTTP-Referer": "https://example.com", "X-Title": { env: "APP_TITLE" } },
        },
        pb: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY" },
        slow: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY", limits: { rpm: 1 } },
        pc: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY" },
        // As OpenAI's own host is by default: its own request fields are sent.
        pf: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY", openai_fields: "forward" },
      },
      models: {
        a: model("up-a"),
        b: model("up-b", "pb"),
        limited: model("up-limited", "slow"),
        lonely: model("up-lonely", "pc"),
        forwarding: model("up-forwarding", "pf"),
        pricey: { ...model("up-pricey", "pb"), price: { input_per_mtok: 1000, output_per_mtok: 1000 } },
        free: { ...model("up-free"), price: { input_per_mtok: 0, output_per_mtok: 0 } },
        // Two deployments on their own providers and upstream names: one may be misnamed.
        pooled: {
          strategy: "weighted",
          deployments: [
            { id: "east", provider: "pa", name: "up-pool-east", weight: 1000 },
            { id: "west", provider: "pb", name: "up-pool-west", weight: 1 },
          ],
        },
      },
      routes: {
        default: { chain: [{ model: "a", timeout_ms: 2000 }, { model: "b" }] },
        capped: { chain: [{ model: "pricey", max_cost_usd: 0.0001 }] },
        limits: { sync_deadline_ms: 200, chain: [{ model: "limited" }] },
        retried: { chain: [{ model: "a", max_retries: 1 }, { model: "b" }] },
        // The same model at two hops: the first hop's failure is a fallback from it.
        again: { chain: [{ model: "a" }, { model: "b" }, { model: "a", max_retries: 1 }] },
        pool: { chain: [{ model: "pooled" }, { model: "b" }] },
        upstream429: { sync_deadline_ms: 200, chain: [{ model: "lonely" }] },
        pricyRetries: {
          chain: [
            { model: "pricey", timeout_ms: 300, max_retries: 2, retry_on: ["timeout"] },
            { model: "b" },
          ],
        },
      },
      fallbacks: { a: ["b"] },
      tenants: { acme: { api_keys_env: "GW_KEYS" } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});
beforeEach(() => fake.reset());

async function post(body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${stack.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary fields.
  return { status: response.status, headers: response.headers, text, body: json as any };
}

const hello = { messages: [{ role: "user", content: "Say hi" }], max_tokens: 20 };

/** Polls `condition` every 20 ms; fails naming it when `timeoutMs` passes first. */
async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${condition.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("POST /v1/chat/completions", () => {
  it("answers a chat.completion named by the config model id, with trace headers", async () => {
    fake.script("up-a", { kind: "ok", content: "hi!", usage: { prompt_tokens: 10, completion_tokens: 5 } });
    const answer = await post({ model: "default", ...hello });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      object: "chat.completion",
      model: "a",
      choices: [{ index: 0, message: { role: "assistant", content: "hi!" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
    expect(answer.headers.get("x-cascade-model")).toBe("a");
    expect(answer.headers.get("x-cascade-provider")).toBe("pa");
    expect(answer.headers.get("x-cascade-attempts")).toBe("1");
    expect(answer.headers.get("x-cascade-fallbacks")).toBeNull();
    expect(Number(answer.headers.get("x-cascade-cost-usd"))).toBeCloseTo((10 * 1 + 5 * 2) / 1e6, 12);
    expect(answer.headers.get("x-request-id")).toMatch(/^req_/);
    // The provider's extra headers, literal and from the environment, went upstream.
    const [call] = fake.callsFor("up-a");
    expect(call?.headers["http-referer"]).toBe("https://example.com");
    expect(call?.headers["x-title"]).toBe("Cascade tests");
    expect(call?.headers.authorization).toBe("Bearer sk-up");
    // The extension fields never reach the provider.
    expect(call?.body.route).toBeUndefined();
  });

  it("falls back and names every hop that did not answer", async () => {
    fake.script("up-a", { kind: "server_error" });
    fake.script("up-b", { kind: "ok", content: "from b" });
    const answer = await post({ model: "a", ...hello });
    expect(answer.status).toBe(200);
    expect(answer.body.model).toBe("b");
    expect(answer.headers.get("x-cascade-model")).toBe("b");
    expect(answer.headers.get("x-cascade-provider")).toBe("pb");
    expect(answer.headers.get("x-cascade-attempts")).toBe("2");
    expect(answer.headers.get("x-cascade-fallbacks")).toBe("a:server_error");
  });

  it("answers the contract's errors: 404 model_not_found, 401, 400 naming the field, 400 price_ceiling, 502", async () => {
    for (const model of ["nope", "constructor", "toString"]) {
      const unknown = await post({ model, ...hello });
      expect(unknown.status, model).toBe(404);
      expect(unknown.body.error).toMatchObject({
        type: "not_found_error",
        code: "model_not_found",
        param: "model",
      });
    }

    const noKey = await post({ model: "default", ...hello }, { authorization: "Bearer wrong" });
    expect(noKey.status).toBe(401);
    expect(noKey.body.error.type).toBe("authentication_error");

    const malformed = await post({ model: "default", messages: [{ role: "user" }] });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.type).toBe("invalid_request_error");
    expect(malformed.body.error.message).toContain("messages");

    const capped = await post({ model: "capped", ...hello });
    expect(capped.status).toBe(400);
    expect(capped.body.error).toMatchObject({ type: "invalid_request_error", code: "price_ceiling" });

    fake.script("up-a", { kind: "server_error" });
    fake.script("up-b", { kind: "server_error" });
    const failed = await post({ model: "default", ...hello });
    expect(failed.status).toBe(502);
    expect(failed.body.error).toMatchObject({ type: "api_error", code: "all_models_failed" });
    expect(failed.headers.get("x-cascade-fallbacks")).toBe("a:server_error,b:server_error");
  });

  it("refuses stream_options without stream: true, as OpenAI does (400 naming stream_options)", async () => {
    const answer = await post({ model: "a", ...hello, stream_options: { include_usage: true } });
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ type: "invalid_request_error", param: "stream_options" });
    expect(answer.body.error.message).toMatch(/stream_options.*stream/);
    // null is unset, as for OpenAI's other optional fields.
    expect((await post({ model: "a", ...hello, stream_options: null })).status).toBe(200);
    const streamed = await fetch(`${stack.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "a", ...hello, stream: true, stream_options: { include_usage: true } }),
    });
    expect(streamed.status).toBe(200);
    await streamed.text();
  });

  it("takes max_cost_usd: 0 as free models only (a local model priced 0 answers; a priced one is price_ceiling)", async () => {
    const free = await post({ model: "free", ...hello, max_cost_usd: 0 });
    expect(free.status).toBe(200);
    expect(free.body.model).toBe("free");
    const priced = await post({ model: "a", ...hello, max_cost_usd: 0 });
    expect(priced.status).toBe(400);
    expect(priced.body.error).toMatchObject({ type: "invalid_request_error", code: "price_ceiling" });
    const negative = await post({ model: "free", ...hello, max_cost_usd: -1 });
    expect(negative.status).toBe(400);
    expect(negative.body.error.param).toBe("max_cost_usd");
  });

  it("checks the request's remaining max_cost_usd before each retry of a hop, not only its first try", async () => {
    // One call is estimated at its prompt and 100 output tokens, at $0.001 a token: about $0.11.
    // A call that timed out is charged as much (its whole answer: ADR 0013), so after one the
    // $0.15 left no room for another: the retry is a price_ceiling skip, as is the next hop.
    fake.script("up-pricey", { kind: "hang" }, { kind: "hang" }, { kind: "hang" });
    const answer = await post({ model: "pricyRetries", ...hello, max_tokens: 100, max_cost_usd: 0.15 });
    expect(fake.callsFor("up-pricey")).toHaveLength(1);
    // The next hop, cheap, answers; the retried hop is named once, with its last reason.
    expect(answer.status).toBe(200);
    expect(answer.body.model).toBe("b");
    expect(answer.headers.get("x-cascade-fallbacks")).toBe("pricey:price_ceiling");
    expect(answer.headers.get("x-cascade-attempts")).toBe("3");
    expect(Number(answer.headers.get("x-cascade-cost-usd"))).toBeLessThanOrEqual(0.15);
  });

  it("waits for limits within the deadline, then answers 429 with Retry-After from the earliest refill", async () => {
    const first = await post({ model: "limits", ...hello });
    expect(first.status).toBe(200);
    const started = Date.now();
    const limited = await post({ model: "limits", ...hello });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ type: "rate_limit_error", code: "rate_limited" });
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // The header deadline overrides the route's: long enough here to wait for the refill? no (rpm 1).
    const bad = await post({ model: "limits", ...hello }, { "x-cascade-deadline-ms": "soon" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("x-cascade-deadline-ms");
  });

  it("sends OpenAI's own fields (reasoning_effort, service_tier, ...) to a provider that takes them, and to no other", async () => {
    const own = {
      reasoning_effort: "low",
      service_tier: "default",
      store: false,
      verbosity: "low",
      prompt_cache_key: "tenant-42",
      safety_identifier: "user-hash",
      logit_bias: { "50256": -100 },
    };
    expect((await post({ model: "forwarding", ...hello, ...own })).status).toBe(200);
    expect(fake.callsFor("up-forwarding")[0]?.body).toMatchObject(own);
    // An OpenAI-compatible endpoint elsewhere may refuse fields it does not know: not sent.
    expect((await post({ model: "a", ...hello, ...own })).status).toBe(200);
    const sent = fake.callsFor("up-a")[0]?.body;
    for (const key of Object.keys(own)) expect(sent).not.toHaveProperty(key);
    // A value OpenAI does not take is a 400 naming the field.
    const bad = await post({ model: "forwarding", ...hello, reasoning_effort: "extreme" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("reasoning_effort");
  });

  it("takes null for an optional field as unset, as OpenAI does", async () => {
    const nulls = { temperature: null, max_tokens: null, top_p: null, stop: null, seed: null, user: null };
    // OpenAI's newer options a chain cannot honour across providers: taken, not sent upstream.
    const dropped = { prompt_cache_key: "k", safety_identifier: "u1", verbosity: "low", prediction: null };
    const more = {
      ...dropped,
      modalities: ["text"],
      audio: null,
      metadata: null,
      tools: null,
      tool_choice: null,
    };
    // The contract's own extension fields too.
    const extensions = { models: null, route: null, max_cost_usd: null };
    const answer = await post({ model: "default", ...hello, ...nulls, ...more, ...extensions });
    expect(answer.status, answer.text).toBe(200);
    const sent = fake.callsFor("up-a")[0]?.body;
    expect(sent).toBeDefined();
    for (const field of [
      "temperature",
      "top_p",
      "stop",
      "seed",
      "tools",
      "tool_choice",
      ...Object.keys(dropped),
    ]) {
      expect(sent[field] ?? null, field).toBeNull();
    }
    const audio = await post({ model: "default", ...hello, modalities: ["text", "audio"] });
    expect(audio.status).toBe(400);
    expect(audio.body.error.param).toMatch(/^modalities/);
    const wrong = await post({ model: "default", ...hello, temperature: "hot" });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.param).toBe("temperature");
  });

  it("names a retried hop once in x-cascade-fallbacks, with its last reason", async () => {
    fake.script("up-a", { kind: "server_error" }, { kind: "context_length" });
    fake.script("up-b", { kind: "ok", content: "from b" });
    const answer = await post({ model: "retried", ...hello });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cascade-attempts")).toBe("3");
    expect(answer.headers.get("x-cascade-fallbacks")).toBe("a:context_length");
  });

  it("names a failed hop whose model answers at a later hop, leaving out that later hop's own retries", async () => {
    for (const stream of [false, true]) {
      fake.script(
        "up-a",
        { kind: "server_error" },
        { kind: "server_error" },
        { kind: "ok", content: "a again" },
      );
      fake.script("up-b", { kind: "server_error" });
      const answer = await post({ model: "again", ...hello, stream });
      expect(answer.status).toBe(200);
      expect(answer.headers.get("x-cascade-model")).toBe("a");
      expect(answer.headers.get("x-cascade-attempts")).toBe("4");
      expect(answer.headers.get("x-cascade-fallbacks")).toBe("a:server_error,b:server_error");
      fake.reset();
    }
  });

  it("a pool deployment its provider does not know (404 model_not_found) hands on to the other deployment, not the next hop", async () => {
    const notFound = {
      kind: "status" as const,
      status: 404,
      body: openAIError(
        "The model `up-pool-x` does not exist or you do not have access to it.",
        "invalid_request_error",
        null,
        "model_not_found",
      ),
    };
    // East (nearly always picked first) is misnamed; west answers.
    fake.setDefault("up-pool-east", notFound);
    fake.setDefault("up-pool-west", { kind: "ok", content: "from the pool" });
    const attempts: string[] = [];
    for (let request = 0; request < 3; request++) {
      const answer = await post({ model: "pool", ...hello });
      expect(answer.status).toBe(200);
      expect(answer.body.model).toBe("pooled");
      expect(answer.headers.get("x-cascade-fallbacks")).toBeNull();
      attempts.push(answer.headers.get("x-cascade-attempts") ?? "");
    }
    expect(attempts).toContain("2");
    expect(fake.callsFor("up-b")).toHaveLength(0);
  });

  it("gives x-request-id to errors raised before the handler too", async () => {
    const unauthorized = await post({ model: "default", ...hello }, { authorization: "Bearer wrong" });
    const malformed = await post({ model: "default", messages: "nope" });
    const tooLarge = await post({
      model: "default",
      messages: [{ role: "user", content: "x".repeat(1_100_000) }],
    });
    const notJson = await fetch(`${stack.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "text/plain" },
      body: "hi",
    });
    const wrongMethod = await fetch(`${stack.url}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    const answers = [unauthorized, malformed, tooLarge, notJson, wrongMethod];
    expect(answers.map((answer) => answer.status)).toEqual([401, 400, 413, 415, 405]);
    for (const answer of answers) expect(answer.headers.get("x-request-id")).toMatch(/^req_/);
  });

  it("answers 429 with Retry-After when the upstream's 429 named no time (its cooldown's)", async () => {
    const error = {
      message: "Rate limit reached",
      type: "requests",
      param: null,
      code: "rate_limit_exceeded",
    };
    // No Retry-After, and none of the fake's usual x-ratelimit-reset-* hints either.
    const noHints = { "x-ratelimit-reset-requests": "", "x-ratelimit-reset-tokens": "" };
    fake.script("up-lonely", { kind: "status", status: 429, body: { error }, headers: noHints });
    const limited = await post({ model: "upstream429", ...hello });
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ type: "rate_limit_error", code: "rate_limited" });
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // The provider cools down (1 s, no Retry-After to follow): the next request is skipped, same header.
    const skipped = await post({ model: "upstream429", ...hello });
    expect(skipped.status).toBe(429);
    expect(Number(skipped.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  });

  it("streams chat.completion.chunk events ending in [DONE], with usage when asked", async () => {
    fake.script("up-a", {
      kind: "ok",
      content: "one two three",
      usage: { prompt_tokens: 7, completion_tokens: 3 },
    });
    const answer = await post({
      model: "default",
      ...hello,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(answer.headers.get("x-cascade-model")).toBe("a");
    const events = answer.text.split("\n\n").filter(Boolean);
    expect(events.at(-1)).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event.replace(/^data: /, "")));
    expect(chunks.every((chunk) => chunk.object === "chat.completion.chunk" && chunk.model === "a")).toBe(
      true,
    );
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1);
    // As OpenAI's: the role comes alone (empty content), the text in the chunks after it, so code
    // that skips the role chunk loses no token.
    expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "", refusal: null });
    expect(chunks[1].choices[0].delta).not.toHaveProperty("role");
    const text = chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join("");
    expect(text).toBe("one two three");
    const finish = chunks.find((chunk) => chunk.choices[0]?.finish_reason);
    expect(finish.choices[0].finish_reason).toBe("stop");
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 3 } });
  });

  it("streams tool-call deltas in OpenAI's shape", async () => {
    fake.script("up-a", {
      kind: "ok",
      toolCalls: [{ id: "call_1", name: "lookup", arguments: '{"q":"weather"}' }],
      finishReason: "tool_calls",
    });
    const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }];
    const answer = await post({ model: "default", ...hello, tools, stream: true });
    const chunks = answer.text
      .split("\n\n")
      .filter((event) => event && event !== "data: [DONE]")
      .map((event) => JSON.parse(event.replace(/^data: /, "")));
    const calls = chunks.flatMap((chunk) => chunk.choices[0]?.delta?.tool_calls ?? []);
    expect(calls[0]).toMatchObject({
      index: 0,
      id: "call_1",
      type: "function",
      function: { name: "lookup" },
    });
    expect(calls.map((call: { function: { arguments: string } }) => call.function.arguments).join("")).toBe(
      '{"q":"weather"}',
    );
    expect(chunks.find((chunk) => chunk.choices[0]?.finish_reason)?.choices[0].finish_reason).toBe(
      "tool_calls",
    );
  });

  it("stops the upstream call when the caller leaves, also on the hop after a timed-out one", async () => {
    /** Sends a request the test then walks away from once the upstream is answering `calls` calls. */
    const leaveDuring = async (body: Record<string, unknown>, calls: number) => {
      const caller = new AbortController();
      const sent = fetch(`${stack.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: caller.signal,
      }).catch((error: unknown) => error);
      await waitFor(() => fake.calls.length >= calls && fake.inFlight() === 1, 5_000);
      caller.abort();
      await sent;
      // The gateway's call ends with its caller, not at its timeout (60 s by default).
      await waitFor(() => fake.inFlight() === 0, 2_000);
    };
    fake.setDefault("up-b", { kind: "hang" });
    await leaveDuring({ model: "b", ...hello }, 1);
    await leaveDuring({ model: "b", ...hello, stream: true }, 2);
    // Hop `a` times out (2 s); the request goes on with a fresh signal, which the caller's
    // leaving still reaches.
    fake.reset();
    fake.setDefault("up-a", { kind: "hang" });
    fake.setDefault("up-b", { kind: "hang" });
    await leaveDuring({ model: "default", ...hello }, 2);
    expect(fake.calls.map((call) => call.model)).toEqual(["up-a", "up-b"]);
  });

  it("records usage where jobs record theirs (GET /v1/usage), by end user too", async () => {
    const read = async () =>
      (await stack.request("GET", "/v1/usage", { headers: { authorization: `Bearer ${KEY}` } })).body as {
        cost_usd: number;
        by_user: Record<string, number>;
      };
    const before = (await read()).cost_usd;
    fake.script("up-a", {
      kind: "ok",
      content: "x",
      usage: { prompt_tokens: 1000, completion_tokens: 1000 },
    });
    const answer = await post({ model: "default", ...hello, user: "end-user-9" });
    expect(answer.status).toBe(200);
    const deadline = Date.now() + 3_000;
    let usage = await read();
    while ((usage.by_user["end-user-9"] ?? 0) < 0.003 - 1e-9 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      usage = await read();
    }
    // Earlier tests' last settlements may land meanwhile: the total grows by at least this call.
    expect(usage.cost_usd - before).toBeGreaterThanOrEqual(0.003 - 1e-9);
    expect(usage.by_user["end-user-9"]).toBeCloseTo(0.003, 9);
  });
});

describe("GET /v1/models", () => {
  it("lists every route and model in OpenAI's list shape", async () => {
    const response = await fetch(`${stack.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(response.status).toBe(200);
    const list = await response.json();
    expect(list.object).toBe("list");
    const ids = list.data.map((entry: { id: string }) => entry.id);
    expect(ids).toEqual(
      expect.arrayContaining(["default", "capped", "limits", "a", "b", "limited", "pricey"]),
    );
    expect(list.data[0]).toMatchObject({ object: "model", owned_by: "cascade" });
    expect(typeof list.data[0].created).toBe("number");
  });
});
