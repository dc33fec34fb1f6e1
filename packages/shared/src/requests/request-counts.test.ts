import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRedis, type RedisClient } from "../redis/connection.js";
import { createKeys, type Keys } from "../redis/keys.js";
import type { FinishedRequest } from "./finished-request.js";
import {
  addRequestCountTable,
  costPerSuccess,
  countingDay,
  emptyRequestCountTable,
  parseRequestCounts,
  REQUEST_COUNTS_TTL_SECONDS,
  RequestCountRecorder,
} from "./request-counts.js";

const DAY = "2026-12-03";
const AT = Date.parse(`${DAY}T12:00:00Z`);

function request(overrides: Partial<FinishedRequest>): FinishedRequest {
  return {
    door: "job",
    tenant: "acme",
    route: "default",
    firstModel: "gpt",
    status: "succeeded",
    model: "gpt",
    costUsd: 0.001,
    attempts: [],
    createdAtMs: AT,
    finishedAtMs: AT,
    ...overrides,
  };
}

describe("RequestCountRecorder (real Redis)", () => {
  let redis: RedisClient;
  let keys: Keys;
  const errors: unknown[] = [];

  beforeAll(() => {
    redis = createRedis(inject("redisUrl"));
    keys = createKeys(`test-counts-${randomBytes(4).toString("hex")}`);
  });
  afterAll(() => redis.disconnect());

  async function table(tenant = "acme", day = DAY) {
    return parseRequestCounts(await redis.hgetall(keys.requestCounts(tenant, day)));
  }

  it("counts per route and per first model: requests, outcomes, fallbacks and every attempt's cost", async () => {
    const recorder = new RequestCountRecorder(redis, keys, (error) => errors.push(error));
    recorder.finished(request({}));
    recorder.finished(request({ model: "claude", costUsd: 0.003 })); // fell back
    recorder.finished(request({ status: "failed", model: undefined, costUsd: 0.002 }));
    recorder.finished(request({ status: "cancelled", model: undefined, costUsd: 0.0005 }));
    recorder.finished(request({ status: "cancelled", model: undefined, costUsd: 0 }));
    recorder.finished(request({ route: null, firstModel: "claude", model: "claude", door: "gateway" }));
    recorder.finished(request({ tenant: "other" }));
    recorder.finished(request({ finishedAtMs: AT + 86_400_000 }));
    // Counts are gathered in memory and written every 200 ms: write them now.
    await recorder.flush();

    const counts = await table();
    expect(counts.routes).toEqual({
      default: { requests: 3, succeeded: 2, failed: 1, fallbacks: 1, costUsd: 0.0065 },
    });
    expect(counts.models).toEqual({
      gpt: { requests: 3, succeeded: 2, failed: 1, fallbacks: 1, costUsd: 0.0065 },
      claude: { requests: 1, succeeded: 1, failed: 0, fallbacks: 0, costUsd: 0.001 },
    });
    expect(counts.total).toEqual({ requests: 4, succeeded: 3, failed: 1, fallbacks: 1, costUsd: 0.0075 });
    expect((await table("other")).total.requests).toBe(1);
    expect((await table("acme", "2026-12-04")).total.requests).toBe(1);
    const ttl = await redis.ttl(keys.requestCounts("acme", DAY));
    expect(ttl).toBeGreaterThan(REQUEST_COUNTS_TTL_SECONDS - 60);
    expect(errors).toEqual([]);
  });

  it("counts each request on the day it ended when one tenant's requests cross midnight in any order", async () => {
    const recorder = new RequestCountRecorder(redis, keys, (error) => errors.push(error));
    const midnight = Date.parse("2026-12-05T00:00:00Z");
    const ends = [midnight - 1, midnight, midnight - 5, midnight + 5, midnight - 1];
    for (const at of ends) recorder.finished(request({ tenant: "late", finishedAtMs: at, route: "r" }));
    await recorder.flush();
    expect((await table("late", "2026-12-04")).routes.r?.requests).toBe(3);
    expect((await table("late", "2026-12-05")).routes.r?.requests).toBe(2);
    expect(errors).toEqual([]);
  });

  it("counts a stray charge's cost under the same rows as a finished request's, no request counted", async () => {
    const recorder = new RequestCountRecorder(redis, keys, (error) => errors.push(error));
    recorder.finished(request({ tenant: "stray", costUsd: 0.001 }));
    recorder.charged({ tenant: "stray", route: "default", firstModel: "gpt", costUsd: 0.002, atMs: AT });
    recorder.charged({ tenant: "stray", route: null, firstModel: "", costUsd: 0.004, atMs: AT });
    await recorder.flush();
    const counts = await table("stray");
    expect(counts.total).toMatchObject({ requests: 1, costUsd: 0.007 });
    expect(counts.routes.default).toMatchObject({ requests: 1, costUsd: 0.003 });
    expect(counts.models.gpt).toMatchObject({ requests: 1, costUsd: 0.003 });
    expect(errors).toEqual([]);
  });

  it("writes gathered counts within the flush interval, and close() writes what is left at once", async () => {
    const recorder = new RequestCountRecorder(redis, keys, (error) => errors.push(error), 100);
    recorder.finished(request({ tenant: "lag" }));
    recorder.finished(request({ tenant: "lag", status: "failed", model: undefined }));
    // Not yet written: the counts wait in memory for the next write.
    expect((await table("lag")).total.requests).toBe(0);
    const startedAt = Date.now();
    await expect.poll(async () => (await table("lag")).total.requests, { interval: 10 }).toBe(2);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect((await table("lag")).total).toMatchObject({ succeeded: 1, failed: 1 });
    recorder.finished(request({ tenant: "lag" }));
    await recorder.close();
    expect((await table("lag")).total.requests).toBe(3);
    // After close, each request is written at once (nothing waits on a timer at exit).
    recorder.finished(request({ tenant: "lag" }));
    await recorder.flush();
    expect((await table("lag")).total.requests).toBe(4);
    expect(errors).toEqual([]);
  });

  it("reports a failed write to onError and never throws", async () => {
    const broken = createRedis(inject("redisUrl"));
    broken.disconnect();
    const seen: unknown[] = [];
    const recorder = new RequestCountRecorder(broken, keys, (error) => seen.push(error));
    expect(() => recorder.finished(request({}))).not.toThrow();
    await expect.poll(() => seen.length).toBeGreaterThan(0);
  });
});

