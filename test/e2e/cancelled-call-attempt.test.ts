/**
 * A job cancelled while its upstream call is in flight is charged for that call (a provider
 * finishes and bills a non-streamed answer whoever listens): the call must then be one of its
 * attempts, so the job's cost is explained by them. Seen in an audit: `cost_usd` 0.01 with
 * `attempts: []`, the same in its `job.cancelled` webhook and its SSE `attempt` events.
 *
 * Prices: $1000 per million tokens, i.e. $0.001 a token; PROMPT is estimated at 20 tokens, so a
 * call with max_tokens 100 is charged (20 + 100) × $0.001 = $0.12 when abandoned.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readEvents } from "../support/sse-client.js";
import {
  pricedModelConfig,
  type ResilienceStack,
  sleep,
  startResilienceStack,
} from "./resilience-helpers.js";

const KEY = "cancelled-call-key-1";
const PROMPT = "Forty characters of prompt, exactly here";
const CHARGED_USD = 0.12;

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "cancelcall",
    config: pricedModelConfig,
    workers: 1,
    concurrency: 2,
    env: { ACME_KEYS: KEY },
  });
});

afterAll(async () => {
  await stack?.close();
});

describe("a running job cancelled with its call in flight", () => {
  it("has the charged call among its attempts (outcome error, saying it was cancelled), on GET and in its events", async () => {
    stack.fake.script("up-a", { kind: "hang" });
    const id = await stack.submit(
      { request: { messages: [{ role: "user", content: PROMPT }], max_tokens: 100 } },
      KEY,
    );
    const deadline = Date.now() + 15_000;
    while (stack.fake.callsFor("up-a").length < 1 && Date.now() < deadline) await sleep(50);
    expect(stack.fake.callsFor("up-a")).toHaveLength(1);

    const cancel = await stack.request("DELETE", `/v1/jobs/${id}`, undefined, KEY);
    expect(cancel.status).toBe(202);
    const job = await stack.waitJob(id, 20_000, KEY);
    expect(job.status).toBe("cancelled");
    expect(job.cost_usd).toBeCloseTo(CHARGED_USD, 6);
    expect(job.attempts).toHaveLength(1);
    expect(job.attempts[0]).toMatchObject({ model: "a", provider: "p", outcome: "error" });
    expect(job.attempts[0].message).toMatch(/cancelled/);
    expect(job.attempts[0].reason).toBeUndefined();

    // The events replay the same attempt before `done`.
    const { events, ended } = await readEvents(`${stack.api.url}/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${KEY}` },
      timeoutMs: 5_000,
    });
    expect(ended).toBe(true);
    const attempts = events.filter((event) => event.event === "attempt").map((event) => event.data);
    expect(attempts).toEqual([job.attempts[0]]);
  });
});
