/**
 * FairEnqueue against a real Redis and BullMQ: a job is added by one script call (BullMQ's own add
 * script wrapped in fair-add), lands at its fair-share tag, reads back as BullMQ wrote it, and
 * runs on a BullMQ worker in tag order; the adds of one turn of the event loop share one script
 * call, each with its own tag and its own answer.
 */
import { randomBytes } from "node:crypto";
import {
  COALESCE_MAX_HOLD_MS,
  createKeys,
  createRedis,
  FAIR_ADD_MAX_BYTES,
  FAIR_ADD_MAX_JOBS,
  FAIR_PLACEHOLDER_PRIORITY,
  FAIR_UNITS,
  FairTags,
  type JobData,
  type Keys,
  QUEUE_NAMES,
  type RedisClient,
} from "@cascade/shared";
import { Job, Queue, Worker } from "bullmq";
import { afterAll, beforeEach, describe, expect, inject, it, vi } from "vitest";
import { FairEnqueue } from "./fair-enqueue.js";

const isCluster = inject("redisCluster");
const redis: RedisClient = createRedis(inject("redisUrl"), { cluster: isCluster });
const opened: Array<{ close(): Promise<void> }> = [];
let keys: Keys;
let queue: Queue;
let enqueue: FairEnqueue;
let warnings: string[];

function jobData(tenant: string, priority = 5): JobData {
  return {
    v: 1,
    tenant,
    request: { messages: [{ role: "user", content: "hi" }] },
    route: "default",
    chain: [{ model: "fast" }],
    priority,
    created_at: 1,
    deadline_at: 2,
  } as unknown as JobData;
}

async function commandCalls(name: string): Promise<number> {
  const line = (await redis.info("commandstats"))
    .split("\r\n")
    .find((row) => row.startsWith(`cmdstat_${name}:`));
  return Number(/calls=(\d+)/.exec(line ?? "")?.[1] ?? 0);
}

beforeEach(async () => {
  keys = createKeys(`test-enqueue-${randomBytes(4).toString("hex")}`);
  queue = new Queue(QUEUE_NAMES.completions, { connection: redis as never, prefix: keys.bullPrefix });
  opened.push(queue);
  warnings = [];
  // Batches held for their whole turn, however long it takes (the bound has its own test).
  enqueue = new FairEnqueue(
    queue as never,
    redis,
    new FairTags(redis, keys, undefined, Number.POSITIVE_INFINITY),
    (message) => warnings.push(message),
  );
});

afterAll(async () => {
  for (const item of opened) await item.close();
  redis.disconnect();
});

