/**
 * The fair-share scripts against a real Redis and real BullMQ jobs: tags interleave tenants by
 * weight, follow the queue's head, bound how far a less urgent job is overtaken (aging), and a
 * rebase shifts every priority the queue holds without changing their order; the sweep puts a job
 * queued across a rebase back in line.
 */
import { randomBytes } from "node:crypto";
import { createIORedisClient, Job, Queue, Worker } from "bullmq";
import { afterAll, beforeEach, describe, expect, inject, it, vi } from "vitest";
import { createRedis, type RedisClient } from "../redis/connection.js";
import { createKeys, type Keys, QUEUE_NAMES } from "../redis/keys.js";
import { FAIR_UNITS } from "./fair-share-numbers.js";
import { FAIR_PLACEHOLDER_PRIORITY, FairTags } from "./fair-tags.js";

const { gap, scoreStep, rebaseAt } = FAIR_UNITS;
const redis: RedisClient = createRedis(inject("redisUrl"));
const opened: Array<{ close(): Promise<void> }> = [];
let keys: Keys;
let queue: Queue;
let tags: FairTags;

function jobData(tenant: string, priority: number) {
  return { v: 1, tenant, priority, request: { messages: [{ role: "user", content: "hi" }] } };
}

let sequence = 0;

/** Tenants' weights (the rest weigh 1). */
const WEIGHTS: Record<string, number> = { heavy: 3, w6: 6, w11: 11, w100: 100 };

/** Adds jobs of one tenant as Cascade does: tags first, then BullMQ. Returns their ids. */
async function enqueue(tenant: string, count: number, priority = 5): Promise<string[]> {
  const priorities = await tags.priorities(tenant, priority, count);
  // Numbered, not random: 10,000 random 32-bit ids collide about once in 90 runs, and BullMQ
  // drops a second job with an id it holds (one overtaking job fewer: 8,998 for 8,999).
  const ids = priorities.map((_, index) => `${tenant}-${sequence + index}`);
  sequence += ids.length;
  await queue.addBulk(
    priorities.map((queuePriority, index) => ({
      name: QUEUE_NAMES.completions,
      data: jobData(tenant, priority),
      opts: { jobId: ids[index] as string, priority: queuePriority },
    })),
  );
  return ids;
}

/**
 * Adds one job as the API does: BullMQ's add at the placeholder priority and the fair-place script
 * in one MULTI. Returns the EXEC's replies (the add's, then the placement's).
 */
async function addPlaced(
  tenant: string,
  priority = 5,
  jobId = `${tenant}-${randomBytes(4).toString("hex")}`,
) {
  const transaction = createIORedisClient(redis as never).multi();
  const job = new Job(
    queue,
    QUEUE_NAMES.completions,
    jobData(tenant, priority),
    { jobId, priority: FAIR_PLACEHOLDER_PRIORITY, attempts: 3 },
    jobId,
  );
  job.addJob(transaction).catch(() => {});
  tags.queuePlace(transaction, tenant, priority, jobId);
  const replies = (await transaction.exec()) ?? [];
  return { jobId, added: replies[0]?.[1], placed: Number(replies[1]?.[1]) };
}

/** The prioritized set in order: job id and BullMQ priority. */
async function line(): Promise<Array<{ id: string; priority: number }>> {
  const flat = await redis.zrange(keys.completionQueuePrioritized, "0", "-1", "WITHSCORES");
  const members: Array<{ id: string; priority: number }> = [];
  for (let index = 0; index < flat.length; index += 2)
    members.push({ id: flat[index] as string, priority: Math.floor(Number(flat[index + 1]) / scoreStep) });
  return members;
}

/** Takes `count` jobs off the front, as a worker would (ZPOPMIN). */
async function serve(count: number): Promise<string[]> {
  const popped = await redis.zpopmin(keys.completionQueuePrioritized, count);
  return popped.filter((_, index) => index % 2 === 0);
}

