/**
 * Gateway edges found in review: retries bounded by the caller's deadline, what a shown stream
 * may and may not be continued after, a model refusing the prefill, the trace headers of retried
 * hops and of answers that end within stream_hold_ms, OpenAI fields accepted but not forwarded,
 * and `code`/`param` always present in errors.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

const KEY = "sk-gw-edges-key";
let fake: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up" });
  const model = (name: string, provider: string, prefill = false) => ({
    provider,
    name,
    price: { input_per_mtok: 1, output_per_mtok: 2 },
    capabilities: prefill ? ["tools", "json", "prefill"] : ["tools", "json"],
  });
  const provider = { type: "openai", base_url: fake.url, api_key_env: "UP_KEY" };
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up", EDGE_KEYS: KEY },
    withoutWorker: true,
    config: {
      providers: { pa: provider, pb: provider, pc: provider, pd: provider },
      models: {
        a: model("up-a", "pa"),
        b: model("up-b", "pb"),
        p1: model("up-p1", "pc", true),
        p2: model("up-p2", "pd", true),
      },
      routes: {
        retrying: { chain: [{ model: "a", max_retries: 1 }, { model: "b" }] },
        prefills: { chain: [{ model: "a" }, { model: "p1" }, { model: "p2" }] },
        held: { stream_hold_ms: 2_000, chain: [{ model: "a" }, { model: "b" }] },
      },
      tenants: { acme: { api_keys_env: "EDGE_KEYS" } },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});
beforeEach(() => fake.reset());

async function post(body: unknown, headers: Record<string, string> = {}) {
  const started = Date.now();
  const response = await fetch(`${stack.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  const ms = Date.now() - started;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary fields.
  return { status: response.status, headers: response.headers, text, ms, body: json as any };
}

const ask = { messages: [{ role: "user", content: "Say hi" }], max_tokens: 40 };

/** The `data:` events of an SSE answer, parsed ([DONE] as the string). */
function events(text: string): unknown[] {
  return text
    .split("\n\n")
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice("data: ".length))
    .map((data) => (data === "[DONE]" ? data : JSON.parse(data)));
}

