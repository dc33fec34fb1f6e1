import { createKeys, QUEUE_NAMES } from "@cascade/shared";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

// ADR 0026: a worker of 100 slots or more that finishes jobs quickly claims a few ahead of its
// free slots (at most a quarter of its concurrency), so a freed slot starts the next job without a Redis round trip.
// Upstream calls in flight never exceed WORKER_CONCURRENCY; held jobs go back to the queue when
// the slots stop turning over and at shutdown, and a cancel reaches them at once.
const CONCURRENCY = 100;
const HELD_MAX = CONCURRENCY / 4;

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A stack on the fake OpenAI upstream, its completions queue, and helpers over both. */
function prefetchStack(prefetchMs: number) {
  const context = {} as {
    fake: FakeOpenAI;
    stack: Stack;
    queue: Queue;
    /** What the workers' onFinished waits for first, per job (by its prompt); none: nothing. */
    beforeFinished?: (prompt: string) => Promise<void> | undefined;
  };
  beforeAll(async () => {
    context.fake = await startFakeOpenAI({ apiKey: "sk-prefetch" });
    context.stack = await startStack({
      redisUrl: inject("redisUrl"),
      beforeFinished: async (data) => {
        const prompt = data.request.messages[0]?.content;
        if (typeof prompt === "string") await context.beforeFinished?.(prompt);
      },
      concurrency: CONCURRENCY,
      env: { UP_KEY: "sk-prefetch", WORKER_PREFETCH_MS: String(prefetchMs) },
      config: {
        providers: { up: { type: "openai", base_url: context.fake.url, api_key_env: "UP_KEY" } },
        models: {
          m: { provider: "up", name: "gpt-4o-mini" },
          sluggish: { provider: "up", name: "gpt-slow" },
        },
        routes: {
          default: { chain: [{ model: "m", timeout_ms: 30_000 }] },
          slow: { chain: [{ model: "sluggish", timeout_ms: 30_000 }] },
        },
      },
    });
    context.queue = new Queue(QUEUE_NAMES.completions, {
      connection: context.stack.redis as never,
      prefix: createKeys(context.stack.config.settings.CASCADE_REDIS_PREFIX).bullPrefix,
    });
  });
  afterAll(async () => {
    await context.queue?.close();
    await context.stack?.close();
    await context.fake?.close();
  });

  /** Enqueues `count` jobs whose prompt is `<label>-<i>`; returns their ids in order. */
  async function enqueue(label: string, count: number, route = "default"): Promise<string[]> {
    const ids: string[] = [];
    for (let start = 0; start < count; start += 50) {
      const created = await Promise.all(
        Array.from({ length: Math.min(50, count - start) }, (_, i) =>
          context.stack.request("POST", "/v1/jobs", {
            body: { route, request: { messages: [{ role: "user", content: `${label}-${start + i}` }] } },
          }),
        ),
      );
      for (const response of created) {
        expect(response.status).toBe(202);
        ids.push(response.body.id);
      }
    }
    return ids;
  }
  const prompts = () => context.fake.calls.map((call) => call.body?.messages?.[0]?.content as string);
  const statusOf = async (id: string) => (await context.stack.request("GET", `/v1/jobs/${id}`)).body.status;
  /** Jobs queued or running. */
  const queueBusy = async () => {
    const counts = await context.queue.getJobCounts("active", "waiting", "prioritized", "delayed");
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  };
  const allSucceeded = async (ids: string[]) =>
    (await Promise.all(ids.map(statusOf))).every((status) => status === "succeeded");

  /**
   * Fast jobs until the worker claims ahead, then 150 slow ones (`slowMs`): its slots fill and it
   * claims as many more as its allowance lets it.
   */
  async function fillSlots(label: string, slowMs: number) {
    const { fake, stack, queue } = context;
    const worker = stack.workers.at(-1)?.worker;
    fake.setDefault("*", { kind: "ok", delayMs: 5 });
    const fast = await enqueue(`${label}-fast`, 600);
    await until(() => worker?.concurrency === CONCURRENCY + HELD_MAX, 20_000, "the allowance");
    // Every fast job done (none left to become slow), before the slow ones.
    await until(async () => (await queueBusy()) === 0, 30_000, "the fast jobs");
    expect(await allSucceeded(fast.slice(-20))).toBe(true);
    fake.setDefault("*", { kind: "ok", delayMs: slowMs });
    const slow = await enqueue(`${label}-slow`, 150);
    let mostActive = 0;
    await until(
      async () => {
        mostActive = Math.max(mostActive, await queue.getActiveCount());
        return mostActive === CONCURRENCY + HELD_MAX && fake.inFlight() === CONCURRENCY;
      },
      slowMs / 2,
      "the slots and the jobs held ahead",
    );
    const called = new Set(prompts());
    const active = new Set((await queue.getActive()).map((job) => job.id as string));
    const isHeld = (id: string, i: number) => active.has(id) && !called.has(`${label}-slow-${i}`);
    return {
      slow,
      held: slow.filter(isHeld),
      running: slow.filter((id, i) => active.has(id) && !isHeld(id, i)),
    };
  }
  return { context, enqueue, prompts, statusOf, allSucceeded, fillSlots };
}

