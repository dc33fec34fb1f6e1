/**
 * No dollar a provider bills goes uncounted, even when the process that made the call is killed
 * with it in flight (ADR 0033). A worker SIGKILLed with three non-streamed calls sent (the
 * provider finishes and bills those whoever listens): another process finds the dead worker's
 * journal of calls in flight and charges each its estimate, the same amount the tenant's budget
 * had reserved for it and nothing gave back; the jobs are run again by another worker, whose runs
 * find the dead calls (in the dead worker's journal, or the record its recovery left per job) and
 * put them in each job's attempts and cost. So the tenant's spend, GET /v1/usage (total and the
 * route's row) and the jobs' own costs all agree.
 *
 * Prices: $1000 per million tokens, i.e. $0.001 a token; PROMPT is estimated at 20 tokens, so a
 * call with max_tokens 100 reserves (20 + 100) × $0.001 = $0.12.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keysMatching } from "../support/redis-clients.js";
import type { Json } from "./helpers.js";
import {
  pricedModelConfig,
  type ResilienceStack,
  sleep,
  startResilienceStack,
} from "./resilience-helpers.js";

const KEY = "killed-call-key-1";
const PROMPT = "Forty characters of prompt, exactly here"; // 40 characters: 10 + 10 tokens
const RESERVED_USD = 0.12;
const CALLS = 3;

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "killcharge",
    config: pricedModelConfig,
    workers: 1,
    concurrency: 5,
    // A dead worker's journal is charged once it has been silent for 10 s (its lock, at least 10 s).
    env: { ACME_KEYS: KEY, WORKER_LOCK_DURATION_MS: "3000" },
  });
});

afterAll(async () => {
  await stack?.close();
});

/**
 * The job's record shows the call its stopped worker made before the run that ended it: an attempt
 * with no reason (it says nothing of the provider or the request, as a call stopped by a lost lock),
 * charged in the job's cost at its estimate.
 */
function expectLostCallFirst(job: Json) {
  expect(job.attempts).toHaveLength(2);
  const [lost, answered] = job.attempts;
  expect(lost).toMatchObject({ model: "a", provider: "p", outcome: "error" });
  expect(lost.reason).toBeUndefined();
  expect(lost.message).toMatch(/stopped/);
  expect(lost.started_at).toBeLessThanOrEqual(answered.started_at);
  expect(answered).toMatchObject({ model: "a", provider: "p", outcome: "success" });
  expect(job.cost_usd).toBeGreaterThan(RESERVED_USD);
}

async function books() {
  const keys = await keysMatching(stack.redis, `${stack.tag}:spend:tenant:acme:d:*`);
  const spend = keys.length ? Number(await stack.redis.get(keys[0] as string)) : 0;
  const usage = (await stack.request("GET", "/v1/usage", undefined, KEY)).body;
  return { spend, total: usage.cost_usd as number, route: usage.routes?.default?.cost_usd as number };
}

/**
 * A job whose call is in flight on a worker of its own (every other stopped) when that worker is
 * SIGKILLed; its later calls answer. `more`: what the upstream does for the calls after it.
 */
async function jobWhoseWorkerDies(name: string, ...more: Array<{ kind: "hang" }>): Promise<string> {
  const calledBefore = stack.fake.callsFor("up-a").length;
  stack.fake.script("up-a", { kind: "hang" }, ...more);
  stack.fake.setDefault("up-a", { kind: "ok", content: "answered again" });
  const worker = await stack.startWorker(name);
  for (const other of stack.workers) if (other !== worker) await other.stop(5_000);
  const id = await stack.submit(
    { request: { messages: [{ role: "user", content: PROMPT }], max_tokens: 100 } },
    KEY,
  );
  const deadline = Date.now() + 15_000;
  while (stack.fake.callsFor("up-a").length < calledBefore + 1 && Date.now() < deadline) await sleep(50);
  expect(stack.fake.callsFor("up-a")).toHaveLength(calledBefore + 1);
  // The budget lease it took has ended (250 ms): only the call's own reservation stays spent.
  await sleep(1_000);
  worker.kill("SIGKILL");
  await worker.waitForExit();
  return id;
}

