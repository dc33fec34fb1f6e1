/**
 * A tenant's max_concurrency slots against a real Redis: taken up to the cap, refused beyond it,
 * kept by a run that asks again, freed on release, and lapsing when nobody renews them.
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
    const held = await Promise.all(["j1", "j2", "j3"].map((id) => slots.acquire("acme", id, 3)));
    expect(held.every(Boolean)).toBe(true);
    expect(await slots.acquire("acme", "j4", 3)).toBeUndefined();
    // A run that already holds a slot and asks again keeps it.
    const again = await slots.acquire("acme", "j1", 3);
    expect(again).toBeDefined();
    // Other tenants are counted apart.
    const other = await slots.acquire("other", "k1", 1);
    expect(other).toBeDefined();
    await held[1]?.release();
    const fourth = await slots.acquire("acme", "j4", 3);
    expect(fourth).toBeDefined();
    for (const slot of [held[0], held[2], again, fourth, other]) await slot?.release();
    expect(await redis.zcard(keys.tenantRunning("acme"))).toBe(0);
  });

  it("lets a slot nobody renews lapse (a dead worker's), and keeps a renewed one", async () => {
    const slots = new TenantSlots(redis, keys, 400);
    const renewed = await slots.acquire("lapse", "live", 2);
    // A dead worker's slot: taken, then never renewed nor released.
    await redis.zadd(keys.tenantRunning("lapse"), String(Date.now() + 300), "dead");
    expect(await slots.acquire("lapse", "third", 2)).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 700));
    const third = await slots.acquire("lapse", "third", 2);
    expect(third).toBeDefined();
    expect(await redis.zscore(keys.tenantRunning("lapse"), "live")).not.toBeNull();
    await renewed?.release();
    await third?.release();
  });
});
