/**
 * Timeouts that see silence, for jobs (through a worker) and the gateway alike (contract,
 * "Retries and timeouts" and the config additions): `first_token_timeout_ms` ends a call whose
 * upstream never answers, or whose stream never starts, long before `timeout_ms`;
 * `idle_timeout_ms` ends a started stream that falls silent (the job restarts on the next hop)
 * but never a slow, steady one; and `retry_on` decides whether a timed-out hop is tried again
 * (by default it is not, while a server error is).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import { type ReceivedEvent, readEvents } from "../support/sse-client.js";

const B_ANSWER = "Answer from b, whole.";
const SLOW = { first_token_timeout_ms: 300, timeout_ms: 10_000 };

let fake: FakeOpenAI;
let stack: Stack;

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: "sk-up" });
  const model = (name: string) => ({
    provider: "up",
    name,
    price: { input_per_mtok: 1, output_per_mtok: 1 },
  });
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    env: { UP_KEY: "sk-up" },
    config: {
      providers: {
        // Breakers stay shut: every test here fails the same provider on purpose.
        up: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY", breaker: { min_requests: 1000 } },
      },
      models: { a: model("up-a"), b: model("up-b") },
      routes: {
        default: { chain: [{ model: "a" }, { model: "b" }] },
        first_token: { chain: [{ model: "a", ...SLOW }, { model: "b" }] },
        silent_body: {
          chain: [{ model: "a", first_token_timeout_ms: 300, timeout_ms: 3_000 }, { model: "b" }],
        },
        idle: { chain: [{ model: "a", idle_timeout_ms: 300, timeout_ms: 10_000 }, { model: "b" }] },
        no_timeout_retry: { chain: [{ model: "a", ...SLOW, max_retries: 2 }, { model: "b" }] },
        timeout_retry: {
          chain: [{ model: "a", ...SLOW, max_retries: 2, retry_on: ["timeout"] }, { model: "b" }],
        },
        server_retry: { chain: [{ model: "a", max_retries: 1 }, { model: "b" }] },
      },
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});
beforeEach(() => {
  fake.reset();
  fake.setDefault("up-b", { kind: "ok", content: B_ANSWER });
});

interface Attempt {
  model: string;
  outcome: string;
  reason?: string;
  duration_ms: number;
}

/** Submits a job on `route` and waits for it to end. */
async function runJob(route: string, stream = false) {
  const request = { messages: [{ role: "user", content: "Say something" }], max_tokens: 50, stream };
  const created = await stack.request("POST", "/v1/jobs", { body: { route, request } });
  expect(created.status).toBe(202);
  const id = created.body.id as string;
  const job = (await stack.request("GET", `/v1/jobs/${id}?wait=20`)).body;
  return { id, job, attempts: job.attempts as Attempt[] };
}

/** The job's whole event log, from the start. */
async function jobEvents(id: string): Promise<ReceivedEvent[]> {
  return (await readEvents(`${stack.url}/v1/jobs/${id}/events`, { timeoutMs: 10_000 })).events;
}

/** A non-streamed gateway request, with how long it took. */
async function gateway(route: string) {
  const started = Date.now();
  const response = await fetch(`${stack.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: route, messages: [{ role: "user", content: "Say something" }] }),
  });
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the gateway answered.
  const body: any = await response.json();
  return {
    status: response.status,
    headers: response.headers,
    body,
    ms: Date.now() - started,
  };
}

const summary = (attempts: Attempt[]) =>
  attempts.map((attempt) => `${attempt.model}:${attempt.reason ?? attempt.outcome}`);

describe("first_token_timeout_ms", () => {
  it("a job whose upstream never sends headers times out in well under timeout_ms and falls back", async () => {
    fake.script("up-a", { kind: "hang" });
    const { job, attempts } = await runJob("first_token");
    expect(job.status).toBe("succeeded");
    expect(job.model).toBe("b");
    expect(job.result.choices[0].message.content).toBe(B_ANSWER);
    expect(summary(attempts)).toEqual(["a:timeout", "b:success"]);
    expect(attempts[0]?.duration_ms).toBeGreaterThanOrEqual(250);
    expect(attempts[0]?.duration_ms).toBeLessThan(2_000);
  });

  it("a streamed job whose headers come but no first token times out the same way", async () => {
    fake.script("up-a", { kind: "silent" });
    const { id, job, attempts } = await runJob("first_token", true);
    expect(job.status).toBe("succeeded");
    expect(summary(attempts)).toEqual(["a:timeout", "b:success"]);
    expect(attempts[0]?.duration_ms).toBeLessThan(2_000);
    const deltas = (await jobEvents(id)).filter((event) => event.event === "delta");
    expect(deltas.map((event) => event.data.content ?? "").join("")).toBe(B_ANSWER);
  });

  it("the gateway (not streamed) falls back from a hanging upstream in well under timeout_ms", async () => {
    fake.script("up-a", { kind: "hang" });
    const answer = await gateway("first_token");
    expect(answer.status).toBe(200);
    expect(answer.body.model).toBe("b");
    expect(answer.body.choices[0].message.content).toBe(B_ANSWER);
    expect(answer.headers.get("x-cascade-fallbacks")).toBe("a:timeout");
    expect(answer.ms).toBeLessThan(2_000);
  });

  it("the gateway streams b's whole answer when a's stream never starts", async () => {
    fake.script("up-a", { kind: "silent" });
    const started = Date.now();
    const response = await fetch(`${stack.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "first_token",
        messages: [{ role: "user", content: "Hi" }],
        stream: true,
      }),
    });
    const text = await response.text();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-cascade-fallbacks")).toBe("a:timeout");
    const chunks = text
      .split("\n\n")
      .filter((event) => event.startsWith("data: {"))
      .map((event) => JSON.parse(event.slice("data: ".length)));
    expect(chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join("")).toBe(B_ANSWER);
    expect(chunks.every((chunk) => chunk.model === "b")).toBe(true);
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
  });

  it("not streamed, headers then a silent body is a first-token timeout (first byte, not headers)", async () => {
    fake.script("up-a", { kind: "silent" });
    const answer = await gateway("silent_body");
    expect(answer.status).toBe(200);
    expect(answer.body.model).toBe("b");
    expect(answer.headers.get("x-cascade-fallbacks")).toBe("a:timeout");
    // first_token_timeout_ms 300 ends it, well before the route's timeout_ms 3000 (the margin
    // leaves room for a loaded machine; CI once took 1.2 s with a bound of 750 ms).
    expect(answer.ms).toBeGreaterThanOrEqual(250);
    expect(answer.ms).toBeLessThan(2_500);
  });
});

