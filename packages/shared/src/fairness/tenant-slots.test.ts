/**
 * A tenant's max_concurrency slots against a real Redis: taken up to the cap, refused beyond it,
 * kept by a run that asks again, freed on release (handing back the first job refused, to wake),
 * and lapsing when nobody renews them.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createRedis } from "../redis/connection.js";
import { createKeys } from "../redis/keys.js";
import { TenantSlots } from "./tenant-slots.js";

const redis = createRedis(inject("redisUrl"));
const keys = createKeys(`test-slots-${randomBytes(4).toString("hex")}`);

afterAll(() => redis.disconnect());

describe("tenant slots", () => {
  it("takes up to the cap, refuses beyond it, and frees a slot on release", async () => {
    const slots = new TenantSlots(redis, keys, 10_000);
    const job = (id: string, order = 5) => ({ id, order });
    const held = await Promise.all(["j1", "j2", "j3"].map((id) => slots.acquire("acme", id, 3, job(id))));
    expect(held.every(Boolean)).toBe(true);
    expect(await slots.acquire("acme", "j4", 3, job("j4", 7))).toBeUndefined();
    expect(await slots.acquire("acme", "j5", 3, job("j5", 2))).toBeUndefined();
    expect(await slots.acquire("acme", "gone", 3, job("gone", 1))).toBeUndefined();
    // Refused jobs wait in BullMQ's delayed set (j4 may still be on its way: active); "gone" was
    // cancelled since (in neither), so no release hands it back.
    await redis.zadd(keys.completionQueueDelayed, 1, "j5");
    await redis.rpush(keys.completionQueueActive, "j4");
    // A run that already holds a slot and asks again keeps it.
    const again = await slots.acquire("acme", "j1", 3, job("j1"));
    expect(again).toBeDefined();
    // Other tenants are counted apart.
    const other = await slots.acquire("other", "k1", 1, job("k1"));
    expect(other).toBeDefined();
    // A freed slot hands back the first refused job, by order (j5 before j4).
    expect(await held[1]?.release()).toBe("j5");
    const fifth = await slots.acquire("acme", "j5", 3, job("j5", 2));
    expect(fifth).toBeDefined();
    expect(await fifth?.release()).toBe("j4");
    const fourth = await slots.acquire("acme", "j4", 3, job("j4", 7));
    expect(fourth).toBeDefined();
    // Nobody waits any more: a release hands back nothing; a job that took a slot left the set.
    expect(await held[0]?.release()).toBeUndefined();
    for (const slot of [held[2], again, fourth, other]) await slot?.release();
    expect(await redis.zcard(keys.tenantRunning("acme"))).toBe(0);
    expect(await redis.zcard(keys.tenantWaiting("acme"))).toBe(0);
    await redis.del(keys.completionQueueDelayed, keys.completionQueueActive);
  });

  it("lets a slot nobody renews lapse (a dead worker's), and keeps a renewed one", async () => {
    const slots = new TenantSlots(redis, keys, 400);
    const job = (id: string) => ({ id, order: 5 });
    const renewed = await slots.acquire("lapse", "live", 2, job("live"));
    // A dead worker's slot: taken, then never renewed nor released.
    await redis.zadd(keys.tenantRunning("lapse"), String(Date.now() + 300), "dead");
    expect(await slots.acquire("lapse", "third", 2, job("third"))).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 700));
    const third = await slots.acquire("lapse", "third", 2, job("third"));
    expect(third).toBeDefined();
    expect(await redis.zscore(keys.tenantRunning("lapse"), "live")).not.toBeNull();
    await renewed?.release();
    await third?.release();
  });
});
