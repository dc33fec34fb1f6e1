import { createKeys, QUEUE_NAMES } from "@cascade/shared";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";

// ADR 0026: a worker that finishes jobs quickly claims a few ahead of its free slots (at most a
// quarter of its concurrency), so a freed slot starts the next job without a Redis round trip.
// Upstream calls in flight never exceed WORKER_CONCURRENCY; held jobs go back at shutdown and
// honour a cancel.
const CONCURRENCY = 20;
const HELD_MAX = CONCURRENCY / 4;

describe("the completion worker's jobs claimed ahead of its slots", () => {
  let fake: FakeOpenAI;
  let stack: Stack;
  let queue: Queue;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: "sk-prefetch" });
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      concurrency: CONCURRENCY,
      env: { UP_KEY: "sk-prefetch", WORKER_PREFETCH_MS: "50" },
      config: {
        providers: { up: { type: "openai", base_url: fake.url, api_key_env: "UP_KEY" } },
        models: { m: { provider: "up", name: "gpt-4o-mini" } },
        routes: { default: { chain: [{ model: "m", timeout_ms: 30_000 }] } },
      },
    });
    queue = new Queue(QUEUE_NAMES.completions, {
      connection: stack.redis as never,
      prefix: createKeys(stack.config.settings.CASCADE_REDIS_PREFIX).bullPrefix,
    });
  });
  afterAll(async () => {
    await queue?.close();
    await stack?.close();
    await fake?.close();
  });

  /** Enqueues `count` jobs whose prompt is `<label>-<i>`; returns their ids in order. */
  async function enqueue(label: string, count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let start = 0; start < count; start += 50) {
      const created = await Promise.all(
        Array.from({ length: Math.min(50, count - start) }, (_, i) =>
          stack.request("POST", "/v1/jobs", {
            body: { request: { messages: [{ role: "user", content: `${label}-${start + i}` }] } },
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

  async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string) {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  const promptsCalled = () => fake.calls.map((call) => call.body?.messages?.[0]?.content as string);
  const statusOf = async (id: string) => (await stack.request("GET", `/v1/jobs/${id}`)).body.status;

  /** Fast jobs until the worker holds jobs ahead, then slow ones until its slots and its allowance are full. */
  async function fillSlotsAndHeld(
    label: string,
  ): Promise<{ running: string[]; held: string[]; all: string[] }> {
    fake.setDefault("*", { kind: "ok", delayMs: 5 });
    const worker = stack.workers.at(-1)?.worker;
    const fast = await enqueue(`${label}-fast`, 300);
    await until(async () => (await statusOf(fast.at(-1) as string)) === "succeeded", 30_000, "the fast jobs");
    expect(worker?.concurrency).toBeGreaterThan(CONCURRENCY);
    fake.setDefault("*", { kind: "ok", delayMs: 2_000 });
    const slow = await enqueue(`${label}-slow`, 40);
    await until(async () => (await queue.getActiveCount()) === CONCURRENCY + HELD_MAX, 5_000, "held jobs");
    await until(() => fake.inFlight() === CONCURRENCY, 2_000, "the slots' calls");
    const called = new Set(promptsCalled());
    const active = new Set((await queue.getActive()).map((job) => job.id as string));
    const running = slow.filter((id, i) => active.has(id) && called.has(`${label}-slow-${i}`));
    const held = slow.filter((id, i) => active.has(id) && !called.has(`${label}-slow-${i}`));
    return { running, held, all: slow };
  }

  it("claims jobs ahead when it finishes them quickly, and never calls upstream more than its concurrency at once", async () => {
    fake.reset();
    fake.setDefault("*", { kind: "ok", delayMs: 20 });
    const worker = stack.workers[0]?.worker;
    let mostClaimed = 0;
    const sampler = setInterval(() => {
      mostClaimed = Math.max(mostClaimed, worker?.concurrency ?? 0);
    }, 5);
    try {
      const ids = await enqueue("burst", 600);
      await until(async () => (await queue.getCompletedCount()) >= 600, 60_000, "600 jobs");
      for (const id of [ids[0], ids[299], ids[599]]) expect(await statusOf(id as string)).toBe("succeeded");
    } finally {
      clearInterval(sampler);
    }
    expect(mostClaimed).toBe(CONCURRENCY + HELD_MAX);
    expect(fake.maxInFlight()).toBeLessThanOrEqual(CONCURRENCY);
    // One call per job: a job held ahead is called once, when it gets its slot.
    const prompts = promptsCalled();
    expect(prompts).toHaveLength(600);
    expect(new Set(prompts).size).toBe(600);
  });

  it("hands the jobs held ahead back at shutdown, untouched, while the running ones finish", async () => {
    fake.reset();
    const first = stack.workers[0];
    if (!first) throw new Error("no worker");
    const { running, held, all } = await fillSlotsAndHeld("shutdown");
    expect(running).toHaveLength(CONCURRENCY);
    expect(held).toHaveLength(HELD_MAX);

    const closing = first.close(10_000);
    // Back in the queue at once (the delayed set, promoted now), not failed, not called.
    await until(
      async () => {
        const states = await Promise.all(held.map((id) => queue.getJobState(id)));
        return states.every((state) => state !== "active");
      },
      1_500,
      "the held jobs to go back",
    );
    for (const id of held)
      expect(["delayed", "waiting", "prioritized"]).toContain(await queue.getJobState(id));
    for (const id of running) expect(await queue.getJobState(id)).toBe("active");
    await closing;
    for (const id of running) expect(await statusOf(id)).toBe("succeeded");

    await stack.startWorker(CONCURRENCY);
    await until(
      async () => (await Promise.all(all.map(statusOf))).every((status) => status === "succeeded"),
      20_000,
      "every slow job on the next worker",
    );
    const prompts = promptsCalled().filter((prompt) => prompt.startsWith("shutdown-slow-"));
    expect(prompts).toHaveLength(all.length);
    expect(new Set(prompts).size).toBe(all.length);
  });

  it("ends a job held ahead that is cancelled as cancelled, without calling upstream", async () => {
    fake.reset();
    const { held, all } = await fillSlotsAndHeld("cancel");
    const target = held[0] as string;
    const cancel = await stack.request("DELETE", `/v1/jobs/${target}`);
    expect(cancel.status).toBe(202);
    const ended = await stack.request("GET", `/v1/jobs/${target}?wait=15`);
    expect(ended.body.status).toBe("cancelled");
    await until(
      async () =>
        (await Promise.all(all.filter((id) => id !== target).map(statusOf))).every(
          (status) => status === "succeeded",
        ),
      20_000,
      "the other slow jobs",
    );
    const index = all.indexOf(target);
    expect(promptsCalled()).not.toContain(`cancel-slow-${index}`);
  });
});