beforeEach(async () => {
  keys = createKeys(`test-fair-${randomBytes(4).toString("hex")}`);
  queue = new Queue(QUEUE_NAMES.completions, { connection: redis as never, prefix: keys.bullPrefix });
  opened.push(queue);
  tags = new FairTags(redis, keys, (tenant) => WEIGHTS[tenant]);
});

afterAll(async () => {
  for (const item of opened) await item.close();
  redis.disconnect();
});

describe("fair-share tags", () => {
  it("puts a tenant arriving behind a backlog in round robin with it, not behind it", async () => {
    await enqueue("a", 1000);
    await serve(100);
    const b = await enqueue("b", 10);
    const order = (await line()).map((member) => member.id);
    // b's jobs alternate with a's right behind the head (a tie goes to the job queued first).
    expect(b.map((id) => order.indexOf(id))).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
  });

  it("gives a weight-3 tenant three jobs for each of a weight-1 tenant's", async () => {
    await enqueue("a", 300);
    await enqueue("heavy", 300);
    const first = (await line()).slice(0, 200).map((member) => member.id);
    const heavy = first.filter((id) => id.startsWith("heavy-")).length;
    expect(heavy).toBeGreaterThanOrEqual(148);
    expect(heavy).toBeLessThanOrEqual(152);
  });

  it("gives any weight its share, not one rounded to a divisor of 12 (11 was 6, 100 was 12)", async () => {
    await enqueue("w6", 600);
    await enqueue("w11", 600);
    const first = (await line()).slice(0, 340).map((member) => member.id);
    // 11 / 17 of the line's front.
    const heavier = first.filter((id) => id.startsWith("w11-")).length;
    expect(heavier).toBeGreaterThanOrEqual(216);
    expect(heavier).toBeLessThanOrEqual(224);
    // What a release before this one reads stays whole (it would pass a fraction on as a
    // priority); the fraction has a field of its own.
    const clock = await redis.hgetall(keys.fairClock);
    for (const field of ["v", "top", "last:5:w11", "last:5:w6"]) expect(clock[field]).toMatch(/^\d+$/);
    expect(Number(clock["frac:5:w11"])).toBeGreaterThanOrEqual(0);
    expect(Number(clock["frac:5:w11"])).toBeLessThan(1);
    // w11 started at the clock, the head's tag (w6's first: 2): 600 steps of 12 / 11 on, 656 and 6 / 11.
    expect(Number(clock["last:5:w11"])).toBe(656);
    expect(Number(clock["frac:5:w11"])).toBeCloseTo(6 / 11, 9);

    await redis.del(keys.completionQueuePrioritized);
    await enqueue("a", 50);
    await enqueue("w100", 1000);
    const front = (await line()).slice(0, 505).map((member) => member.id);
    // 1 / 101 of it: about 5 of a's jobs.
    const light = front.filter((id) => id.startsWith("a-")).length;
    expect(light).toBeGreaterThanOrEqual(4);
    expect(light).toBeLessThanOrEqual(7);
  });

  it("starts an idle tenant at the clock once the queue is empty, not in the past", async () => {
    await enqueue("a", 50);
    await serve(50);
    const [first] = await tags.priorities("b", 1, 1);
    const clock = await redis.hgetall(keys.fairClock);
    expect(Number(clock.top)).toBeGreaterThanOrEqual(50 * 12);
    expect(first).toBeGreaterThan(50 * 12);
  });

  it("keeps a tenant's urgent job out from behind its own less urgent backlog", async () => {
    await enqueue("a", 500, 5);
    const [urgent] = await enqueue("a", 1, 1);
    expect((await line())[0]?.id).toBe(urgent);
  });

  it("overtakes a priority-10 job by at most gap / 12 = 1,000 rounds per step (9,000 jobs of one tenant)", async () => {
    const [late] = await enqueue("patient", 1, 10);
    // One weight-1 tenant streams priority-1 jobs while a worker keeps up with part of them.
    let overtaken = 0;
    for (let round = 0; round < 100; round += 1) {
      await enqueue("urgent", 100, 1);
      const served = await serve(90);
      if (served.includes(late as string)) {
        overtaken += served.indexOf(late as string);
        break;
      }
      overtaken += served.length;
    }
    const position = (await line()).findIndex((member) => member.id === late);
    const total = overtaken + Math.max(0, position);
    console.log(
      `[fairness] a priority-10 job was overtaken by ${total} priority-1 jobs (bound ${(9 * gap) / 12})`,
    );
    // Urgent job k has tag 12 + 12k; the patient one 12 + 9 × gap: jobs 1 to 8,999 go first (the
    // 9,000th ties and the job queued first wins).
    expect(total).toBe((9 * gap) / 12 - 1);
  }, 60_000);
});

