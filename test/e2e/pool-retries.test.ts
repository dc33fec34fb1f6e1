/**
 * A pooled hop keeps its own max_retries when its other deployments are open or cooling down
 * (contract, "Pools and fairness" and "Semantics" → Retries): a failure on one deployment tries
 * the others first, and where none of them may be called the failure is retried on the same hop
 * like a plain model's. The pool's blocked deployment is passed over silently on a retry (as on
 * any pick); it shows as a skipped attempt only where the hop ends on it. Both doors: a job and a
 * gateway request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./helpers.js";
import { chat, type ResilienceStack, startResilienceStack } from "./resilience-helpers.js";

// b opens on its first failure; a keeps the default breaker (10 calls before it may open).
const OPEN_AT_ONCE = { min_requests: 1, failure_threshold: 0.5, window_ms: 60_000, open_ms: 120_000 };

const outcomes = (job: Json) =>
  job.attempts.map((attempt: Json) => `${attempt.deployment}:${attempt.outcome}:${attempt.reason ?? ""}`);

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "pool-retries",
    workers: 1,
    config: (url: string) => ({
      providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
      models: {
        plain: { provider: "p", name: "up-plain" },
        cooled: {
          strategy: "weighted",
          deployments: [
            { id: "c", provider: "p", name: "up-c", weight: 1 },
            { id: "d", provider: "p", name: "up-d", weight: 1000 },
          ],
        },
        pooled: {
          strategy: "weighted",
          deployments: [
            { id: "a", provider: "p", name: "up-a", weight: 1 },
            // Picked first while it is closed, so the first job is what opens it.
            { id: "b", provider: "p", name: "up-b", weight: 1000, breaker: OPEN_AT_ONCE },
          ],
        },
      },
      routes: {
        retried: { chain: [{ model: "pooled", max_retries: 2 }] },
        unretried: { chain: [{ model: "pooled" }] },
        cooled_retried: { deadline_ms: 5_000, chain: [{ model: "cooled", max_retries: 2 }] },
        plain_retried: { chain: [{ model: "plain", max_retries: 2 }] },
      },
    }),
  });
  // b fails once and opens: the first job goes b (500) → a (ok).
  stack.fake.setDefault("up-b", { kind: "server_error" });
  const opener = await stack.waitJob(await stack.submit({ request: chat("open b"), route: "retried" }));
  expect(opener.attempts.map((attempt: Json) => attempt.deployment)).toEqual(["b", "a"]);
  const providers = await stack.request("GET", "/v1/providers");
  const b = providers.body.data[0].models.find((model: Json) => model.deployment === "b");
  expect(b.breaker.state).toBe("open");
});

afterAll(async () => {
  await stack?.close();
});

describe("a pooled hop with one deployment open or cooling down", () => {
  it("control: a plain model's hop retries a 500 (max_retries 2)", async () => {
    stack.fake.script("up-plain", { kind: "server_error" });
    const job = await stack.waitJob(await stack.submit({ request: chat("plain"), route: "plain_retried" }));
    expect(job.status).toBe("succeeded");
    expect(job.attempts.map((attempt: Json) => attempt.outcome)).toEqual(["error", "success"]);
  });

  it("job: a 500 on the closed deployment is retried under max_retries, not given up because the other is open", async () => {
    stack.fake.script("up-a", { kind: "server_error" });
    const callsBefore = stack.fake.callsFor("up-a").length;
    const job = await stack.waitJob(await stack.submit({ request: chat("retry on a"), route: "retried" }));
    // Was: failed, all_models_failed, attempts [a error server_error, b skipped circuit_open],
    // one call to a: the hop's two retries were never used.
    expect({ status: job.status, error: job.error }).toEqual({ status: "succeeded", error: null });
    expect(stack.fake.callsFor("up-a").length - callsBefore).toBe(2);
    // The retry passes the open b over, as any pick does: no skipped attempt in between.
    expect(outcomes(job)).toEqual(["a:error:server_error", "a:success:"]);
  });

  it("job: where the hop ends (no retries left), the skip still says why b was not called", async () => {
    stack.fake.script("up-a", { kind: "server_error" });
    const job = await stack.waitJob(await stack.submit({ request: chat("no retries"), route: "unretried" }));
    expect(job.status).toBe("failed");
    expect(job.error.type).toBe("all_models_failed");
    expect(outcomes(job)).toEqual(["a:error:server_error", "b:skipped:circuit_open"]);
  });

  it("job: retries used up on a end with one skip for b", async () => {
    for (let index = 0; index < 3; index += 1) stack.fake.script("up-a", { kind: "server_error" });
    const job = await stack.waitJob(await stack.submit({ request: chat("all fail"), route: "retried" }));
    expect(job.status).toBe("failed");
    expect(outcomes(job)).toEqual([
      "a:error:server_error",
      "a:error:server_error",
      "a:error:server_error",
      "b:skipped:circuit_open",
    ]);
  });

  it("gateway: the same hop answers 200 after retrying a, not 502", async () => {
    stack.fake.script("up-a", { kind: "server_error" });
    const response = await fetch(`${stack.api.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ route: "retried", messages: [{ role: "user", content: "gateway retry on a" }] }),
    });
    const body = await response.json();
    // Was: 502 api_error all_models_failed ("pooled: server_error; pooled: circuit_open").
    expect({ status: response.status, error: body.error }).toEqual({ status: 200, error: undefined });
  });

  it("job: the same with the other deployment cooling down past the job's deadline", async () => {
    // d answers 429 with Retry-After 120 s once: d cools down, c answers.
    stack.fake.script("up-d", { kind: "rate_limited", retryAfterSeconds: 120 });
    const cooler = await stack.waitJob(
      await stack.submit({ request: chat("cool d"), route: "cooled_retried" }),
    );
    expect(outcomes(cooler)).toEqual(["d:error:rate_limited", "c:success:"]);
    stack.fake.script("up-c", { kind: "server_error" });
    const job = await stack.waitJob(
      await stack.submit({ request: chat("retry on c"), route: "cooled_retried" }),
    );
    // Was: failed all_models_failed, attempts [c error server_error, d skipped rate_limited].
    expect({ status: job.status, error: job.error }).toEqual({ status: "succeeded", error: null });
    expect(outcomes(job)).toEqual(["c:error:server_error", "c:success:"]);
  });
});
