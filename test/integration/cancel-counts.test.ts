/**
 * A job cancelled where no worker holds it (queued, or waiting in the delayed set for a limit
 * after a billed hop) ends in the API, not in a worker: it is counted there as the jobs workers
 * end are. Before, it reached no counter at all: cascade_jobs_total had no cancelled job, and
 * what it had spent was in `/v1/usage`'s spend (settled with the call) but in neither
 * cascade_cost_usd_total nor the usage rows by route and model (billing audit).
 * Real API process, real Redis; the job's progress is written as a worker writes it.
 */
import {
  BatchStore,
  batchLineJobId,
  createKeys,
  drainLines,
  type FinishedRequest,
  QUEUE_NAMES,
  type RedisClient,
} from "@cascade/shared";
import { Job, Queue } from "bullmq";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chatRequest, fakeConfig, http, sleep } from "../e2e/helpers.js";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { testRedis } from "../support/redis-clients.js";

let dir: TempDir;
let api: CascadeApi;
let redis: RedisClient;
let queue: Queue;
let prefix: string;

beforeAll(async () => {
  dir = makeTempDir();
  prefix = uniquePrefix("cancelcounts");
  // No tenants: open mode, every request is the default tenant's.
  const config = fakeConfig("http://127.0.0.1:9/v1");
  const env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: prefix,
    CASCADE_CONFIG: dir.write("cascade.json", config),
    FAKE_KEY: "unused",
    LOG_LEVEL: "info",
  };
  api = await startApi({ env });
  redis = testRedis();
  queue = new Queue(QUEUE_NAMES.completions, {
    connection: redis as never,
    prefix: createKeys(prefix).bullPrefix,
  });
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  await queue?.close();
  redis?.disconnect();
  dir?.cleanup();
});

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const page = await (await fetch(`${api.url}/metrics`)).text();
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .sort();
  for (const line of page.split("\n")) {
    const match = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = (match[2] as string).split(",").sort();
    if (have.length === wanted.length && have.every((pair, index) => pair === wanted[index])) {
      return Number(match[3]);
    }
  }
  return 0;
}

