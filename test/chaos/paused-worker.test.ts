/**
 * A worker paused past its lock (SIGSTOP) while its upstream call is in flight, then resumed
 * (SIGCONT): the job runs elsewhere and ends once, and the paused run, on finding its lock gone,
 * aborts its call (the upstream sees the request closed) long before the hop's timeout and makes
 * no other call. test/e2e/stale-run.test.ts checks that such a run writes nothing (webhook,
 * batch line, events, progress) when its call has answered meanwhile; this checks the call still
 * hanging is cut.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { http, type Json, sleep, until, waitForTerminal } from "../e2e/helpers.js";
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
import { CHAOS_KEY, chaosConfig, chaosRequest, printFigures, seconds } from "./chaos-support.js";
import { type CountingUpstream, startCountingUpstream } from "./counting-upstream.js";

const LOCK_MS = 2_000;
const HOP_TIMEOUT_MS = 60_000;

let upstream: CountingUpstream;
let sink: WebhookSink;
let dir: TempDir;
let api: CascadeApi;
let env: Record<string, string>;

beforeAll(async () => {
  // The first call (the paused worker's) never answers; the others answer at once.
  [upstream, sink] = await Promise.all([
    startCountingUpstream((_, index) => (index === 0 ? "hang" : { delayMs: 0 })),
    startWebhookSink(),
  ]);
  dir = makeTempDir("cascade-chaos-");
  env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("chaospause"),
    CASCADE_CONFIG: dir.write("cascade.json", chaosConfig(upstream.url, { timeoutMs: HOP_TIMEOUT_MS })),
    CHAOS_KEY,
    LOG_LEVEL: "info",
    WORKER_CONCURRENCY: "2",
    WORKER_LOCK_DURATION_MS: String(LOCK_MS),
  };
  api = await startApi({ env });
});

afterAll(async () => {
  await killAllCascadeProcesses();
  await Promise.all([upstream?.close(), sink?.close()]);
  dir?.cleanup();
});

describe("a worker paused past its lock with its call in flight", () => {
  it("has its call aborted once resumed; the job ends once, on another worker", async () => {
    const workerA = await startWorker({ name: "worker-A", env });
    const created = await http(api.url, "POST", "/v1/jobs", {
      request: chaosRequest("paused job"),
      webhook: { url: sink.url },
    });
    expect(created.status).toBe(202);
    const jobId: string = created.body.id;
    await until(() => upstream.calls.length === 1, "worker A's upstream call");
    workerA.kill("SIGSTOP");
    const pausedAt = Date.now();

    const workerB = await startWorker({ name: "worker-B", env });
    const job = await waitForTerminal(api.url, jobId, 30_000);
    const endedAt = Date.now();
    expect(job).toMatchObject({ status: "succeeded", model: "echo" });
    // Worker A's call, made and never settled by the run that ended the job, is the job's too:
    // an attempt with no reason (the provider did nothing wrong), at its estimate in the job's cost.
    expect(job.attempts).toEqual([
      expect.objectContaining({ model: "echo", outcome: "error", message: expect.stringMatching(/stopped/) }),
      expect.objectContaining({ outcome: "success" }),
    ]);
    expect(job.attempts[0].reason).toBeUndefined();
    expect(Date.now() - pausedAt).toBeGreaterThan(LOCK_MS);

    workerA.kill("SIGCONT");
    const resumedAt = Date.now();
    const call = upstream.calls[0];
    await until(() => call?.abortedAt !== undefined, "worker A's call to be aborted", 3 * LOCK_MS + 5_000);
    const lockLost = await workerA.waitForLog(
      (log) => log.job_id === jobId && /lock/.test(String(log.msg)),
      5_000,
    );
    await sleep(2 * LOCK_MS);

    const requests = sink.requests.filter((request) => JSON.parse(request.body).data.id === jobId);
    const deliveries = await http(api.url, "GET", "/v1/webhook-deliveries");
    const records = deliveries.body.data.filter((delivery: Json) => delivery.job_id === jobId);
    printFigures("worker paused past its lock", {
      lock: `${LOCK_MS} ms`,
      "paused for": seconds(resumedAt - pausedAt),
      "job ended on worker B after the pause": seconds(endedAt - pausedAt),
      "paused call aborted after SIGCONT": seconds((call?.abortedAt ?? Number.NaN) - resumedAt),
      "upstream calls": upstream.calls.length,
      "webhook requests": requests.length,
      "worker A logged": String(lockLost.msg),
    });

    expect(call?.answeredAt).toBeUndefined();
    // Cut by the lock loss, not by the hop's timeout.
    expect((call?.abortedAt ?? 0) - (call?.receivedAt ?? 0)).toBeLessThan(HOP_TIMEOUT_MS / 2);
    expect(upstream.calls).toHaveLength(2);
    expect(requests).toHaveLength(1);
    expect(records).toHaveLength(1);
    expect(await waitForTerminal(api.url, jobId)).toEqual(job);
    expect(workerA.exitStatus).toBeUndefined();
    await Promise.all([workerA.stop(5_000), workerB.stop(5_000)]);
  }, 60_000);
});