describe("FairEnqueue", () => {
  it.each([
    ["one script", true],
    ["MULTI fallback", false],
  ])(
    "keeps a job whose placement failed after BullMQ added it (%s): at the back of the line, not lost",
    async (_, oneScript) => {
      const enqueue = new FairEnqueue(
        queue as never,
        redis,
        new FairTags(redis, keys),
        (message) => warnings.push(message),
        oneScript,
      );
      await enqueue.add("warm-up", jobData("a"), 5);
      // The fair clock of the wrong type: the placement fails after it took the job out of the set.
      await redis.set(keys.fairClock, "not a hash");
      await enqueue.add("job-placement-failed", jobData("a"), 5);
      const score = await redis.zscore(keys.completionQueuePrioritized, "job-placement-failed");
      expect(score).not.toBeNull();
      expect(Math.floor(Number(score) / FAIR_UNITS.scoreStep)).toBe(FAIR_PLACEHOLDER_PRIORITY);
      expect((await Job.fromId(queue, "job-placement-failed"))?.id).toBe("job-placement-failed");
      await redis.del(keys.fairClock);
    },
  );

  it("adds a job at its tag in one script call, no MULTI (on a cluster too)", async () => {
    await enqueue.add("warm-up", jobData("a"), 5);
    // A cluster client asks any node for its stats: count on a single server only.
    const counted = !isCluster;
    const [multi, evalsha] = [await commandCalls("multi"), await commandCalls("evalsha")];
    await enqueue.add("job-1", jobData("a"), 5);
    if (counted) {
      expect(await commandCalls("multi")).toBe(multi);
      // The commandstats read itself is no script call.
      expect(await commandCalls("evalsha")).toBe(evalsha + 1);
    }
    expect(warnings).toEqual([]);
    const job = await Job.fromId(queue, "job-1");
    // a's second job at priority 5: tag 2 × 12 plus 4 gaps.
    const tag = 2 * FAIR_UNITS.tagUnit + 4 * FAIR_UNITS.gap;
    expect(job?.priority).toBe(tag);
    expect(job?.opts.priority).toBe(tag);
    expect(job?.opts.attempts).toBe(3);
    expect(job?.data.tenant).toBe("a");
    expect(await queue.getJobState("job-1")).toBe("prioritized");
    const score = Number(await redis.zscore(keys.completionQueuePrioritized, "job-1"));
    expect(Math.floor(score / FAIR_UNITS.scoreStep)).toBe(tag);
    expect(Math.floor(score / FAIR_UNITS.scoreStep)).not.toBe(FAIR_PLACEHOLDER_PRIORITY);
  });

  it("interleaves tenants and a worker takes the jobs in tag order", async () => {
    for (let index = 0; index < 3; index += 1) await enqueue.add(`a-${index}`, jobData("a"), 5);
    for (let index = 0; index < 3; index += 1) await enqueue.add(`b-${index}`, jobData("b"), 5);
    await enqueue.add("a-urgent", jobData("a", 1), 1);
    const taken: string[] = [];
    const worker = new Worker(
      QUEUE_NAMES.completions,
      async (job) => {
        taken.push(job.id as string);
      },
      { connection: redis.duplicate() as never, prefix: keys.bullPrefix, concurrency: 1 },
    );
    opened.push(worker);
    await vi.waitFor(() => expect(taken).toHaveLength(7), { timeout: 10_000 });
    // a's tags 12, 24, 36; b starts at the head's tag (a-0's, 12): 24, 36, 48; a tie goes to the
    // job queued first; a's priority-1 job is 4 gaps ahead of all of them.
    expect(taken).toEqual(["a-urgent", "a-0", "a-1", "b-0", "a-2", "b-1", "b-2"]);
  });

  it("puts the job at the same tag through the fallback MULTI", async () => {
    const multi = new FairEnqueue(queue as never, redis, new FairTags(redis, keys), undefined, false);
    await enqueue.add("one-script", jobData("a"), 5);
    const before = isCluster ? 0 : await commandCalls("multi");
    await multi.add("in-multi", jobData("a"), 5);
    if (!isCluster) expect(await commandCalls("multi")).toBe(before + 1);
    const [first, second] = [await Job.fromId(queue, "one-script"), await Job.fromId(queue, "in-multi")];
    expect(second?.priority).toBe((first?.priority ?? 0) + FAIR_UNITS.tagUnit);
    expect(second?.opts.priority).toBe(second?.priority);
    // fair-add hands BullMQ's add its options unpacked and packed again with the tag: every other
    // option reads back as BullMQ's own add (in the MULTI) stored it.
    const rest = (job: typeof first) => ({ ...job?.opts, jobId: undefined, priority: undefined });
    expect(rest(first)).toEqual(rest(second));
    expect(Object.keys(first?.opts ?? {}).length).toBeGreaterThan(3);
    expect(await queue.getJobState("in-multi")).toBe("prioritized");
  });

  it("answers an existing job's id for a duplicate, leaving it and the tags alone", async () => {
    await enqueue.add("same", jobData("a"), 5);
    const clock = await redis.hgetall(keys.fairClock);
    const score = await redis.zscore(keys.completionQueuePrioritized, "same");
    await enqueue.add("same", jobData("a", 1), 1);
    expect(await redis.hgetall(keys.fairClock)).toEqual(clock);
    expect(await redis.zscore(keys.completionQueuePrioritized, "same")).toBe(score);
  });

  it("sends the adds of one turn in one script call, at the tags one at a time gives them", async () => {
    await enqueue.add("warm-up", jobData("a"), 5);
    await enqueue.add("existing", jobData("b"), 5);
    const clockBefore = await redis.hgetall(keys.fairClock);
    const evalsha = isCluster ? 0 : await commandCalls("evalsha");
    // Not awaited one by one: all seven are asked for in this turn.
    const added = await Promise.all([
      ...[0, 1, 2].map((index) => enqueue.add(`a-${index}`, jobData("a"), 5)),
      ...[0, 1, 2].map((index) => enqueue.add(`b-${index}`, jobData("b"), 5)),
      enqueue.add("a-urgent", jobData("a", 1), 1),
      // A duplicate in the batch: BullMQ answers its id and no tag is spent on it.
      enqueue.add("existing", jobData("b", 1), 1),
    ]);
    expect(added).toHaveLength(8);
    if (!isCluster) expect(await commandCalls("evalsha")).toBe(evalsha + 1);
    expect(warnings).toEqual([]);
    const priorityOf = async (id: string) => (await Job.fromId(queue, id))?.priority;
    const unit = FAIR_UNITS.tagUnit;
    const four = 4 * FAIR_UNITS.gap;
    // warm-up took a's tag 1 unit and existing b's 2 (b started at the head's tag, warm-up's):
    // a goes on from 1, b from 2, each job one unit after its tenant's last; a's priority-1 job
    // has its own line (its last tag there was 0) and no gaps.
    expect(await Promise.all(["a-0", "a-1", "a-2"].map(priorityOf))).toEqual([
      2 * unit + four,
      3 * unit + four,
      4 * unit + four,
    ]);
    expect(await Promise.all(["b-0", "b-1", "b-2"].map(priorityOf))).toEqual([
      3 * unit + four,
      4 * unit + four,
      5 * unit + four,
    ]);
    expect(await priorityOf("a-urgent")).toBe(Number(clockBefore.v ?? 0) + unit);
    expect(await priorityOf("existing")).toBe(2 * unit + four);
    expect(await redis.hget(keys.fairClock, "last:1:b")).toBeNull();
  });

  it(`sends a batch once its first add has waited ${COALESCE_MAX_HOLD_MS} ms, in a long turn`, async () => {
    const bounded = new FairEnqueue(queue as never, redis, new FairTags(redis, keys), (message) =>
      warnings.push(message),
    );
    await bounded.add("warm-up", jobData("a"), 5);
    const evalsha = isCluster ? 0 : await commandCalls("evalsha");
    const spin = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) {}
    };
    // One turn: the awaits below are microtasks, nothing waits for I/O until all three are asked.
    const microtasks = async () => {
      for (let tick = 0; tick < 5; tick += 1) await new Promise<void>((resolve) => queueMicrotask(resolve));
    };
    const adds = [bounded.add("long-1", jobData("a"), 5)];
    await microtasks();
    spin(4 * COALESCE_MAX_HOLD_MS);
    // Asked for past the bound: it goes with long-1 at once; long-3 then starts a new batch.
    adds.push(bounded.add("long-2", jobData("a"), 5));
    await microtasks();
    spin(4 * COALESCE_MAX_HOLD_MS);
    adds.push(bounded.add("long-3", jobData("a"), 5));
    await Promise.all(adds);
    if (!isCluster) expect(await commandCalls("evalsha")).toBe(evalsha + 2);
    const priorities = await Promise.all(
      ["long-1", "long-2", "long-3"].map(async (id) => (await Job.fromId(queue, id))?.priority),
    );
    expect(priorities).toEqual([2, 3, 4].map((n) => n * FAIR_UNITS.tagUnit + 4 * FAIR_UNITS.gap));
  });

  it("fails only the add that failed: the others in its script call are added", async () => {
    await enqueue.add("warm-up", jobData("a"), 5);
    // Not a hash where a job's hash would be: BullMQ's add of that id raises WRONGTYPE.
    await redis.set(keys.completionJob("broken"), "not a job");
    const results = await Promise.allSettled([
      enqueue.add("fine-1", jobData("a"), 5),
      enqueue.add("broken", jobData("a"), 5),
      enqueue.add("fine-2", jobData("b"), 5),
    ]);
    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
    expect(await queue.getJobState("fine-1")).toBe("prioritized");
    expect(await queue.getJobState("fine-2")).toBe("prioritized");
    expect(await redis.get(keys.completionJob("broken"))).toBe("not a job");
  });

  it(`splits a turn's adds into script calls of at most ${FAIR_ADD_MAX_JOBS} jobs, tags in order`, async () => {
    await enqueue.add("warm-up", jobData("a"), 5);
    const evalsha = isCluster ? 0 : await commandCalls("evalsha");
    const count = 2 * FAIR_ADD_MAX_JOBS + 3;
    const ids = Array.from({ length: count }, (_, index) => `many-${index}`);
    await Promise.all(ids.map((id) => enqueue.add(id, jobData("a"), 5)));
    if (!isCluster) expect(await commandCalls("evalsha")).toBe(evalsha + 3);
    const priorities = await Promise.all(ids.map(async (id) => (await Job.fromId(queue, id))?.priority));
    expect(priorities).toEqual(ids.map((_, index) => (index + 2) * FAIR_UNITS.tagUnit + 4 * FAIR_UNITS.gap));
  });

  it(`starts a new script call before a job that would take one past ${FAIR_ADD_MAX_BYTES / 2 ** 20} MiB`, async () => {
    await enqueue.add("warm-up", jobData("a"), 5);
    const evalsha = isCluster ? 0 : await commandCalls("evalsha");
    // 0.4 Mi characters of 2-byte UTF-8 each: two of these pass 1 MiB, one does not.
    const big = (): JobData =>
      ({
        ...jobData("a"),
        request: { messages: [{ role: "user", content: "é".repeat(400_000) }] },
      }) as JobData;
    await Promise.all([
      enqueue.add("big-1", big(), 5),
      enqueue.add("big-2", big(), 5),
      enqueue.add("small", jobData("a"), 5),
    ]);
    if (!isCluster) expect(await commandCalls("evalsha")).toBe(evalsha + 2);
    for (const id of ["big-1", "big-2", "small"]) expect(await queue.getJobState(id)).toBe("prioritized");
  });

  /**
   * Adds `jobs` ([id, tenant, priority]) on two fresh, empty queues: all in one turn on one, one at
   * a time in the same order on the other (after `prepare` on each). Returns both queues' BullMQ
   * priorities of the jobs, in order, and how many rebases each fair clock made.
   */
  async function batchAndOneAtATime(
    jobs: Array<[string, string, number]>,
    prepare: (keys: Keys) => Promise<void> = async () => {},
  ) {
    const sides = await Promise.all(
      ["batch", "single"].map(async (side) => {
        const sideKeys = createKeys(`test-enqueue-${side}-${randomBytes(4).toString("hex")}`);
        const sideQueue = new Queue(QUEUE_NAMES.completions, {
          connection: redis as never,
          prefix: sideKeys.bullPrefix,
        });
        opened.push(sideQueue);
        // The whole turn in one call, however long it takes (no hold bound).
        const sideEnqueue = new FairEnqueue(
          sideQueue as never,
          redis,
          new FairTags(redis, sideKeys, undefined, Number.POSITIVE_INFINITY),
        );
        // The first add defines fair-add (once BullMQ's scripts are loaded): not part of the test.
        await sideEnqueue.add("first", jobData("z"), 5);
        expect(await sideQueue.remove("first")).toBe(1);
        await prepare(sideKeys);
        return { queue: sideQueue, enqueue: sideEnqueue, keys: sideKeys };
      }),
    );
    const [batch, single] = sides as [(typeof sides)[0], (typeof sides)[0]];
    await Promise.all(
      jobs.map(([id, tenant, priority]) => batch.enqueue.add(id, jobData(tenant, priority), priority)),
    );
    for (const [id, tenant, priority] of jobs)
      await single.enqueue.add(id, jobData(tenant, priority), priority);
    const priorities = (queue: Queue) =>
      Promise.all(jobs.map(async ([id]) => (await Job.fromId(queue, id))?.priority));
    return {
      batch: await priorities(batch.queue),
      single: await priorities(single.queue),
      rebases: await Promise.all(
        sides.map(async (side) => Number(await redis.hget(side.keys.fairClock, "rebases"))),
      ),
    };
  }

  it("gives a turn's jobs the tags one add at a time gives them, tenants after the first included", async () => {
    // On an empty queue the first tenant's jobs must not push the next tenant's behind all of them.
    const jobs: Array<[string, string, number]> = [
      ["a-0", "a", 5],
      ["a-1", "a", 5],
      ["a-2", "a", 5],
      ["a-3", "a", 5],
      ["b-0", "b", 5],
      ["b-1", "b", 5],
      ["a-urgent", "a", 1],
      ["c-0", "c", 5],
      ["a-0", "a", 5],
    ];
    const { batch, single } = await batchAndOneAtATime(jobs);
    expect(batch).toEqual(single);
    // b starts right behind a's first job (the head), not after all four of a's.
    expect(batch[4]).toBe((batch[0] as number) + FAIR_UNITS.tagUnit);
  });

  it("gives a turn's jobs the tags one add at a time gives them when a tenant's tags rebase the clock", async () => {
    const jobs: Array<[string, string, number]> = [
      ["a-0", "a", 5],
      ["a-1", "a", 5],
      ["a-2", "a", 5],
      ["b-0", "b", 5],
      ["b-1", "b", 5],
    ];
    // The clock just short of the rebase point, the queue empty: a's tags pass it, and b's call
    // (the head a-0, past it) rebases, a's jobs with the rest.
    const near = FAIR_UNITS.rebaseAt - 2;
    const { batch, single, rebases } = await batchAndOneAtATime(jobs, async (sideKeys) => {
      await redis.hset(sideKeys.fairClock, "v", near, "top", near);
    });
    expect(rebases).toEqual([1, 1]);
    expect(batch).toEqual(single);
  });
});