describe("gateway edges", () => {
  it("does not sleep a Retry-After longer than the caller's deadline: it falls back", async () => {
    fake.script("up-a", { kind: "status", status: 503, headers: { "retry-after": "300" } });
    fake.script("up-b", { kind: "ok", content: "from b" });
    const answer = await post({ model: "retrying", ...ask }, { "x-cascade-deadline-ms": "1000" });
    expect(answer.status).toBe(200);
    expect(answer.body.model).toBe("b");
    expect(answer.ms).toBeLessThan(5_000);
    expect(fake.callsFor("up-a")).toHaveLength(1);
  });

  it("x-cascade-fallbacks names hops that did not answer, not the answering hop's retries", async () => {
    fake.script("up-a", { kind: "server_error" }, { kind: "ok", content: "second try" });
    const answer = await post({ model: "retrying", ...ask });
    expect(answer.status).toBe(200);
    expect(answer.body.model).toBe("a");
    expect(answer.headers.get("x-cascade-attempts")).toBe("2");
    expect(answer.headers.get("x-cascade-fallbacks")).toBeNull();
  });

  it("a stream stopped by a content filter after text was shown is not continued by another model", async () => {
    fake.script("up-a", { kind: "ok", content: "some text", finishReason: "content_filter" });
    const answer = await post({ model: "prefills", ...ask, stream: true });
    const all = events(answer.text);
    expect(all).not.toContain("[DONE]");
    expect(all.at(-1)).toMatchObject({ error: { code: "content_filter" } });
    expect(fake.callsFor("up-p1")).toHaveLength(0);
  });

  it("a prefill hop that refuses the prefill (400) hands on to the next prefill hop, with a smaller max_tokens", async () => {
    fake.script("up-a", { kind: "stream_cut", afterChunks: 3, content: "one two three four" });
    fake.script("up-p1", {
      kind: "status",
      status: 400,
      body: { error: { message: "no prefill", type: "invalid_request_error", param: null, code: null } },
    });
    fake.script("up-p2", { kind: "ok", content: " and the rest." });
    const answer = await post({ model: "prefills", ...ask, stream: true });
    const all = events(answer.text);
    expect(all.at(-1)).toBe("[DONE]");
    const text = all
      .filter(
        (event): event is { choices: Array<{ delta?: { content?: string } }> } => typeof event === "object",
      )
      .map((event) => event.choices[0]?.delta?.content ?? "")
      .join("");
    const [p2] = fake.callsFor("up-p2");
    const partial = p2?.body.messages.at(-1).content as string;
    expect(p2?.body.messages.at(-1).role).toBe("assistant");
    expect(text.startsWith(partial)).toBe(true);
    expect(text.endsWith("and the rest.")).toBe(true);
    // The whole answer keeps to the caller's max_tokens: the continuation may add only the rest.
    expect(p2?.body.max_tokens).toBe(ask.max_tokens - Math.ceil(partial.length / 4));
  });

  it("an answer that ends within stream_hold_ms counts its one attempt", async () => {
    fake.script("up-a", { kind: "ok", content: "quick" });
    const answer = await post({ model: "held", ...ask, stream: true });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("x-cascade-attempts")).toBe("1");
    expect(events(answer.text).at(-1)).toBe("[DONE]");
  });

  it("accepts OpenAI's own fields, and does not send them to an OpenAI-compatible endpoint not known to take them", async () => {
    fake.script("up-a", { kind: "ok", content: "ok" });
    const answer = await post({
      model: "retrying",
      ...ask,
      store: false,
      service_tier: "auto",
      reasoning_effort: "low",
      // top_logprobs only with logprobs: true, as OpenAI takes it (ADR 0017).
      logprobs: true,
      top_logprobs: 0,
      logit_bias: { "50256": -100 },
    });
    expect(answer.status).toBe(200);
    const [call] = fake.callsFor("up-a");
    for (const field of [
      "store",
      "service_tier",
      "reasoning_effort",
      "logprobs",
      "top_logprobs",
      "logit_bias",
    ]) {
      expect(call?.body[field]).toBeUndefined();
    }
  });

  it("takes OpenAI's user of any length, as OpenAI and the jobs API do (over 256 characters it names nobody)", async () => {
    fake.script("up-a", { kind: "ok", content: "ok" });
    const answer = await post({ model: "retrying", ...ask, user: "u".repeat(300) });
    expect(answer.status).toBe(200);
    // OpenAI's own field: it goes on to an OpenAI-type provider as sent.
    expect(fake.callsFor("up-a").at(-1)?.body.user).toBe("u".repeat(300));
  });

  it("errors always carry code and param, null when they say nothing", async () => {
    const noKey = await post({ model: "retrying", ...ask }, { authorization: "Bearer nope" });
    expect(noKey.status).toBe(401);
    expect(noKey.body.error).toEqual({
      type: "authentication_error",
      message: expect.any(String),
      code: null,
      param: null,
    });
    const budgetless = await post({ model: "retrying", messages: [] });
    expect(budgetless.status).toBe(400);
    expect(budgetless.body.error).toMatchObject({
      type: "invalid_request_error",
      code: null,
      param: "messages",
    });
    expect(budgetless.headers.get("x-should-retry")).toBeNull();
  });

  it("no model named, and no route named default: a malformed body (400, code null) at both doors; an unknown one model_not_found", async () => {
    const nameless = await post(ask);
    expect(nameless.status).toBe(400);
    expect(nameless.body.error).toMatchObject({ type: "invalid_request_error", code: null, param: "model" });
    expect(nameless.body.error.message).toMatch(/no route named default/);
    const unknown = await post({ model: "gpt-9", ...ask });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({
      type: "not_found_error",
      code: "model_not_found",
      param: "model",
    });
    const job = await fetch(`${stack.url}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ request: ask }),
    });
    expect(job.status).toBe(400);
    expect(((await job.json()) as { error: unknown }).error).toMatchObject({
      type: "invalid_request_error",
      code: null,
      param: "request.model",
    });
  });
});
