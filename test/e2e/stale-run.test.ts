/**
 * A run that lost its lock changes nothing, with real processes: worker A takes jobs, is
 * SIGSTOPped mid-call past its lock (WORKER_LOCK_DURATION_MS=2000), worker B recovers and runs
 * the jobs, then A is SIGCONTed with its upstream answers waiting in its sockets. Whatever A then
 * does, the webhook, the batch line, the job's progress and a streaming job's events are the
 * stored job's, written once, by B's run.
 */
import type { RedisClient } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  type CascadeProcess,
  killAllCascadeProcesses,
  makeTempDir,
  startApi,
  startWorker,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { testRedis } from "../support/redis-clients.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";
import {
  chatRequest,
  FAKE_KEY_VALUE,
  fakeConfig,
  http,
  type Json,
  postJob,
  sleep,
  until,
  waitForTerminal,
} from "./helpers.js";

let fake: FakeOpenAI;
let sink: WebhookSink;
let dir: TempDir;
let api: CascadeApi;
let redis: RedisClient;
let prefix: string;
let env: Record<string, string>;
const workers: CascadeProcess[] = [];

const spawnWorker = async (name: string) => {
  const worker = await startWorker({ name, env: { ...env, WORKER_CONCURRENCY: "4" } });
  workers.push(worker);
  return worker;
};

beforeAll(async () => {
  fake = await startFakeOpenAI();
  sink = await startWebhookSink();
  dir = makeTempDir();
  redis = testRedis();
  prefix = uniquePrefix("stale");
  const config = {
    ...fakeConfig(fake.url, { primaryTimeoutMs: 30_000 }),
    webhooks: { allow_private_networks: true, max_attempts: 3, retry_schedule_ms: [200] },
  };
  env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: prefix,
    CASCADE_CONFIG: dir.write("cascade.json", config),
    FAKE_KEY: FAKE_KEY_VALUE,
    LOG_LEVEL: "info",
    WORKER_LOCK_DURATION_MS: "2000",
  };
  api = await startApi({ env });
});

/** Stops this scenario's workers (graceful, so no job is left locked) and forgets the fake's state. */
async function stopWorkers(): Promise<void> {
  for (const worker of workers) worker.kill("SIGCONT");
  await Promise.all(workers.splice(0).map((worker) => worker.stop(5_000)));
  fake.reset();
}

afterAll(async () => {
  await killAllCascadeProcesses();
  await Promise.all([fake?.close(), sink?.close()]);
  redis?.disconnect();
  dir?.cleanup();
});

/** Uploads a JSONL batch input and starts a batch over it; returns the batch id. */
async function startBatch(lines: Json[]): Promise<string> {
  const form = new FormData();
  form.append("purpose", "batch");
  const text = `${lines.map((line) => JSON.stringify(line)).join("\n")}\n`;
  form.append("file", new Blob([text], { type: "application/jsonl" }), "input.jsonl");
  const uploaded = await fetch(`${api.url}/v1/files`, { method: "POST", body: form });
  const file = (await uploaded.json()) as Json;
  expect(uploaded.status, JSON.stringify(file)).toBe(200);
  const batch = await http(api.url, "POST", "/v1/batches", {
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  expect(batch.status, JSON.stringify(batch.body)).toBe(200);
  return batch.body.id;
}

async function waitForBatch(batchId: string, timeoutMs = 30_000): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const batch = await http(api.url, "GET", `/v1/batches/${batchId}`);
    if (["completed", "failed", "cancelled", "expired"].includes(batch.body.status)) return batch.body;
    await sleep(100);
  }
  throw new Error(`batch ${batchId} did not end within ${timeoutMs} ms`);
}

const lostLockLog = (worker: CascadeProcess, jobId: string) =>
  worker.waitForLog(
    (log) => log.job_id === jobId && typeof log.msg === "string" && log.msg.includes("lock"),
    15_000,
  );