describe("jobs claimed ahead of the worker's slots (WORKER_PREFETCH_MS 50, the default)", () => {
  const { context, enqueue, prompts, statusOf, allSucceeded } = prefetchStack(50);

  it("are claimed when jobs finish quickly, and upstream never sees more calls at once than the concurrency", async () => {
    const { fake, queue } = context;
    fake.reset();
    fake.setDefault("*", { kind: "ok", delayMs: 20 });
    let mostActive = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        mostActive = Math.max(mostActive, await queue.getActiveCount());
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const worker = context.stack.workers[0]?.worker;
    if (!worker) throw new Error("no worker");
    try {
      // Queued first, so the worker has jobs to claim ahead once it finishes them quickly.
      await worker.pause(true);
      const ids = await enqueue("burst", 2_000);
      worker.resume();
      await until(() => allSucceeded(ids.slice(-50)), 60_000, "the burst");
      for (const id of [ids[0], ids[999]]) expect(await statusOf(id as string)).toBe("succeeded");
    } finally {
      sampling = false;
      await sampler;
    }
    // Jobs were held (more claimed than slots), never more than a quarter ahead.
    expect(mostActive).toBeGreaterThan(CONCURRENCY);
    expect(mostActive).toBeLessThanOrEqual(CONCURRENCY + HELD_MAX);
    expect(fake.maxInFlight()).toBeLessThanOrEqual(CONCURRENCY);
    // One call per job: a held job is called once, when it gets its slot.
    const called = prompts();
    expect(called).toHaveLength(2_000);
    expect(new Set(called).size).toBe(2_000);
  });

  it("a job whose data fails validation ends failed (invalid_job) at its claim, calling nothing", async () => {
    const { fake, queue } = context;
    fake.reset();
    const job = await queue.add(
      "completion",
      { tenant: "default", request: { messages: "hi" } },
      {
        jobId: "job_invalid-data-prefetch",
      },
    );
    await until(async () => (await queue.getJobState(job.id as string)) === "completed", 10_000, "the job");
    const ended = await queue.getJob(job.id as string);
    expect(ended?.returnvalue).toMatchObject({ status: "failed", error: { type: "invalid_job" } });
    expect(ended?.returnvalue.error.message).toContain("job data failed validation");
    expect(fake.calls).toHaveLength(0);
  });

  it("go back to the queue, for any worker, once the slots stop turning over", async () => {
    const { fake, stack, queue } = context;
    const worker = stack.workers[0]?.worker;
    if (!worker) throw new Error("no worker");
    fake.reset();
    fake.setDefault("*", { kind: "ok", delayMs: 5 });
    fake.setDefault("gpt-slow", { kind: "ok", delayMs: 3_000 });
    // Queued together, the slow jobs behind the fast ones: the worker reaches them claiming ahead.
    await worker.pause(true);
    const fast = await enqueue("stalled-fast", 600);
    const slow = await enqueue("stalled-slow", 150, "slow");
    worker.resume();
    await until(() => allSucceeded(fast.slice(-20)), 30_000, "the fast jobs");
    // Its 100 slots wait on 3 s calls: five windows (250 ms) on, the jobs it held are back in the
    // queue and it claims none ahead.
    await until(
      async () =>
        fake.inFlight() === CONCURRENCY &&
        worker.concurrency === CONCURRENCY &&
        (await queue.getActiveCount()) === CONCURRENCY,
      2_500,
      "the held jobs to go back",
    );
    await until(() => allSucceeded(slow), 30_000, "every slow job");
    expect(fake.maxInFlight()).toBeLessThanOrEqual(CONCURRENCY);
    const called = prompts().filter((prompt) => prompt.startsWith("stalled-slow-"));
    expect(called).toHaveLength(slow.length);
    expect(new Set(called).size).toBe(slow.length);
    // Handed back without an attempt: a job held and handed back ran once, on a later claim.
    const jobs = await Promise.all(slow.map((id) => queue.getJob(id)));
    const handedBack = jobs.filter((job) => (job?.attemptsStarted ?? 0) > 1);
    expect(handedBack.length).toBeGreaterThan(0);
    for (const job of jobs) expect(job?.attemptsMade).toBe(1);
  });
});