describe("idle_timeout_ms", () => {
  it("a stream that stalls after two chunks times out, restarts, and b's whole answer wins", async () => {
    fake.script("up-a", { kind: "stall", afterChunks: 3, content: "Half of it never ends" });
    const { id, job, attempts } = await runJob("idle", true);
    expect(job.status).toBe("succeeded");
    expect(job.result.choices[0].message.content).toBe(B_ANSWER);
    expect(summary(attempts)).toEqual(["a:timeout", "b:success"]);
    expect(attempts[0]?.duration_ms).toBeLessThan(2_000);
    const events = await jobEvents(id);
    const kinds = events.map((event) => event.event);
    const restarts = events.filter((event) => event.event === "restart").map((event) => event.data);
    expect(restarts).toEqual([{ hop: 0, reason: "timeout" }]);
    // a's two pieces came before the restart; what a reader keeps after it is b's whole answer.
    const before = events.slice(0, kinds.indexOf("restart")).filter((event) => event.event === "delta");
    expect(before.map((event) => event.data.content).join("")).toBe("Half of");
    const after = events.slice(kinds.indexOf("restart") + 1).filter((event) => event.event === "delta");
    expect(after.map((event) => event.data.content).join("")).toBe(B_ANSWER);
  });

  it("a slow but steady stream is not timed out, though it lasts longer than idle_timeout_ms", async () => {
    const content = "one two three four five six seven eight";
    fake.script("up-a", { kind: "ok", content, chunkDelayMs: 120 });
    const { job, attempts } = await runJob("idle", true);
    expect(job.status).toBe("succeeded");
    expect(job.model).toBe("a");
    expect(job.result.choices[0].message.content).toBe(content);
    expect(summary(attempts)).toEqual(["a:success"]);
    expect(attempts[0]?.duration_ms).toBeGreaterThan(600);
  });
});

describe("idle_timeout_ms counts every byte of the stream, not only tokens", () => {
  it("a stream whose finish and usage chunks come 200 ms apart, past the last token, is not silent", async () => {
    // idle_timeout_ms 300: the finish chunk comes 200 ms after the last token, the usage chunk
    // 200 ms after that; neither is a token, but the provider was never silent for 300 ms.
    fake.script("up-a", { kind: "ok", content: "slow ending", chunkDelayMs: 200 });
    const { job, attempts } = await runJob("idle", true);
    expect(summary(attempts)).toEqual(["a:success"]);
    expect(job.result.choices[0].message.content).toBe("slow ending");
  });
});

describe("retry_on", () => {
  it("by default a timed-out hop is not retried, even with max_retries", async () => {
    fake.setDefault("up-a", { kind: "hang" });
    const { job, attempts } = await runJob("no_timeout_retry");
    expect(job.status).toBe("succeeded");
    expect(summary(attempts)).toEqual(["a:timeout", "b:success"]);
    expect(fake.callsFor("up-a")).toHaveLength(1);
  });

  it("with retry_on [timeout] it is tried max_retries + 1 times", async () => {
    fake.setDefault("up-a", { kind: "hang" });
    const { job, attempts } = await runJob("timeout_retry");
    expect(job.status).toBe("succeeded");
    expect(summary(attempts)).toEqual(["a:timeout", "a:timeout", "a:timeout", "b:success"]);
    expect(fake.callsFor("up-a")).toHaveLength(3);
  });

  it("a server error is retried by default", async () => {
    fake.setDefault("up-a", { kind: "server_error" });
    const { job, attempts } = await runJob("server_retry");
    expect(job.status).toBe("succeeded");
    expect(summary(attempts)).toEqual(["a:server_error", "a:server_error", "b:success"]);
    expect(fake.callsFor("up-a")).toHaveLength(2);
  });
});
