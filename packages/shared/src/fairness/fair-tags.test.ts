/**
 * The fair-share scripts against a real Redis and real BullMQ jobs: tags interleave tenants by
 * weight, follow the queue's head, bound how far a less urgent job is overtaken (aging), and a
 * rebase shifts every priority the queue holds without changing their order; the sweep puts a job
 * queued across a rebase back in line.
 */
import { randomBytes } from "node:crypto";
import { Queue, Worker } from "bullmq";
import { afterAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createRedis, type RedisClient } from "../redis/connection.js";
import { createKeys, type Keys, QUEUE_NAMES } from "../redis/keys.js";
import { FAIR_UNITS } from "./fair-share-numbers.js";
import { FairTags } from "./fair-tags.js";

const { gap, scoreStep, rebaseAt } = FAIR_UNITS;
const redis: RedisClient = createRedis(inject("redisUrl"));
const opened: Array<{ close(): Promise<void> }> = [];
let keys: Keys;
let queue: Queue;
let tags: FairTags;

function jobData(tenant: string, priority: number) {
  return { v: 1, tenant, priority, request: { messages: [{ role: "user", content: "hi" }] } };
}

/** Adds jobs of one tenant as Cascade does: tags first, then BullMQ. Returns their ids. */
async function enqueue(tenant: string, count: number, priority = 5): Promise<string[]> {
  const priorities = await tags.priorities(tenant, priority, count);
  const ids = priorities.map(() => `${tenant}-${randomBytes(4).toString("hex")}`);
  await queue.addBulk(
    priorities.map((queuePriority, index) => ({
      name: QUEUE_NAMES.completions,
      data: jobData(tenant, priority),
      opts: { jobId: ids[index] as string, priority: queuePriority },
    })),
  );
  return ids;
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
  tags = new FairTags(redis, keys, (tenant) => (tenant === "heavy" ? 3 : undefined));
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
