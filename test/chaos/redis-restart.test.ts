/**
 * Redis SIGKILLed under a steady stream of jobs and started again 15 s later from its append-only
 * file (appendfsync everysec), on the same port and data. test/e2e/redis-outage.test.ts checks the
 * 503's shape with a handful of requests and one queued job; here, under load: every POST /v1/jobs
 * and /readyz answers (202 or 503, never a hang), workers call the upstream again within 10 s of
 * Redis's return, and the accepted jobs that are lost are counted and all fall in the last
 * second or two before the kill (the fsync window).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../e2e/helpers.js";
import {
  type CascadeApi,
  type CascadeProcess,
  killAllCascadeProcesses,
  makeTempDir,
  startApi,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";
import {
  CHAOS_KEY,
  chaosConfig,
  printFigures,
  readJobs,
  scale,
  seconds,
  startQuietWorker,
  submitJobs,
} from "./chaos-support.js";
import { type CountingUpstream, startCountingUpstream } from "./counting-upstream.js";

const LOAD_BEFORE_MS = scale(5_000, 30_000);
const DOWN_MS = 15_000;
const LOAD_AFTER_MS = scale(8_000, 30_000);
const JOBS_PER_SECOND = scale(20, 50);
const REDIS_WAIT_MS = 1_000;
/** appendfsync everysec: what was acknowledged in about the last second may not be on disk. */
const FSYNC_WINDOW_MS = 2_000;

let redis: SpawnedRedis;
let upstream: CountingUpstream;
let dir: TempDir;
let api: CascadeApi;
let workers: CascadeProcess[];
let env: Record<string, string>;

beforeAll(async () => {
  upstream = await startCountingUpstream(() => ({ delayMs: 50 }));
  redis = await spawnRedisServer({ appendonly: true });
  dir = makeTempDir("cascade-chaos-");
  env = {
    REDIS_URL: redis.url,
    CASCADE_REDIS_PREFIX: uniquePrefix("chaosredis"),
    CASCADE_CONFIG: dir.write("cascade.json", chaosConfig(upstream.url)),
    CHAOS_KEY,
    LOG_LEVEL: "warn",
    WORKER_CONCURRENCY: "20",
    WORKER_LOCK_DURATION_MS: "3000",
    API_REDIS_WAIT_MS: String(REDIS_WAIT_MS),
  };
  let worker1: CascadeProcess;
  let worker2: CascadeProcess;
  [api, worker1, worker2] = await Promise.all([
    startApi({ env }),
    startQuietWorker("worker-1", env),
    startQuietWorker("worker-2", env),
  ]);
  workers = [worker1, worker2];
});

afterAll(async () => {
  await killAllCascadeProcesses();
  await redis?.stop();
  await upstream?.close();
  dir?.cleanup();
});

