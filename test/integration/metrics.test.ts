/**
 * Metrics (contract, "Operations") across real processes: an API and a worker on a real Redis,
 * the fake OpenAI upstream over real HTTP. A job whose first model answers 500 falls back to the
 * second and is delivered by webhook; a streamed gateway request is answered by the first model.
 * The API's GET /metrics (admin key) and the worker's METRICS_PORT are then scraped and parsed:
 * exact label values, histogram counts, cost, the cluster gauges, and no job or request id in any
 * label.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chatRequest, FAKE_KEY_VALUE, fakeConfig } from "../e2e/helpers.js";
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
import { findFreePort } from "../support/redis-server.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const OPS_KEY = "sk-ops-metrics-5b1e0c";
const auth = { authorization: `Bearer ${OPS_KEY}` };

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the Prometheus text format strictly enough to catch a malformed page: every sample
 * belongs to a family declared by `# HELP` and `# TYPE` lines before it, and every line is a
 * comment or `name{label="value",...} number`.
 */
function parseExposition(page: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: Sample[] = [];
  for (const line of page.split("\n")) {
    if (line === "") continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (comment) {
      if (comment[1] === "HELP") helped.add(comment[2] as string);
      else types.set(comment[2] as string, comment[3] as string);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`not a Prometheus sample line: ${line}`);
    const name = sample[1] as string;
    const family = [name, name.replace(/_(bucket|sum|count)$/, "")].find((each) => types.has(each));
    if (!family || !helped.has(family)) throw new Error(`sample of an undeclared family: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = pair[2] as string;
    }
    const value = Number(sample[3]);
    // prom-client writes "Nan" (an event loop with no samples yet); Prometheus parses floats as
    // Go's ParseFloat does, case-insensitively.
    if (Number.isNaN(value) && sample[3]?.toLowerCase() !== "nan") throw new Error(`not a number: ${line}`);
    samples.push({ name, labels, value });
  }
  return { samples, types };
}

/** The value of the one sample with exactly these labels (undefined when there is none). */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.filter(
    (sample) =>
      sample.name === name &&
      Object.keys(sample.labels).length === wanted.length &&
      wanted.every(([key, value]) => sample.labels[key] === value),
  );
  expect(found.length, `${name}${JSON.stringify(labels)}`).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

let fake: FakeOpenAI;
let sink: WebhookSink;
let dir: TempDir;
let api: CascadeApi;
let metricsPort: number;
let env: Record<string, string>;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  sink = await startWebhookSink();
  dir = makeTempDir();
  metricsPort = await findFreePort();
  const config = {
    ...fakeConfig(fake.url),
    tenants: { ops: { api_keys_env: "OPS_KEYS", admin: true } },
    webhooks: { allow_private_networks: true },
  };
  env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("metrics"),
    CASCADE_CONFIG: dir.write("cascade.json", config),
    FAKE_KEY: FAKE_KEY_VALUE,
    OPS_KEYS: OPS_KEY,
    LOG_LEVEL: "info",
    WORKER_CONCURRENCY: "4",
    WORKER_LOCK_DURATION_MS: "2000",
  };
  // The worker starts later: the job waits in the queue first (oldest waiting age, queue wait).
  api = await startApi({ env });
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  await fake?.close();
  await sink?.close();
  dir?.cleanup();
});

async function scrape(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const page = await response.text();
  return { status: response.status, contentType: response.headers.get("content-type"), page };
}

async function waitForJob(jobId: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 20_000;
  while (true) {
    const response = await fetch(`${api.url}/v1/jobs/${jobId}?wait=5`, { headers: auth });
    const job = (await response.json()) as Record<string, unknown>;
    if (!["queued", "running"].includes(job.status as string)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not end: ${JSON.stringify(job)}`);
  }
}