describe("fair-share placement in the add's own MULTI", () => {
  it("gives each job the tag the two-step path gives, in its score, its hash and its options", async () => {
    await enqueue("a", 100);
    await serve(10);
    // b arrives behind a's backlog: its jobs alternate with a's right behind the head (a tie
    // goes to the job queued first), as in the first test above.
    const placed = [];
    for (let index = 0; index < 5; index += 1) placed.push(await addPlaced("b"));
    const order = (await line()).map((member) => member.id);
    expect(placed.map((job) => order.indexOf(job.jobId))).toEqual([2, 4, 6, 8, 10]);
    for (const { jobId, added, placed: priority } of placed) {
      expect(added).toBe(jobId);
      const stored = await Job.fromId(queue, jobId);
      expect(stored?.priority).toBe(priority);
      expect(stored?.opts.priority).toBe(priority);
      expect(stored?.opts.attempts).toBe(3);
    }
    // The tenant's last tag moved with them: the two-step path hands out the next step.
    const [next] = await tags.priorities("b", 5, 1);
    expect(next).toBe((placed[4]?.placed ?? 0) + 12);
    expect((await line()).some((member) => member.priority === FAIR_PLACEHOLDER_PRIORITY)).toBe(false);
  });

  it("keeps BullMQ's tie order (the score's counter) and its workers take placed jobs in line", async () => {
    const first = await addPlaced("a");
    const second = await addPlaced("b");
    const third = await addPlaced("a");
    // a and b both start at the clock: a's first and b's first tie, the one queued first wins.
    expect((await line()).map((member) => member.id)).toEqual([first.jobId, second.jobId, third.jobId]);
    const taken: string[] = [];
    const worker = new Worker(
      QUEUE_NAMES.completions,
      async (job) => {
        taken.push(job.id as string);
      },
      { connection: redis.duplicate() as never, prefix: keys.bullPrefix, concurrency: 1 },
    );
    opened.push(worker);
    await vi.waitFor(() => expect(taken).toHaveLength(3), { timeout: 10_000 });
    expect(taken).toEqual([first.jobId, second.jobId, third.jobId]);
  });

  it("leaves an existing job with the same id alone and spends no tag", async () => {
    const first = await addPlaced("a", 5, "same-id");
    const before = await redis.hgetall(keys.fairClock);
    const again = await addPlaced("a", 1, "same-id");
    expect(again.added).toBe("same-id");
    expect(again.placed).toBe(0);
    expect(await redis.hgetall(keys.fairClock)).toEqual(before);
    expect((await line()).map((member) => member.priority)).toEqual([first.placed]);
  });

  it("rebases around the job it places: the others shift, it lands at its tag after the rebase", async () => {
    const before = await enqueue("a", 20, 5);
    // Everything as after a long run: just under the rebase point.
    const lift = rebaseAt - 10;
    const members = await line();
    await redis.zadd(
      keys.completionQueuePrioritized,
      ...members.flatMap((member) => [String((member.priority + lift) * scoreStep), member.id]),
    );
    const clock = await redis.hgetall(keys.fairClock);
    await redis.hset(
      keys.fairClock,
      ...Object.entries(clock).flatMap(([field, value]) => [field, String(Number(value) + lift)]),
    );
    const placed = await addPlaced("b", 5);
    expect(Number(await redis.hget(keys.fairClock, "rebases"))).toBe(1);
    const after = await line();
    // b starts at the head's tag after the rebase and ties with a's second job (which was first).
    expect(after.map((member) => member.id)).toEqual([
      ...before.slice(0, 2),
      placed.jobId,
      ...before.slice(2),
    ]);
    expect(placed.placed).toBeLessThan(5 * gap);
    expect(Number(await redis.hget(keys.completionJob(placed.jobId), "priority"))).toBe(placed.placed);
  });

  it("places a job whose placement did not run in its MULTI when asked again", async () => {
    const jobId = "unplaced";
    await queue.add(QUEUE_NAMES.completions, jobData("a", 5), { jobId, priority: FAIR_PLACEHOLDER_PRIORITY });
    const priority = await tags.place("a", 5, jobId);
    expect(priority).toBe(12 + 4 * gap);
    expect(await line()).toEqual([{ id: jobId, priority }]);
    expect((await Job.fromId(queue, jobId))?.opts.priority).toBe(priority);
  });
});

