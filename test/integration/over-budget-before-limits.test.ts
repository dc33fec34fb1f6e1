/**
 * A request the tenant's budget cannot pay for is over_budget at once (429 insufficient_quota,
 * attempts and metrics reason over_budget), also when the tenant's rpm bucket has no token at that
 * moment: admit.lua asks the budgets first. Asked after the buckets, the admission booked a place
 * in the rate-limit line (taking a token) and was refused at its turn, again and again until its
 * deadline, then reported rate_limited (429 rate_limit_error after the whole deadline; a job
 * failed skipped:rate_limited after its deadline_ms); meanwhile every booking took one of the
 * tenant's rpm tokens. Real API process, real Redis, the fake OpenAI upstream over real HTTP.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { call, FAKE_KEY_VALUE } from "../e2e/helpers.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";

const ADMIN = "sk-audit-budget-admin-77aa";
const TENANT = "sk-audit-budget-acme-3c4d";
let fake: FakeOpenAI;
let dir: TempDir;
let api: CascadeApi;
let env: Record<string, string>;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  dir = makeTempDir();
  const config = {
    providers: { fake: { type: "openai", base_url: fake.url, api_key_env: "FAKE_KEY" } },
    models: {
      alpha: { provider: "fake", name: "up-alpha", price: { input_per_mtok: 1, output_per_mtok: 2 } },
    },
    routes: { default: { chain: [{ model: "alpha" }] } },
    tenants: {
      ops: { api_keys_env: "BUDGET_OPS_KEYS", admin: true },
      // rpm 60: a bucket of one token, one more a second. A budget of $0.0002.
      acme: { api_keys_env: "BUDGET_ACME_KEYS", limits: { rpm: 60 }, budget: { daily_usd: 0.0002 } },
    },
  };
  env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("budgetrl"),
    CASCADE_CONFIG: dir.write("cascade.json", config),
    FAKE_KEY: FAKE_KEY_VALUE,
    BUDGET_OPS_KEYS: ADMIN,
    BUDGET_ACME_KEYS: TENANT,
  };
  api = await startApi({ env });
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  await fake?.close();
  dir?.cleanup();
});

/** The value of the one sample `name{labels}` on a Prometheus text page (undefined when absent). */
function sample(page: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of page.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      have[pair[1] as string] = pair[2] as string;
    }
    const wanted = Object.entries(labels);
    if (Object.keys(have).length === wanted.length && wanted.every(([key, value]) => have[key] === value)) {
      return Number(match[3]);
    }
  }
  return undefined;
}

/** ~2,500 characters: an estimate of ~635 prompt tokens, $0.000645 at these prices (> the budget). */
const tooDear = {
  model: "default",
  messages: [{ role: "user", content: "word ".repeat(500) }],
  max_tokens: 5,
};

async function gateway(
  body: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
): Promise<{ status: number; body: Record<string, any>; ms: number; fallbacks: string | null }> {
  const started = Date.now();
  const response = await fetch(`${api.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${TENANT}`,
      "content-type": "application/json",
      "x-cascade-deadline-ms": "5000",
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
    body: (await response.json()) as Record<string, any>,
    ms: Date.now() - started,
    fallbacks: response.headers.get("x-cascade-fallbacks"),
  };
}

/** Waits for the rpm bucket's one token to be back, then spends it on a cheap request the budget can pay. */
async function takeTheOnlyToken(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const cheap = await gateway({
    model: "default",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 1,
  });
  expect(cheap.status).toBe(200);
}

describe("a request over the tenant's budget", () => {
  it("is over_budget at once while the rpm bucket has a token (control)", async () => {
    const answer = await gateway(tooDear);
    expect(answer.status).toBe(429);
    expect(answer.body.error.code).toBe("over_budget");
  });

  it("is over_budget at once, not rate_limited after the deadline, when the rpm bucket is empty", async () => {
    await takeTheOnlyToken();
    const answer = await gateway(tooDear);
    // It was 429 rate_limit_error / rate_limited after ~5 s (the whole deadline), "alpha:rate_limited".
    expect({ status: answer.status, code: answer.body.error?.code, fallbacks: answer.fallbacks }).toEqual({
      status: 429,
      code: "over_budget",
      fallbacks: "alpha:over_budget",
    });
    expect(answer.ms).toBeLessThan(2_000);

    const page = (await call(api.url, "GET", "/metrics", ADMIN)).body as string;
    const skipped = (reason: string) =>
      sample(page, "cascade_attempts_total", {
        provider: "fake",
        model: "alpha",
        outcome: "skipped",
        reason,
      }) ?? 0;
    expect({ over_budget: skipped("over_budget"), rate_limited: skipped("rate_limited") }).toEqual({
      over_budget: 2,
      rate_limited: 0,
    });
  });
});

describe("a job over the tenant's budget", () => {
  it("fails at once with an over_budget skip when the rpm bucket is empty, not rate_limited at its deadline", async () => {
    await startWorker({ env: { ...env, WORKER_CONCURRENCY: "2" } });
    await takeTheOnlyToken();
    const started = Date.now();
    const created = await call(api.url, "POST", "/v1/jobs", TENANT, {
      request: { messages: tooDear.messages, max_tokens: 5 },
      deadline_ms: 8_000,
    });
    expect(created.status).toBe(202);
    let job = created.body;
    while (["queued", "running"].includes(job.status) && Date.now() - started < 30_000) {
      job = (await call(api.url, "GET", `/v1/jobs/${created.body.id}?wait=5`, TENANT)).body;
    }
    const tookMs = Date.now() - started;
    // It failed after the whole 8 s deadline, "alpha: rate_limited" (no bucket capacity ...).
    expect({
      status: job.status,
      attempts: job.attempts?.map(
        (attempt: { outcome: string; reason: string }) => `${attempt.outcome}:${attempt.reason}`,
      ),
    }).toEqual({ status: "failed", attempts: ["skipped:over_budget"] });
    expect(tookMs).toBeLessThan(4_000);
  });
});
