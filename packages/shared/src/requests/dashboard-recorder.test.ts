import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createRedis, type RedisClient } from "../redis/connection.js";
import { createKeys, type Keys } from "../redis/keys.js";
import {
  DASHBOARD_FAILURES_KEPT,
  DASHBOARD_MINUTE_TTL_S,
  DASHBOARD_NO_ROUTE,
  type DashboardFailure,
  DashboardRecorder,
  minuteOf,
} from "./dashboard-recorder.js";
import type { FinishedRequest } from "./finished-request.js";

const AT = Date.parse("2026-12-03T12:00:30Z");

function request(overrides: Partial<FinishedRequest>): FinishedRequest {
  return {
    door: "job",
    tenant: "acme",
    route: "default",
    firstModel: "a",
    status: "succeeded",
    model: "a",
    costUsd: 0.001,
    attempts: [],
    createdAtMs: AT - 1000,
    finishedAtMs: AT,
    ...overrides,
  };
}

describe("DashboardRecorder (real Redis)", () => {
  let redis: RedisClient;
  let keys: Keys;
  let recorder: DashboardRecorder;
  const errors: unknown[] = [];

  beforeAll(() => {
    redis = createRedis(inject("redisUrl"));
    keys = createKeys(`dash-${randomBytes(4).toString("hex")}`);
    recorder = new DashboardRecorder(redis, keys, (error) => errors.push(error));
  });

  afterAll(() => redis.disconnect());

  it("counts a route's requests, outcomes, fallbacks and cost per UTC minute, with an expiry", async () => {
    recorder.finished(request({}));
    recorder.finished(request({ model: "b", costUsd: 0.002 }));
    recorder.finished(request({ status: "failed", model: undefined, costUsd: 0 }));
    recorder.finished(request({ finishedAtMs: AT + 60_000 }));
    recorder.finished(request({ route: null }));
    // Gathered in memory and written every 200 ms: write now.
    await recorder.flush();
    const key = keys.dashboardRouteMinute("default", minuteOf(AT));
    const counts = await redis.hgetall(key);
    expect(counts).toMatchObject({ requests: "3", succeeded: "2", failed: "1", fallbacks: "1" });
    expect(Number(counts.cost_usd)).toBeCloseTo(0.003, 10);
    expect(await redis.ttl(key)).toBeGreaterThan(DASHBOARD_MINUTE_TTL_S - 10);
    expect(await redis.hget(keys.dashboardRouteMinute("default", minuteOf(AT) + 1), "requests")).toBe("1");
    expect(await redis.hget(keys.dashboardRouteMinute(DASHBOARD_NO_ROUTE, minuteOf(AT)), "requests")).toBe(
      "1",
    );
    expect(errors).toEqual([]);
  });

  it("keeps the last failed requests with their attempt trail (a pooled model's deployment too), newest first, bounded", async () => {
    for (let index = 0; index < DASHBOARD_FAILURES_KEPT + 5; index++) {
      recorder.finished(
        request({
          status: "failed",
          model: undefined,
          tenant: `t${index}`,
          attempts: [
            {
              model: "a",
              provider: "pa",
              deployment: "east",
              outcome: "error",
              reason: "server_error",
              http_status: 500,
              message: "upstream said no",
              duration_ms: 12,
              started_at: AT,
            },
            {
              model: "b",
              provider: "pb",
              outcome: "skipped",
              reason: "circuit_open",
              duration_ms: 0,
              started_at: AT,
            },
          ],
        }),
      );
    }
    // Gathered in memory and written every 200 ms: write now.
    await recorder.flush();
    const entries = (await redis.lrange(keys.dashboardFailures, 0, -1)).map(
      (entry) => JSON.parse(entry) as DashboardFailure,
    );
    expect(entries).toHaveLength(DASHBOARD_FAILURES_KEPT);
    expect(entries[0]?.tenant).toBe(`t${DASHBOARD_FAILURES_KEPT + 4}`);
    expect(entries[0]?.attempts).toEqual([
      {
        model: "a",
        provider: "pa",
        deployment: "east",
        outcome: "error",
        reason: "server_error",
        http_status: 500,
        duration_ms: 12,
      },
      { model: "b", provider: "pb", outcome: "skipped", reason: "circuit_open", duration_ms: 0 },
    ]);
    // Upstream messages are not kept: the list is every tenant's, read by admins.
    expect(JSON.stringify(entries)).not.toContain("upstream said no");
  });
});