describe("rebase and sweep", () => {
  it("clamps a tenant far ahead at BullMQ's own limit, which BullMQ accepts", async () => {
    // A tenant whose last tag is near the top (a huge backlog of its own at priority 10).
    await redis.hset(keys.fairClock, "last:10:far", String(FAIR_UNITS.limit - 10));
    const priorities = await tags.priorities("far", 10, 5);
    expect(Math.max(...priorities)).toBe(FAIR_UNITS.limit);
    const ids = await enqueue("far", 3, 10);
    expect(ids).toHaveLength(3);
    expect((await line()).every((member) => member.priority <= 2 ** 21 - 1)).toBe(true);
  });

  it("shifts every priority down when the clock reaches the rebase point, keeping the order", async () => {
    await enqueue("a", 200, 5);
    await enqueue("b", 100, 10);
    const delayed = await queue.add(QUEUE_NAMES.completions, jobData("a", 5), {
      jobId: "delayed-1",
      priority: rebaseAt + 5000,
      delay: 60_000,
    });
    const worker = new Worker(QUEUE_NAMES.completions, null, {
      connection: redis as never,
      prefix: keys.bullPrefix,
      autorun: false,
    });
    opened.push(worker);
    const active = await worker.getNextJob("token-1");
    // The clock as it would be after a long run: push everything up to just under the rebase point.
    const before = await line();
    const lift = rebaseAt - 10;
    const lifted = before.flatMap((member) => [String((member.priority + lift) * scoreStep), member.id]);
    await redis.zadd(keys.completionQueuePrioritized, ...lifted);
    for (const member of before)
      await redis.hset(keys.completionJob(member.id), "priority", member.priority + lift);
    await redis.hset(keys.completionJob(active?.id as string), "priority", rebaseAt + 6000);
    const clock = await redis.hgetall(keys.fairClock);
    const fields: string[] = [];
    for (const [field, value] of Object.entries(clock))
      if (field.startsWith("last:") || field === "top" || field === "v")
        fields.push(field, String(Number(value) + lift));
    await redis.hset(keys.fairClock, ...fields);

    const [added] = await enqueue("c", 1, 5);
    const after = await line();
    const clockAfter = await redis.hgetall(keys.fairClock);
    expect(Number(clockAfter.rebases)).toBe(1);
    const by = Number(clockAfter.rebased_by);
    expect(by).toBeGreaterThan(rebaseAt - 1000);
    // Same order for the jobs that were there, each `by` lower, hash and score alike.
    const kept = after.filter((member) => member.id !== added);
    expect(kept.map((member) => member.id)).toEqual(before.map((member) => member.id));
    for (const member of kept) {
      const original = before.find((entry) => entry.id === member.id);
      expect(member.priority).toBe((original?.priority ?? 0) + lift - by);
      expect(Number(await redis.hget(keys.completionJob(member.id), "priority"))).toBe(member.priority);
    }
    expect(Number(await redis.hget(keys.completionJob(delayed.id as string), "priority"))).toBe(
      rebaseAt + 5000 - by,
    );
    expect(Number(await redis.hget(keys.completionJob(active?.id as string), "priority"))).toBe(
      rebaseAt + 6000 - by,
    );
    // The new job lands in round robin, at the head's tag, not a million places back.
    expect(after.findIndex((member) => member.id === added)).toBeLessThan(5);
    expect(Number(clockAfter.v)).toBeLessThan(100);
  });

  it("puts a job queued across a rebase (its tag from before it) back in line", async () => {
    await enqueue("a", 100, 5);
    await redis.hset(keys.fairClock, "v", String(rebaseAt + 20), "top", String(rebaseAt + 2000));
    const [c] = await enqueue("c", 1, 5);
    const by = Number(await redis.hget(keys.fairClock, "rebased_by"));
    expect(by).toBe(rebaseAt + 19);
    // Its tag computed before that rebase, another process adds it after: about `by` too far back.
    const stale = rebaseAt + 30 + 4 * gap;
    await queue.add(QUEUE_NAMES.completions, jobData("b", 5), { jobId: "straggler", priority: stale });
    expect((await line()).at(-1)?.id).toBe("straggler");

    expect(await tags.sweep(10_000)).toBe(1);
    // One process sweeps per interval.
    expect(await tags.sweep(10_000)).toBe(-1);
    const order = await line();
    expect(order.findIndex((member) => member.id === "straggler")).toBeLessThan(
      order.findIndex((member) => member.id === c),
    );
    expect(order.find((member) => member.id === "straggler")?.priority).toBe(stale - by);
    expect(Number(await redis.hget(keys.completionJob("straggler"), "priority"))).toBe(stale - by);
  });
});