/** A batch of three lines, handed to the queue (no worker runs here, so they stay queued). */
async function queuedBatch(label: string): Promise<string> {
  const lines = [1, 2, 3]
    .map((n) =>
      JSON.stringify({
        custom_id: `${label}-${n}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "default", messages: [{ role: "user", content: `${label} ${n}` }] },
      }),
    )
    .join("\n");
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([lines], { type: "application/jsonl" }), `${label}.jsonl`);
  const file = await (await fetch(`${api.url}/v1/files`, { method: "POST", body: form })).json();
  const created = await http(
    api.url,
    "POST",
    "/v1/batches",
    { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" },
    10_000,
  );
  expect(created.status).toBe(200);
  const batchId = created.body.id as string;
  // The API enqueues the lines in the background.
  for (let tries = 0; tries < 100 && !(await Job.fromId(queue, batchLineJobId(batchId, 3))); tries += 1)
    await sleep(50);
  expect(await Job.fromId(queue, batchLineJobId(batchId, 3))).toBeDefined();
  return batchId;
}

describe("a job cancelled where no worker holds it", () => {
  it("is counted in cascade_jobs_total, and what it had spent in the cost metric and usage rows", async () => {
    const labels = { route: "default", tenant: "default", status: "cancelled" };
    const before = await metric("cascade_jobs_total", labels);

    // A queued job that spent nothing.
    const queued = await http(api.url, "POST", "/v1/jobs", { request: chatRequest("hi") }, 10_000);
    expect(queued.status).toBe(202);
    expect((await http(api.url, "DELETE", `/v1/jobs/${queued.body.id}`, undefined, 10_000)).status).toBe(200);

    // A job whose first hop was billed (its progress, as a worker saves it before a wait).
    const billed = await http(api.url, "POST", "/v1/jobs", { request: chatRequest("hi") }, 10_000);
    const job = await Job.fromId(queue, billed.body.id);
    await job?.updateProgress({
      hop: 1,
      tries: 0,
      attempts: [],
      cost_usd: 0.25,
      started_at: Math.floor(Date.now() / 1000),
    });
    const cancelled = await http(api.url, "DELETE", `/v1/jobs/${billed.body.id}`, undefined, 10_000);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: "cancelled", cost_usd: 0.25 });

    // One shown running (an attempt made, waiting between tries): a 202, as for any running job,
    // though no worker held it, so it has ended cancelled already.
    const between = await http(api.url, "POST", "/v1/jobs", { request: chatRequest("hi") }, 10_000);
    await (await Job.fromId(queue, between.body.id))?.updateProgress({
      hop: 0,
      tries: 1,
      attempts: [
        {
          model: "primary",
          provider: "fake",
          outcome: "error",
          reason: "server_error",
          duration_ms: 5,
          started_at: Math.floor(Date.now() / 1000),
        },
      ],
      cost_usd: 0,
      started_at: Math.floor(Date.now() / 1000),
    });
    expect((await http(api.url, "GET", `/v1/jobs/${between.body.id}`, undefined, 10_000)).body.status).toBe(
      "running",
    );
    const stopped = await http(api.url, "DELETE", `/v1/jobs/${between.body.id}`, undefined, 10_000);
    expect(stopped.status).toBe(202);
    expect(stopped.body.status).toBe("cancelled");

    // One taken over after its worker died, waiting for a limit: its progress holds the call the
    // dead run left in flight, which that worker's recovery counted; not counted again here.
    const lost = await http(api.url, "POST", "/v1/jobs", { request: chatRequest("hi") }, 10_000);
    await (await Job.fromId(queue, lost.body.id))?.updateProgress({
      hop: 0,
      tries: 0,
      attempts: [
        {
          model: "primary",
          provider: "fake",
          outcome: "error",
          message: "the worker running this call stopped before it answered",
          duration_ms: 30_000,
          started_at: Math.floor(Date.now() / 1000),
        },
      ],
      cost_usd: 0.5,
      started_at: Math.floor(Date.now() / 1000),
      counted_calls: ["w1/job/1"],
      lost_usd: 0.5,
    });
    const lostCancel = await http(api.url, "DELETE", `/v1/jobs/${lost.body.id}`, undefined, 10_000);
    expect(lostCancel.body).toMatchObject({ status: "cancelled", cost_usd: 0.5 });

    expect(await metric("cascade_jobs_total", labels)).toBe(before + 4);
    expect(
      await metric("cascade_cost_usd_total", { tenant: "default", route: "default", model: "primary" }),
    ).toBe(0.25);
    // The usage rows are written every 200 ms.
    let usage = await http(api.url, "GET", "/v1/usage", undefined, 10_000);
    for (let tries = 0; tries < 50 && !usage.body.routes?.default; tries += 1) {
      await sleep(100);
      usage = await http(api.url, "GET", "/v1/usage", undefined, 10_000);
    }
    // A cancelled request counts in neither requests nor succeeded/failed; its spend counts.
    expect(usage.body.routes.default).toMatchObject({ requests: 0, cost_usd: 0.25 });
    expect(usage.body.models.primary).toMatchObject({ requests: 0, cost_usd: 0.25 });
  });
});

describe("a batch cancelled while its lines wait where no worker holds them", () => {
  it("counts each line it takes back as a cancelled job, and what a line had spent", async () => {
    const labels = { route: "default", tenant: "default", status: "cancelled" };
    const jobsBefore = await metric("cascade_jobs_total", labels);
    const costBefore = await metric("cascade_cost_usd_total", {
      tenant: "default",
      route: "default",
      model: "primary",
    });
    const batchId = await queuedBatch("line");
    // Line 1's job had a billed hop and waits between tries, as a worker leaves it.
    await (await Job.fromId(queue, batchLineJobId(batchId, 1)))?.updateProgress({
      hop: 1,
      tries: 0,
      attempts: [],
      cost_usd: 0.125,
      started_at: Math.floor(Date.now() / 1000),
    });
    const cancelled = await http(api.url, "POST", `/v1/batches/${batchId}/cancel`, undefined, 10_000);
    expect(cancelled.status).toBe(200);
    let batch = cancelled.body;
    for (let tries = 0; tries < 100 && batch.status !== "cancelled"; tries += 1) {
      await sleep(100);
      batch = (await http(api.url, "GET", `/v1/batches/${batchId}`, undefined, 10_000)).body;
    }
    expect(batch.status).toBe("cancelled");

    expect(await metric("cascade_jobs_total", labels)).toBe(jobsBefore + 3);
    expect(
      await metric("cascade_cost_usd_total", { tenant: "default", route: "default", model: "primary" }),
    ).toBeCloseTo(costBefore + 0.125, 9);
  });
});

describe("two drains of one batch's lines at once", () => {
  it("count each line they take back once", async () => {
    const batchId = await queuedBatch("twice");
    // A cancel (the API's drain, a sweeper's) drains while another does: both read each job
    // before either removes it, and BullMQ answers both removes 1.
    const store = new BatchStore(redis, createKeys(prefix), 3600);
    await store.transition(batchId, "cancel");
    const told: FinishedRequest[] = [];
    const counts = {
      observer: { finished: (request: FinishedRequest) => told.push(request) },
      now: () => Date.now(),
    };
    const deps = { store, queue: queue as never, logger: pino({ level: "silent" }), counts };
    const batch = { id: batchId, tenant: "default" };
    await Promise.all([
      drainLines(deps, batch, [1, 2, 3], "cancel"),
      drainLines(deps, batch, [1, 2, 3], "cancel"),
    ]);
    expect(told).toHaveLength(3);
    expect(told.every((request) => request.status === "cancelled")).toBe(true);
  });
});