/** GET /readyz every 250 ms until stopped: when, which status, how long it took. */
function probeReadiness(apiUrl: string) {
  const probes: Array<{ at: number; status: number | "error"; ms: number }> = [];
  let stopped = false;
  const running = (async () => {
    while (!stopped) {
      const at = Date.now();
      const status = await fetch(`${apiUrl}/readyz`, { signal: AbortSignal.timeout(5_000) }).then(
        async (response) => {
          await response.arrayBuffer();
          return response.status;
        },
        () => "error" as const,
      );
      probes.push({ at, status, ms: Date.now() - at });
      await sleep(250);
    }
  })();
  return {
    probes,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

describe("Redis SIGKILLed under load and restarted 15 s later from its AOF", () => {
  it(
    "API answers 503 while it is away, workers resume, only the fsync window is lost",
    async () => {
      const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      expect(await admin.config("GET", "appendfsync")).toEqual(["appendfsync", "everysec"]);
      admin.disconnect();

      const readiness = probeReadiness(api.url);
      let stopLoad = false;
      const loadStartedAt = Date.now();
      const load = submitJobs({
        apiUrl: api.url,
        count: 1_000_000,
        perSecond: JOBS_PER_SECOND,
        inFlight: 20,
        key: (index) => `outage job ${index}`,
        timeoutMs: 30_000,
        stop: () => stopLoad,
      });

      await sleep(LOAD_BEFORE_MS);
      const { port, dir: dataDir } = redis;
      redis.kill("SIGKILL");
      const killedAt = Date.now();
      await sleep(DOWN_MS);
      const restartingAt = Date.now();
      redis = await spawnRedisServer({ port, dir: dataDir, appendonly: true });
      const backAt = Date.now();
      await sleep(LOAD_AFTER_MS);
      stopLoad = true;
      const submissions = await load;
      const loadEndedAt = Date.now();
      await readiness.stop();

      const firstCallAfter = upstream.calls.find((call) => call.receivedAt >= backAt)?.receivedAt;
      const firstReadyAfter = readiness.probes.find(
        (probe) => probe.at >= backAt && probe.status === 200,
      )?.at;
      // Sent once Redis was surely dead, and answered before it could be back (a request waits up
      // to API_REDIS_WAIT_MS for it: one sent just before its return may well be accepted).
      const duringOutage = (at: number) => at > killedAt + 500 && at < restartingAt - REDIS_WAIT_MS - 500;
      const outageSubmissions = submissions.filter((submission) => duringOutage(submission.sentAt));
      const unavailable = submissions.filter((submission) => submission.status === 503);
      // Requests whose Redis command was in flight at the kill: the API's command connection does
      // not retry a command whose connection closed (ADR 0015), so they get their answer at once.
      const inFlightAtKill = submissions.filter(
        (submission) => submission.sentAt <= killedAt && submission.answeredAt > killedAt + 100,
      );
      const unexpected = submissions.filter(
        (submission) => submission.status !== 202 && submission.status !== 503,
      );
      const slowest = Math.max(
        ...outageSubmissions.map((submission) => submission.answeredAt - submission.sentAt),
      );
      const readyzDown = readiness.probes.filter((probe) => duringOutage(probe.at));

      // Every accepted job has ended, except those Redis lost; wait for the rest.
      const accepted = submissions.filter((submission) => submission.status === 202);
      let answers = await readJobs(
        api.url,
        accepted.map((submission) => submission.jobId as string),
      );
      const settledBy = Date.now() + 30_000;
      while (
        answers.some((answer) => answer.status === 200 && answer.body.status !== "succeeded") &&
        Date.now() < settledBy
      ) {
        await sleep(500);
        answers = await readJobs(
          api.url,
          accepted.map((submission) => submission.jobId as string),
        );
      }
      const lost = accepted.filter((_, index) => answers[index]?.status === 404);
      const unfinished = answers.filter(
        (answer) => answer.status === 200 && answer.body.status !== "succeeded",
      );
      const lostOutsideWindow = lost.filter(
        (submission) => submission.answeredAt < killedAt - FSYNC_WINDOW_MS,
      );

      printFigures("Redis killed and restarted from its AOF", {
        load: `${JOBS_PER_SECOND} jobs/s for ${seconds(loadEndedAt - loadStartedAt)}, Redis down ${seconds(backAt - killedAt)}`,
        "POST /v1/jobs": `${submissions.length}: ${accepted.length} accepted, ${unavailable.length} answered 503, ${unexpected.length} other or no answer`,
        "requests in flight at the kill": inFlightAtKill.length
          ? `${inFlightAtKill.length}: ${[...new Set(inFlightAtKill.map((submission) => submission.status))].join(", ")} after up to ${Math.max(...inFlightAtKill.map((submission) => submission.answeredAt - submission.sentAt))} ms`
          : "0",
        "slowest answer while Redis was down": `${slowest} ms (API_REDIS_WAIT_MS ${REDIS_WAIT_MS})`,
        "/readyz while down": `${readyzDown.filter((probe) => probe.status === 503).length} of ${readyzDown.length} answered 503`,
        "API ready after Redis's return":
          firstReadyAfter === undefined ? "never" : seconds(firstReadyAfter - backAt),
        "workers' first upstream call after Redis's return":
          firstCallAfter === undefined ? "never" : seconds(firstCallAfter - backAt),
        "accepted jobs lost (fsync window)": `${lost.length}, accepted ${lost.length ? `${Math.min(...lost.map((submission) => killedAt - submission.answeredAt))}-${Math.max(...lost.map((submission) => killedAt - submission.answeredAt))} ms` : "-"} before the kill`,
        "accepted jobs not succeeded": unfinished.length,
        ...(unexpected.length
          ? {
              "other answers": unexpected
                .slice(0, 5)
                .map(
                  (submission) =>
                    `${submission.status} ${submission.errorType ?? submission.failure ?? ""} (sent ${submission.sentAt - killedAt} ms after the kill, ${submission.answeredAt - submission.sentAt} ms)`,
                )
                .join("; "),
            }
          : {}),
      });

      expect(unexpected.map((submission) => submission.status)).toEqual([]);
      expect(outageSubmissions.length).toBeGreaterThan(0);
      for (const submission of outageSubmissions) {
        expect(submission.status).toBe(503);
        expect(submission.errorType).toBe("service_unavailable_error");
      }
      expect(slowest).toBeLessThan(REDIS_WAIT_MS + 2_000);
      for (const submission of inFlightAtKill) {
        expect([202, 503]).toContain(submission.status);
        expect(submission.answeredAt - killedAt).toBeLessThan(REDIS_WAIT_MS + 2_000);
      }
      expect(readyzDown.length).toBeGreaterThan(0);
      for (const probe of readyzDown) {
        expect(probe.status).toBe(503);
        expect(probe.ms).toBeLessThan(2_000);
      }
      expect(firstCallAfter, "no upstream call after Redis came back").toBeDefined();
      expect((firstCallAfter ?? Number.POSITIVE_INFINITY) - backAt).toBeLessThan(10_000);
      expect(lostOutsideWindow.map((submission) => submission.key)).toEqual([]);
      expect(unfinished.map((answer) => answer.body.id)).toEqual([]);
      expect(api.exitStatus).toBeUndefined();
      for (const worker of workers) expect(worker.exitStatus, worker.describe()).toBeUndefined();
    },
    scale(90_000, 240_000),
  );
});
