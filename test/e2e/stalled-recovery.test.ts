/**
 * Crash safety with real processes: a worker SIGKILLed while it holds a job (its upstream call
 * hanging) loses the job's lock, and another worker recovers the stalled job and finishes it
 * (WORKER_LOCK_DURATION_MS=2000 keeps recovery to a few seconds). Under load, killing one of two
 * workers mid-way loses none of 20 jobs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
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
import { readEvents } from "../support/sse-client.js";
import {
  chatRequest,
  FAKE_KEY_VALUE,
  fakeConfig,
  postJob,
  sleep,
  until,
  waitForTerminal,
} from "./helpers.js";

let fake: FakeOpenAI;
let dir: TempDir;
let api: CascadeApi;
let env: Record<string, string>;
const workers: CascadeProcess[] = [];

const spawnWorker = async (name: string, concurrency = 4) => {
  const worker = await startWorker({ name, env: { ...env, WORKER_CONCURRENCY: String(concurrency) } });
  workers.push(worker);
  return worker;
};

beforeAll(async () => {
  fake = await startFakeOpenAI();
  dir = makeTempDir();
  env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("stalled"),
    // A hop timeout far beyond the test: only stalled recovery can finish a hanging job in time.
    CASCADE_CONFIG: dir.write("cascade.json", fakeConfig(fake.url, { primaryTimeoutMs: 30_000 })),
    FAKE_KEY: FAKE_KEY_VALUE,
    // Which worker answered is read from the "hop succeeded" lines: a first-try success logs at debug.
    LOG_LEVEL: "debug",
    WORKER_LOCK_DURATION_MS: "2000",
  };
  api = await startApi({ env });
});

afterEach(async () => {
  // Workers only: the API serves both tests. Graceful stop so no job is left locked.
  await Promise.all(workers.splice(0).map((worker) => worker.stop(5_000)));
  fake.reset();
});

afterAll(async () => {
  await killAllCascadeProcesses();
  await fake?.close();
  dir?.cleanup();
});

const succeededHop = (worker: CascadeProcess, jobId: string) =>
  worker.logs().find((log) => log.job_id === jobId && log.outcome === "success");

describe("stalled-job recovery across worker processes", () => {
  it("a job held by a SIGKILLed worker is recovered and finished by another worker", async () => {
    fake.script("up-primary", { kind: "hang" }, { kind: "ok", content: "recovered answer" });
    const workerA = await spawnWorker("worker-A");

    const created = await postJob(api.url, { request: chatRequest("stalled job") });
    expect(created.status).toBe(202);
    const jobId: string = created.body.id;
    // Worker A has taken the job and its upstream call now hangs.
    await until(() => fake.callsFor("up-primary").length === 1, "worker A's upstream call");
    const running = await waitForTerminal(api.url, jobId, 1_000).catch(() => undefined);
    expect(running, "the job must still be in flight while the upstream hangs").toBeUndefined();

    const workerB = await spawnWorker("worker-B");
    workerA.kill("SIGKILL");
    expect(await workerA.waitForExit()).toEqual({ code: null, signal: "SIGKILL" });
    const killedAt = Date.now();

    const job = await waitForTerminal(api.url, jobId, 25_000);
    expect(job).toMatchObject({ status: "succeeded", model: "primary", provider: "fake" });
    expect(job.result.choices[0].message.content).toBe("recovered answer");
    // The killed call is the job's first attempt (found in A's journal of calls in flight: no
    // reason, the provider did nothing wrong); the recovered run made one successful attempt.
    expect(job.attempts).toEqual([
      expect.objectContaining({ model: "primary", provider: "fake", outcome: "error" }),
      expect.objectContaining({ model: "primary", outcome: "success" }),
    ]);
    expect(job.attempts[0].reason).toBeUndefined();
    expect(fake.callsFor("up-primary")).toHaveLength(2);
    expect(fake.callsFor("up-backup")).toHaveLength(0);
    // Recovered by B after A's lock expired (not by the 30 s hop timeout).
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    await workerB.waitForLog((log) => log.job_id === jobId && log.outcome === "success");
    expect(succeededHop(workerB, jobId)).toMatchObject({ current_model: "primary" });
    expect(succeededHop(workerA, jobId)).toBeUndefined();
  });

  it("a streamed job taken over mid-answer says restart before the new run's deltas (contract: drop what came before)", async () => {
    // A's call streams the start of an answer, then stalls; B's call answers in full.
    fake.script(
      "up-primary",
      { kind: "stall", afterChunks: 4, content: "a partial answer from the killed worker" },
      { kind: "ok", content: "recovered answer", chunkDelayMs: 5 },
    );
    const workerA = await spawnWorker("worker-A");
    const created = await postJob(api.url, {
      request: { ...chatRequest("streamed and taken over"), stream: true },
    });
    expect(created.status).toBe(202);
    const jobId: string = created.body.id;
    const url = `${api.url}/v1/jobs/${jobId}/events`;
    // A's deltas are in the job's stream (written at most 50 ms after they came).
    const shown = await readEvents(url, { timeoutMs: 10_000, until: (event) => event.event === "delta" });
    expect(shown.events.some((event) => event.event === "delta")).toBe(true);
    workerA.kill("SIGKILL");
    await workerA.waitForExit();
    await spawnWorker("worker-B");

    const whole = await readEvents(url, { timeoutMs: 25_000 });
    expect(whole.ended).toBe(true);
    const names = whole.events.map((event) => event.event);
    const firstDelta = names.indexOf("delta");
    const restart = names.indexOf("restart");
    expect(restart, names.join(" ")).toBeGreaterThan(firstDelta);
    expect(whole.events[restart]?.data).toEqual({ hop: 0, reason: "network_error" });
    // What a reader keeps (deltas since the last restart) is the job's answer, nothing of A's.
    const kept = whole.events
      .slice(names.lastIndexOf("restart") + 1)
      .filter((event) => event.event === "delta")
      .map((event) => event.data.content ?? "")
      .join("");
    const job = whole.events.at(-1)?.data;
    expect(job).toMatchObject({ status: "succeeded" });
    expect(kept).toBe("recovered answer");
    expect(job.result.choices[0].message.content).toBe("recovered answer");
  });

  it("killing one of two workers mid-way through 20 jobs loses none", async () => {
    fake.setDefault("up-primary", { kind: "ok", delayMs: 600 });
    const workerA = await spawnWorker("worker-A", 3);
    const workerB = await spawnWorker("worker-B", 3);

    const created = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        postJob(api.url, { request: chatRequest(`bulk job ${index}`) }),
      ),
    );
    for (const response of created) expect(response.status).toBe(202);
    const ids: string[] = created.map((response) => response.body.id);
    expect(new Set(ids).size).toBe(20);

    // Both workers busy (6 slots), the first round done; kill A halfway through its second round,
    // when its calls are surely in flight (and none is between "succeeded" and "completed").
    await until(() => fake.callsFor("up-primary").length >= 9, "9 upstream calls", 20_000);
    await sleep(300);
    workerA.kill("SIGKILL");
    await workerA.waitForExit();

    const jobs = await Promise.all(ids.map((id) => waitForTerminal(api.url, id, 40_000)));
    for (const job of jobs) {
      expect(job, JSON.stringify(job)).toMatchObject({ status: "succeeded", model: "primary" });
      expect(job.result.object).toBe("chat.completion");
    }
    const contents = jobs.map((job) => job.result.choices[0].message.content).sort();
    expect(contents).toEqual(Array.from({ length: 20 }, (_, index) => `Echo: bulk job ${index}`).sort());
    // A held jobs when it died: they were called twice, so the fake saw more calls than jobs.
    expect(fake.callsFor("up-primary").length).toBeGreaterThan(20);
    // Every job's success was logged by a worker; B finished all that A had not.
    const finishedBy = (worker: CascadeProcess) =>
      new Set(
        worker
          .logs()
          .filter((log) => log.outcome === "success")
          .map((log) => log.job_id as string),
      );
    await until(
      () => finishedBy(workerA).size + finishedBy(workerB).size >= 20,
      "success lines for all 20 jobs",
      5_000,
    );
    const byA = finishedBy(workerA);
    const byB = finishedBy(workerB);
    expect(new Set([...byA, ...byB])).toEqual(new Set(ids));
    expect(byA.size).toBeGreaterThan(0);
    expect(byA.size).toBeLessThan(20);
  });
});