describe("a run that lost its lock changes nothing", () => {
  describe("worker A stopped past its lock while two jobs' answers arrive", () => {
    let jobId: string;
    let batchId: string;
    let workerA: CascadeProcess;
    /** GET /v1/jobs/:id right after the first webhook request arrived. */
    let statusAtDelivery: string;

    beforeAll(async () => {
      // A's calls answer (stale) while A is stopped; B's calls answer (fresh) after A resumes.
      const stale = { kind: "ok" as const, content: "stale answer", delayMs: 500 };
      const fresh = { kind: "ok" as const, content: "fresh answer", delayMs: 3_000 };
      fake.script("up-primary", stale, stale, fresh, fresh);
      workerA = await spawnWorker("worker-A");
      const created = await postJob(api.url, {
        request: chatRequest("webhook job"),
        webhook: { url: sink.url },
      });
      expect(created.status).toBe(202);
      jobId = created.body.id;
      batchId = await startBatch([
        { custom_id: "line-1", method: "POST", url: "/v1/chat/completions", body: chatRequest("batch line") },
      ]);
      await until(() => fake.callsFor("up-primary").length === 2, "worker A's two upstream calls");
      workerA.kill("SIGSTOP");

      // B recovers both jobs once A's locks expire; A resumes while B's calls are in flight.
      await spawnWorker("worker-B");
      await until(() => fake.callsFor("up-primary").length === 4, "worker B's two upstream calls", 20_000);
      workerA.kill("SIGCONT");

      await until(() => sink.requests.length >= 1, "the webhook", 20_000);
      statusAtDelivery = (await http(api.url, "GET", `/v1/jobs/${jobId}`)).body.status;
      await waitForTerminal(api.url, jobId, 20_000);
      await waitForBatch(batchId);
      // A has run on with its own (stale) answers: give it time to try writing.
      await lostLockLog(workerA, jobId);
      await sleep(2_000);
    }, 90_000);
    afterAll(stopWorkers);

    it("sends the webhook only once the job has ended in Redis", () => {
      expect(statusAtDelivery, "the webhook came before the job ended").toBe("succeeded");
    });

    it("sends one delivery, one webhook-id, whose data is the stored job", async () => {
      const job = await waitForTerminal(api.url, jobId);
      expect(job.result.choices[0].message.content).toBe("fresh answer");
      const requests = sink.requests.filter((request) => JSON.parse(request.body).data.id === jobId);
      expect(requests).toHaveLength(1);
      const delivered = JSON.parse(requests[0]?.body ?? "{}");
      expect(delivered.type).toBe("job.succeeded");
      expect(delivered.data).toEqual(job);
      const deliveries = await http(api.url, "GET", "/v1/webhook-deliveries");
      const ofJob = deliveries.body.data.filter((delivery: Json) => delivery.job_id === jobId);
      expect(ofJob).toHaveLength(1);
      expect(ofJob[0]).toMatchObject({ status: "delivered", attempts: 1 });
      expect(requests[0]?.headers["webhook-id"]).toBe(ofJob[0].webhook_id);
    });

    it("counts each job once in /v1/usage: the stale run's answer is not a request that ended", async () => {
      const requests = async () => {
        const usage = await http(api.url, "GET", "/v1/usage");
        const routes = Object.values(usage.body.routes ?? {}) as Array<{
          requests: number;
          succeeded: number;
        }>;
        return {
          requests: routes.reduce((sum, route) => sum + route.requests, 0),
          succeeded: routes.reduce((sum, route) => sum + route.succeeded, 0),
        };
      };
      const deadline = Date.now() + 10_000;
      while ((await requests()).requests < 2 && Date.now() < deadline) await sleep(100);
      // Both workers' recorders write every 200 ms: a second count would be in by now.
      await sleep(1_500);
      expect(await requests()).toEqual({ requests: 2, succeeded: 2 });
    });

    it("counts the stale run's spend in the usage rows and the spend alike (the books agree)", async () => {
      // A's answers were billed: they are in the spend (settled with each call) and must be in the
      // rows by route and model too, though A's run ended no request (written every 200 ms).
      const books = async () => {
        const usage = await http(api.url, "GET", "/v1/usage");
        const rows = Object.values(usage.body.routes ?? {}) as Array<{ cost_usd: number }>;
        const models = Object.values(usage.body.models ?? {}) as Array<{ cost_usd: number }>;
        const sum = (list: Array<{ cost_usd: number }>) =>
          list.reduce((total, row) => total + row.cost_usd, 0);
        return { spend: usage.body.cost_usd as number, routes: sum(rows), models: sum(models) };
      };
      let seen = await books();
      const deadline = Date.now() + 10_000;
      while (Math.abs(seen.routes - seen.spend) > 1e-9 && Date.now() < deadline) {
        await sleep(100);
        seen = await books();
      }
      expect(seen.spend).toBeGreaterThan(0);
      expect(seen.routes).toBeCloseTo(seen.spend, 9);
      expect(seen.models).toBeCloseTo(seen.spend, 9);
    });

    it("records the batch line once, as the stored result of its job", async () => {
      const batch = await waitForBatch(batchId);
      expect(batch).toMatchObject({
        status: "completed",
        request_counts: { total: 1, completed: 1, failed: 0 },
      });
      const content = await fetch(`${api.url}/v1/files/${batch.output_file_id}/content`);
      const lines = (await content.text()).split("\n").filter(Boolean);
      expect(lines).toHaveLength(1);
      const line = JSON.parse(lines[0] ?? "{}");
      const lineJob = await waitForTerminal(api.url, line.response.request_id);
      expect(line.response.body).toEqual(lineJob.result);
      expect(line.response.body.choices[0].message.content).toBe("fresh answer");
    });
  });

  describe("a streaming job", () => {
    afterAll(stopWorkers);

    it("keeps the events and progress of the run that took it over", async () => {
      // A's call fails after A is stopped: resumed, A would record the attempt, save progress
      // and fall back to `backup`. B's call succeeds at once.
      fake.script(
        "up-primary",
        { kind: "status", status: 500, delayMs: 1_000 },
        { kind: "ok", content: "fresh answer" },
      );
      const workerA = await spawnWorker("worker-A");
      const created = await postJob(api.url, { request: chatRequest("streaming job", { stream: true }) });
      expect(created.status).toBe(202);
      const jobId: string = created.body.id;
      await until(() => fake.callsFor("up-primary").length === 1, "worker A's upstream call");
      workerA.kill("SIGSTOP");

      await spawnWorker("worker-B");
      const job = await waitForTerminal(api.url, jobId, 25_000);
      expect(job.result?.choices[0].message.content, JSON.stringify(job)).toBe("fresh answer");
      const eventsKey = `{${prefix}}:job-events:${jobId}`;
      const jobKey = `{${prefix}}:completions:${jobId}`;
      const eventsBefore = await redis.xrange(eventsKey, "-", "+");
      const progressBefore = await redis.hget(jobKey, "progress");
      expect(eventsBefore.at(-1)?.[1]).toContain("done");

      workerA.kill("SIGCONT");
      await lostLockLog(workerA, jobId);
      await sleep(2_000);

      expect(await redis.xrange(eventsKey, "-", "+")).toEqual(eventsBefore);
      expect(await redis.hget(jobKey, "progress")).toEqual(progressBefore);
      expect(await waitForTerminal(api.url, jobId)).toEqual(job);
      // Nor did A go on to call the next hop: its run stopped at its first refused write.
      expect(fake.callsFor("up-backup")).toHaveLength(0);
    }, 90_000);
  });
});
