/**
 * A webhook delivery in flight on a worker that is SIGKILLed is recovered by another worker as
 * soon as the configured lock allows (WORKER_LOCK_DURATION_MS, as for completion jobs), not after
 * a fixed 30 s lock and 30 s stalled checks: measured before the fix, with a 5 s lock and a kill
 * every 2 s, first deliveries came up to 72 s after their job ended and 486 of 2,000 jobs were
 * delivered twice 55–75 s apart.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  chatRequest,
  FAKE_KEY_VALUE,
  fakeConfig,
  http,
  type Json,
  postJob,
  sleep,
  waitForTerminal,
} from "../e2e/helpers.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  killAllCascadeProcesses,
  makeTempDir,
  startApi,
  startWorker,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const LOCK_MS = 2_000;

let fake: FakeOpenAI;
let sink: WebhookSink;
let dir: TempDir;
let api: CascadeApi;
let env: Record<string, string>;

beforeAll(async () => {
  [fake, sink] = await Promise.all([startFakeOpenAI(), startWebhookSink()]);
  dir = makeTempDir("cascade-chaos-");
  const config = {
    ...fakeConfig(fake.url),
    webhooks: { allow_private_networks: true, max_attempts: 3, retry_schedule_ms: [200] },
  };
  env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("chaoswebhook"),
    CASCADE_CONFIG: dir.write("cascade.json", config),
    FAKE_KEY: FAKE_KEY_VALUE,
    LOG_LEVEL: "info",
    WORKER_CONCURRENCY: "4",
    WORKER_LOCK_DURATION_MS: String(LOCK_MS),
  };
  api = await startApi({ env });
});

afterAll(async () => {
  await killAllCascadeProcesses();
  await Promise.all([fake?.close(), sink?.close()]);
  dir?.cleanup();
});

describe("a webhook delivery in flight on a SIGKILLed worker", () => {
  it("is delivered again by another worker within the configured lock, same webhook-id", async () => {
    // The first delivery reaches the receiver, which holds it unanswered: it is in flight.
    sink.respondWith({ hang: true });
    const workerA = await startWorker({ name: "worker-A", env });
    const created = await postJob(api.url, {
      request: chatRequest("webhook in flight"),
      webhook: { url: sink.url },
    });
    expect(created.status).toBe(202);
    const jobId: string = created.body.id;
    const job = await waitForTerminal(api.url, jobId, 15_000);
    expect(job.status).toBe("succeeded");
    await sink.waitForRequests(1, 15_000);

    const workerB = await startWorker({ name: "worker-B", env });
    workerA.kill("SIGKILL");
    await workerA.waitForExit();
    const killedAt = Date.now();

    // Recovery takes at most lock + 2 × stalled interval (both the lock here); a margin for a busy
    // machine. A 30 s lock would take 30-90 s.
    const boundMs = 3 * LOCK_MS + 6_000;
    const [first, second] = await sink.waitForRequests(2, boundMs).catch((error: Error) => {
      throw new Error(`${error.message} within ${boundMs} ms of the kill\n${workerB.describe()}`);
    });
    const recoveredAfterMs = (second?.receivedAt ?? 0) - killedAt;
    console.log(`webhook recovered ${recoveredAfterMs} ms after its worker was killed (lock ${LOCK_MS} ms)`);
    expect(second?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
    expect(JSON.parse(second?.body ?? "{}").data).toEqual(job);

    // The record follows the receiver's answer by a moment.
    const ofJob = async (): Promise<Json[]> => {
      const deliveries = await http(api.url, "GET", "/v1/webhook-deliveries");
      return deliveries.body.data.filter((delivery: Json) => delivery.job_id === jobId);
    };
    const deadline = Date.now() + 5_000;
    while ((await ofJob())[0]?.status !== "delivered" && Date.now() < deadline) await sleep(50);
    const records = await ofJob();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ status: "delivered", attempts: 1 });
    expect(sink.requests).toHaveLength(2);
    await workerB.stop(5_000);
  }, 60_000);
});