describe("fair-add's handling of BullMQ's packed options", () => {
  it("gives the options the tag as their priority, every other field as it was", async () => {
    // A stand-in for BullMQ's add that reads its options as BullMQ's does.
    tags.defineAdd({
      lua: "local o = cmsgpack.unpack(ARGV[3]); return {o['priority'], o['attempts'], o['jobId'], o['backoff']['type']}",
      keys: 1,
      args: 3,
    });
    // msgpack of {jobId: "j", priority: 2097151, attempts: 3, backoff: {type: "fixed"}}.
    const packed = Buffer.from([
      0x84,
      0xa5,
      ...Buffer.from("jobId"),
      0xa1,
      0x6a,
      0xa8,
      ...Buffer.from("priority"),
      0xce,
      0x00,
      0x1f,
      0xff,
      0xff,
      0xa8,
      ...Buffer.from("attempts"),
      0x03,
      0xa7,
      ...Buffer.from("backoff"),
      0x81,
      0xa4,
      ...Buffer.from("type"),
      0xa5,
      ...Buffer.from("fixed"),
    ]);
    const reply = await tags.add([keys.completionJob("j"), "args", "data", packed], "a", 5, "j");
    // a's first job at priority 5: one tag unit plus 4 gaps.
    expect(reply).toEqual([FAIR_UNITS.tagUnit + 4 * gap, 3, "j", "fixed"]);
  });

  it("leaves options that are not msgpack alone (the job stays at the placeholder), and the add runs", async () => {
    tags.defineAdd({ lua: "return ARGV[3]", keys: 1, args: 3 });
    const reply = await tags.add([keys.completionJob("k"), "args", "data", "{not msgpack"], "a", 5, "k");
    expect(reply).toBe("{not msgpack");
  });
});