describe("a process killed with calls in flight", () => {
  it("has those calls charged by another process: spend, usage and its route's row agree", async () => {
    stack.fake.script("up-a", { kind: "hang" }, { kind: "hang" }, { kind: "hang" });
    stack.fake.setDefault("up-a", { kind: "ok", content: "answered again" });
    const ids = await Promise.all(
      Array.from({ length: CALLS }, () =>
        stack.submit({ request: { messages: [{ role: "user", content: PROMPT }], max_tokens: 100 } }, KEY),
      ),
    );
    const [workerA] = stack.workers;
    if (!workerA) throw new Error("no worker");
    const deadline = Date.now() + 15_000;
    while (stack.fake.callsFor("up-a").length < CALLS && Date.now() < deadline) await sleep(50);
    expect(stack.fake.callsFor("up-a")).toHaveLength(CALLS);
    // The budget lease A took for them has ended (250 ms) and gone back: only the calls' own
    // reservations stay spent when A dies.
    await sleep(1_000);
    workerA.kill("SIGKILL");
    await workerA.waitForExit();
    await stack.startWorker("killcharge-worker-B");

    const jobs: Json[] = await stack.waitAll(ids, 60_000, KEY);
    for (const job of jobs) {
      expect(job).toMatchObject({ status: "succeeded", model: "a" });
      expectLostCallFirst(job);
    }
    // The jobs' own costs hold their dead calls (each at its estimate): they add up to the books.
    const expected = jobs.reduce((total: number, job: Json) => total + job.cost_usd, 0);
    expect(expected).toBeGreaterThan(CALLS * RESERVED_USD);

    // The dead worker's journal is found within its stale time and a recovery pass.
    let figures = await books();
    const until = Date.now() + 30_000;
    // Usage is written with the claim; the route's row follows with the counts' next write.
    const off = () =>
      [figures.total, figures.spend, figures.route].some((x) => Math.abs(x - expected) > 1e-6);
    while (off() && Date.now() < until) {
      await sleep(500);
      figures = await books();
    }
    expect(figures.total).toBeCloseTo(expected, 6);
    expect(figures.spend).toBeCloseTo(expected, 6);
    expect(figures.route).toBeCloseTo(expected, 6);
    // Charged once: later passes find nothing more.
    await sleep(8_000);
    const later = await books();
    expect(later.total).toBeCloseTo(expected, 6);
    expect(later.route).toBeCloseTo(expected, 6);
    // The dead worker is gone from the heartbeats; its journal keeps only tombstones (a day, for
    // a process that was only paused), one per call charged.
    const journals = await stack.redis.zrange(`${stack.tag}:call-journals`, 0, -1);
    const left = await keysMatching(stack.redis, `${stack.tag}:call-journal:*`);
    const entries = (await Promise.all(left.map((key) => stack.redis.hvals(key)))).flat();
    expect(entries.sort()).toEqual(["!", "!", "!"]);
    // The live processes (the API, worker B) beat; the dead one is gone from the list.
    expect(journals.length).toBe(2);
  }, 90_000);

  it("a process only paused past its stale time brings the recovery's estimate to the real cost when it resumes", async () => {
    const answer = { kind: "ok" as const, content: "the same answer" };
    // A's calls answer while A is stopped; what B calls answers at once, the same text.
    stack.fake.script("up-a", { ...answer, delayMs: 6_000 }, { ...answer, delayMs: 6_000 });
    stack.fake.setDefault("up-a", answer);
    const before = await books();
    const calledBefore = stack.fake.callsFor("up-a").length;
    const workerA = await stack.startWorker("killcharge-worker-C");
    const workerB = stack.workers.find((worker) => worker.name === "killcharge-worker-B");
    // B steps aside while C takes the jobs: stopped for good, so only C holds them.
    await workerB?.stop(5_000);
    const ids = await Promise.all(
      Array.from({ length: 2 }, () =>
        stack.submit({ request: { messages: [{ role: "user", content: PROMPT }], max_tokens: 100 } }, KEY),
      ),
    );
    const deadline = Date.now() + 15_000;
    while (stack.fake.callsFor("up-a").length < calledBefore + 2 && Date.now() < deadline) await sleep(50);
    await sleep(1_000);
    workerA.kill("SIGSTOP");
    try {
      await stack.startWorker("killcharge-worker-D");
      const jobs: Json[] = await stack.waitAll(ids, 60_000, KEY);
      for (const job of jobs) {
        expect(job).toMatchObject({ status: "succeeded", model: "a" });
        // D's runs found C's calls in C's journal (C silent, not yet taken for dead).
        expectLostCallFirst(job);
      }
      const withEstimates = jobs.reduce((total: number, job: Json) => total + job.cost_usd, 0);
      // What D's calls cost: the jobs' costs less C's calls at their estimates.
      const fromJobs = withEstimates - 2 * RESERVED_USD;
      // Recovered while C is stopped: each of its calls charged the estimate.
      const recovered = before.total + withEstimates;
      let figures = await books();
      const until = Date.now() + 30_000;
      while (Math.abs(figures.total - recovered) > 1e-6 && Date.now() < until) {
        await sleep(500);
        figures = await books();
      }
      expect(figures.total).toBeCloseTo(recovered, 6);
      workerA.kill("SIGCONT");
      // C reads its answers and settles them: each call's estimate becomes its real cost (one
      // job's, the same answer), in usage and in the budget alike.
      const settled = before.total + 2 * fromJobs;
      const settledBy = Date.now() + 20_000;
      while (
        (Math.abs(figures.total - settled) > 1e-6 || Math.abs(figures.spend - settled) > 1e-6) &&
        Date.now() < settledBy
      ) {
        await sleep(500);
        figures = await books();
      }
      expect(figures.total).toBeCloseTo(settled, 6);
      expect(figures.spend).toBeCloseTo(settled, 6);
      // The route's row may count C's calls twice (the recovery's and C's stray charge, ADR
      // 0033), never fewer.
      expect(figures.route).toBeGreaterThanOrEqual(settled - 1e-6);
    } finally {
      workerA.kill("SIGCONT");
    }
  }, 120_000);

  it("a job cancelled while its killed worker still held it keeps the dead call in its attempts and cost", async () => {
    const before = await books();
    const calledBefore = stack.fake.callsFor("up-a").length;
    const id = await jobWhoseWorkerDies("killcharge-worker-E");
    // Shown running (its dead worker's lock has not run out): the cancel is asked of whoever runs
    // it next, which ends it cancelled without a call of its own.
    const cancel = await stack.request("DELETE", `/v1/jobs/${id}`, undefined, KEY);
    expect(cancel.status).toBe(202);
    await stack.startWorker("killcharge-worker-F");
    const [job] = (await stack.waitAll([id], 60_000, KEY)) as Json[];
    expect(job.status).toBe("cancelled");
    expect(job.attempts).toHaveLength(1);
    expect(job.attempts[0]).toMatchObject({ model: "a", provider: "p", outcome: "error" });
    expect(job.attempts[0].reason).toBeUndefined();
    expect(job.attempts[0].message).toMatch(/stopped/);
    expect(job.cost_usd).toBeCloseTo(RESERVED_USD, 6);
    expect(stack.fake.callsFor("up-a")).toHaveLength(calledBefore + 1);
    // The books hold the dead call once: its estimate, as the job's cost says.
    const expected = before.total + RESERVED_USD;
    let figures = await books();
    const until = Date.now() + 30_000;
    const off = () => [figures.total, figures.route].some((x) => Math.abs(x - expected) > 1e-6);
    while (off() && Date.now() < until) {
      await sleep(500);
      figures = await books();
    }
    expect(figures.total).toBeCloseTo(expected, 6);
    expect(figures.route).toBeCloseTo(before.route + RESERVED_USD, 6);
    await sleep(3_000);
    const later = await books();
    expect(later.route).toBeCloseTo(before.route + RESERVED_USD, 6);
  }, 120_000);
  it("a job cancelled after its killed worker's stall, before another run took it, keeps the dead call", async () => {
    const before = await books();
    const calledBefore = stack.fake.callsFor("up-a").length;
    const body = { request: { messages: [{ role: "user", content: PROMPT }], max_tokens: 100 } };
    const id = await jobWhoseWorkerDies("killcharge-worker-G", { kind: "hang" });
    // A job that keeps the next worker's only slot (its call hangs), so the stalled job, once
    // that worker's stall check hands it back, waits in line: the API removes it itself.
    const blocker = await stack.submit(body, KEY);
    await stack.startWorker("killcharge-worker-H", 1);
    const handedBack = Date.now() + 30_000;
    while (stack.fake.callsFor("up-a").length < calledBefore + 2 && Date.now() < handedBack) await sleep(50);
    let shown = (await stack.request("GET", `/v1/jobs/${id}`, undefined, KEY)).body;
    while (shown.status !== "queued" && Date.now() < handedBack) {
      await sleep(200);
      shown = (await stack.request("GET", `/v1/jobs/${id}`, undefined, KEY)).body;
    }
    expect(shown.status).toBe("queued");
    const cancel = await stack.request("DELETE", `/v1/jobs/${id}`, undefined, KEY);
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe("cancelled");
    expect(cancel.body.attempts).toHaveLength(1);
    expect(cancel.body.attempts[0]).toMatchObject({ model: "a", provider: "p", outcome: "error" });
    expect(cancel.body.attempts[0].reason).toBeUndefined();
    expect(cancel.body.attempts[0].message).toMatch(/stopped/);
    expect(cancel.body.cost_usd).toBeCloseTo(RESERVED_USD, 6);
    const job = (await stack.request("GET", `/v1/jobs/${id}`, undefined, KEY)).body;
    expect(job.attempts).toEqual(cancel.body.attempts);
    expect(job.cost_usd).toBeCloseTo(RESERVED_USD, 6);
    expect((await stack.request("DELETE", `/v1/jobs/${blocker}`, undefined, KEY)).status).toBe(202);
    const [stopped] = (await stack.waitAll([blocker], 30_000, KEY)) as Json[];
    expect(stopped.status).toBe("cancelled");
    // The books: the dead call once (its estimate) and whatever the blocker's stopped call cost.
    const expected = before.total + RESERVED_USD + stopped.cost_usd;
    const expectedRoute = before.route + RESERVED_USD + stopped.cost_usd;
    let figures = await books();
    const until = Date.now() + 30_000;
    const off = () =>
      Math.abs(figures.total - expected) > 1e-6 || Math.abs(figures.route - expectedRoute) > 1e-6;
    while (off() && Date.now() < until) {
      await sleep(500);
      figures = await books();
    }
    expect(figures.total).toBeCloseTo(expected, 6);
    expect(figures.route).toBeCloseTo(expectedRoute, 6);
    await sleep(3_000);
    expect((await books()).route).toBeCloseTo(expectedRoute, 6);
  }, 120_000);
});