describe("countingDay", () => {
  it("is the UTC day a request ended, across day boundaries in any order", () => {
    const midnight = Date.UTC(2026, 11, 4);
    const cases: Array<[number, string]> = [
      [midnight - 1, "2026-12-03"],
      [midnight, "2026-12-04"],
      [midnight + 86_399_999, "2026-12-04"],
      [midnight + 86_400_000, "2026-12-05"],
      [midnight - 1, "2026-12-03"],
      [Date.UTC(2027, 0, 1) - 1, "2026-12-31"],
      [Date.UTC(2027, 0, 1), "2027-01-01"],
      [midnight + 5, "2026-12-04"],
      [0, "1970-01-01"],
      [-1, "1969-12-31"],
    ];
    for (const [at, day] of cases) expect(countingDay(at), `${at}`).toBe(day);
  });
});

describe("request count tables", () => {
  it("reads ids holding ':' whole and ignores fields it does not know", () => {
    const table = parseRequestCounts({
      "route:team:a:requests": "2",
      "route:team:a:succeeded": "1",
      "route:team:a:cost": "0.30000000000000004",
      "model:gpt:failed": "1",
      "total:requests": "2",
      "route:x:unknown": "5",
      stray: "1",
    });
    expect(table.routes).toEqual({
      "team:a": { requests: 2, succeeded: 1, failed: 0, fallbacks: 0, costUsd: 0.3 },
    });
    expect(table.models.gpt?.failed).toBe(1);
    expect(table.total.requests).toBe(2);
  });

  it("adds days together", () => {
    const day = () =>
      parseRequestCounts({ "route:a:requests": "1", "route:a:cost": "0.1", "total:requests": "1" });
    const sum = addRequestCountTable(addRequestCountTable(emptyRequestCountTable(), day()), day());
    expect(sum.routes.a).toMatchObject({ requests: 2, costUsd: 0.2 });
    expect(sum.total.requests).toBe(2);
  });

  it("cost per success is null without a success", () => {
    expect(costPerSuccess({ succeeded: 0, costUsd: 0.5 })).toBeNull();
    expect(costPerSuccess({ succeeded: 3, costUsd: 0.01 })).toBe(0.0033333333);
  });
});