describe("jobs claimed ahead of the worker's slots (WORKER_PREFETCH_MS 1000: held up to 5 s)", () => {
  const { context, enqueue, prompts, statusOf, allSucceeded, fillSlots } = prefetchStack(1_000);

  it("a job whose call has answered gives its slot to the next one before recording its result", async () => {
    const { fake, stack } = context;
    const worker = stack.workers[0]?.worker;
    if (!worker) throw new Error("no worker");
    fake.reset();
    fake.setDefault("*", { kind: "ok", delayMs: 5 });
    // Until the worker claims ahead (fast jobs ending), then 100 jobs whose bookkeeping after the
    // answer hangs (their webhook's enqueue, say, on a Redis slow to take it), then 100 more. The
    // 1 s window keeps the allowance while the worker is paused for the enqueue.
    await enqueue("answered-warm", 600);
    await until(() => worker.concurrency === CONCURRENCY + HELD_MAX, 20_000, "the allowance");
    let release = () => {};
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    let hanging = 0;
    context.beforeFinished = (prompt) => {
      if (!prompt.startsWith("answered-stuck-")) return undefined;
      hanging += 1;
      return stuck;
    };
    try {
      await worker.pause(true);
      const stuckIds = await enqueue("answered-stuck", CONCURRENCY);
      const next = await enqueue("answered-next", CONCURRENCY);
      worker.resume();
      // Every stuck job answered and hangs, each holding one of BullMQ's places: the next jobs
      // still get their calls, on the slots the answers freed, and end.
      await until(() => hanging === CONCURRENCY, 20_000, "the stuck jobs' answers");
      await until(() => allSucceeded(next), 20_000, "the next jobs, while the stuck ones hang");
      expect(hanging).toBe(CONCURRENCY);
      release();
      await until(() => allSucceeded(stuckIds), 20_000, "the stuck jobs, once let go");
      expect(fake.maxInFlight()).toBeLessThanOrEqual(CONCURRENCY);
      const called = prompts().filter((prompt) => /^answered-(stuck|next)-/.test(prompt));
      expect(called).toHaveLength(2 * CONCURRENCY);
      expect(new Set(called).size).toBe(2 * CONCURRENCY);
    } finally {
      release();
      context.beforeFinished = undefined;
    }
  });

  it("a held job that is cancelled ends cancelled at once, without calling upstream", async () => {
    context.fake.reset();
    const { slow, held } = await fillSlots("cancel", 4_000);
    const target = held[0] as string;
    const startedAt = Date.now();
    const cancel = await context.stack.request("DELETE", `/v1/jobs/${target}`);
    expect(cancel.status).toBe(202);
    const ended = await context.stack.request("GET", `/v1/jobs/${target}?wait=10`);
    expect(ended.body.status).toBe("cancelled");
    // Not after the running jobs' 4 s calls: the cancel reached it while it was held.
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    const others = slow.filter((id) => id !== target);
    await until(() => allSucceeded(others), 20_000, "the other slow jobs");
    expect(prompts()).not.toContain(`cancel-slow-${slow.indexOf(target)}`);
    expect(await statusOf(target)).toBe("cancelled");
  });

  it("held jobs go back at shutdown, untouched, while the running ones finish", async () => {
    const { fake, stack, queue } = context;
    fake.reset();
    const first = stack.workers.at(-1);
    if (!first) throw new Error("no worker");
    const { slow, held, running } = await fillSlots("shutdown", 4_000);
    expect(held).toHaveLength(HELD_MAX);
    expect(running).toHaveLength(CONCURRENCY);

    const closing = first.close(10_000);
    await until(
      async () =>
        (await Promise.all(held.map((id) => queue.getJobState(id)))).every((state) => state !== "active"),
      1_500,
      "the held jobs to go back",
    );
    await closing;
    // The running ones had their grace: each finished here, called once.
    for (const id of running) expect(await statusOf(id)).toBe("succeeded");
    for (const id of held) expect(await statusOf(id)).toBe("queued");

    await stack.startWorker(CONCURRENCY);
    await until(() => allSucceeded(slow), 20_000, "every slow job on the next worker");
    const called = prompts().filter((prompt) => prompt.startsWith("shutdown-slow-"));
    expect(called).toHaveLength(slow.length);
    expect(new Set(called).size).toBe(slow.length);
  });
});