describe("metrics", () => {
  const ids: string[] = [];

  it("counts a fallen-back job, a streamed gateway request and the cluster gauges", async () => {
    fake.setDefault("up-primary", { kind: "server_error" });
    fake.setDefault("up-backup", { kind: "ok", content: "backup says hello" });
    const created = await fetch(`${api.url}/v1/jobs`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ request: chatRequest("metrics, please"), webhook: { url: sink.url } }),
    });
    expect(created.status).toBe(202);
    const jobId = ((await created.json()) as { id: string }).id;
    ids.push(jobId);

    // Queued with no worker yet: the API's gauges see it waiting.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await scrape(`${api.url}/metrics`)).status).toBe(401);
    const waiting = parseExposition((await scrape(`${api.url}/metrics`, auth)).page).samples;
    expect(
      sampleValue(waiting, "cascade_queue_oldest_waiting_seconds", { queue: "completions" }),
    ).toBeGreaterThan(1);
    const queued =
      (sampleValue(waiting, "cascade_queue_jobs", { queue: "completions", state: "waiting" }) ?? 0) +
      (sampleValue(waiting, "cascade_queue_jobs", { queue: "completions", state: "prioritized" }) ?? 0);
    expect(queued).toBe(1);

    const worker = await startWorker({ env: { ...env, METRICS_PORT: String(metricsPort) } });
    expect(worker.logs().find((line) => line.msg === "cascade worker started")?.metrics_port).toBe(
      metricsPort,
    );
    const job = await waitForJob(jobId);
    expect(job).toMatchObject({ status: "succeeded", model: "backup" });
    await sink.waitForRequests(1, 10_000);

    // The gateway: streamed, answered by the first model.
    fake.setDefault("up-primary", { kind: "ok", content: "primary streams", chunkDelayMs: 5 });
    const streamed = await fetch(`${api.url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ model: "default", ...chatRequest("stream it"), stream: true }),
    });
    expect(streamed.status).toBe(200);
    const text = await streamed.text();
    expect(text).toContain("data: [DONE]");
    const requestId = streamed.headers.get("x-request-id");
    if (requestId) ids.push(requestId);

    const apiPage = await scrape(`${api.url}/metrics`, auth);
    expect(apiPage.status).toBe(200);
    expect(apiPage.contentType).toContain("text/plain");
    const apiMetrics = parseExposition(apiPage.page);
    const fromApi = apiMetrics.samples;
    expect(apiMetrics.types.get("cascade_gateway_requests_total")).toBe("counter");
    expect(apiMetrics.types.get("cascade_time_to_first_token_seconds")).toBe("histogram");
    expect(apiMetrics.types.get("cascade_queue_oldest_waiting_seconds")).toBe("gauge");
    expect(
      sampleValue(fromApi, "cascade_gateway_requests_total", {
        route: "default",
        tenant: "ops",
        status: "succeeded",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromApi, "cascade_time_to_first_token_seconds_count", {
        provider: "fake",
        model: "primary",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromApi, "cascade_attempts_total", {
        provider: "fake",
        model: "primary",
        outcome: "success",
        reason: "none",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromApi, "cascade_cost_usd_total", { tenant: "ops", route: "default", model: "primary" }),
    ).toBeGreaterThan(0);
    // Jobs are counted where they run, not by the API that queued them.
    expect(fromApi.some((sample) => sample.name === "cascade_jobs_total")).toBe(false);
    expect(sampleValue(fromApi, "cascade_queue_oldest_waiting_seconds", { queue: "completions" })).toBe(0);
    expect(sampleValue(fromApi, "cascade_queue_jobs", { queue: "completions", state: "completed" })).toBe(1);
    // The webhook deliveries' queue too: a backlog of deliveries shows in the same gauges.
    expect(sampleValue(fromApi, "cascade_queue_jobs", { queue: "webhooks", state: "waiting" })).toBeDefined();
    expect(sampleValue(fromApi, "cascade_queue_oldest_waiting_seconds", { queue: "webhooks" })).toBe(0);
    expect(sampleValue(fromApi, "cascade_breaker_state", { breaker: "provider:fake", state: "closed" })).toBe(
      1,
    );
    expect(fromApi.some((sample) => sample.name === "process_cpu_user_seconds_total")).toBe(true);

    const workerPage = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(workerPage.status).toBe(200);
    const fromWorker = parseExposition(workerPage.page).samples;
    expect(
      sampleValue(fromWorker, "cascade_jobs_total", { route: "default", tenant: "ops", status: "succeeded" }),
    ).toBe(1);
    expect(
      sampleValue(fromWorker, "cascade_attempts_total", {
        provider: "fake",
        model: "primary",
        outcome: "error",
        reason: "server_error",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromWorker, "cascade_fallbacks_total", {
        route: "default",
        from: "primary",
        to: "backup",
        reason: "server_error",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromWorker, "cascade_hop_duration_seconds_count", {
        provider: "fake",
        model: "primary",
        outcome: "error",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromWorker, "cascade_hop_duration_seconds_count", {
        provider: "fake",
        model: "backup",
        outcome: "success",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromWorker, "cascade_cost_usd_total", { tenant: "ops", route: "default", model: "backup" }),
    ).toBeGreaterThan(0);
    expect(sampleValue(fromWorker, "cascade_queue_wait_seconds_count", { route: "default" })).toBe(1);
    expect(sampleValue(fromWorker, "cascade_queue_wait_seconds_sum", { route: "default" })).toBeGreaterThan(
      1,
    );
    expect(
      sampleValue(fromWorker, "cascade_job_duration_seconds_count", {
        route: "default",
        status: "succeeded",
      }),
    ).toBe(1);
    expect(
      sampleValue(fromWorker, "cascade_job_duration_seconds_bucket", {
        route: "default",
        status: "succeeded",
        le: "+Inf",
      }),
    ).toBe(1);
    expect(sampleValue(fromWorker, "cascade_webhook_deliveries_total", { outcome: "delivered" })).toBe(1);

    // Bounded labels: no job or request id anywhere.
    for (const sample of [...fromApi, ...fromWorker]) {
      for (const value of Object.values(sample.labels)) {
        expect(value).not.toMatch(/^(job|req|chatcmpl)_|^job_|^req_/);
        for (const id of ids) expect(value).not.toContain(id);
      }
    }
  });

  it("counts an operator's forced breaker state as a transition, and shows the breaker open", async () => {
    const override = (state: string) =>
      fetch(`${api.url}/v1/providers/fake/breaker`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ state }),
      });
    expect((await override("open")).status).toBe(200);
    const { samples } = parseExposition((await scrape(`${api.url}/metrics`, auth)).page);
    expect(
      sampleValue(samples, "cascade_breaker_transitions_total", { breaker: "provider:fake", to: "open" }),
    ).toBe(1);
    expect(sampleValue(samples, "cascade_breaker_state", { breaker: "provider:fake", state: "open" })).toBe(
      1,
    );
    // Forcing it open again moves nothing; releasing it into its own (closed) state is a move.
    expect((await override("open")).status).toBe(200);
    expect((await override("auto")).status).toBe(200);
    const after = parseExposition((await scrape(`${api.url}/metrics`, auth)).page).samples;
    expect(
      sampleValue(after, "cascade_breaker_transitions_total", { breaker: "provider:fake", to: "open" }),
    ).toBe(1);
    expect(
      sampleValue(after, "cascade_breaker_transitions_total", { breaker: "provider:fake", to: "closed" }),
    ).toBe(
      (sampleValue(samples, "cascade_breaker_transitions_total", {
        breaker: "provider:fake",
        to: "closed",
      }) ?? 0) + 1,
    );
  });

  it("serves nothing but GET /metrics on the worker's port", async () => {
    expect((await scrape(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404);
    expect((await scrape(`http://127.0.0.1:${metricsPort}/metricsx`)).status).toBe(404);
    const post = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: "POST" });
    expect(post.status).toBe(404);
  });
});
