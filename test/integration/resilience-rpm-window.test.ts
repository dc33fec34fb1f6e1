/**
 * Contract, "Buckets": an rpm bucket's capacity is `burst`, "so no 60-second window exceeds rpm +
 * burst". A token bucket bounds every window alike: no w-second window holds more than burst +
 * rate × w calls. Three processes' Resilience instances (each its own leases, as workers and the
 * API hold them; twenty call slots each, as a worker's concurrency) admit calls as fast as the
 * bucket lets them on the run's real Redis, taking places in line and coming back late for some,
 * holding leased tokens idle now and then; the calls admitted in every sliding window are counted
 * where they are made (a leased token is used when the process admits from it).
 */
import { createKeys, loadConfig, systemClock } from "@cascade/shared";
import { pino } from "pino";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Resilience } from "../../packages/engine/src/resilience/resilience.js";
import { uniquePrefix } from "../support/cascade-stack.js";
import { testRedis } from "../support/redis-clients.js";

const RPM = 6000; // 100 calls a second
const BURST = 40;
const RUN_MS = 3000;

const connections: ReturnType<typeof testRedis>[] = [];
const instances: Resilience[] = [];
afterAll(async () => {
  for (const resilience of instances) await resilience.close();
  for (const connection of connections) connection.disconnect();
});

/** The most calls in any `windowMs` of sorted times. */
function busiestWindow(times: number[], windowMs: number): number {
  let most = 0;
  let start = 0;
  for (let end = 0; end < times.length; end += 1) {
    while ((times[end] as number) - (times[start] as number) >= windowMs) start += 1;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

describe("an rpm bucket shared by several processes", () => {
  it("admits no more than burst + rate × w calls in any w-second window, leases included", async () => {
    const config = loadConfig(
      {},
      {
        raw: {
          providers: { p: { type: "simulated", limits: { rpm: RPM, burst: BURST } } },
          models: { a: { provider: "p" } },
          routes: { default: { chain: [{ model: "a" }] } },
        },
      },
    );
    const keys = createKeys(uniquePrefix("rpmwindow"));
    const model = config.file.models.a;
    if (!model) throw new Error("no model");
    const times: number[] = [];
    const until = Date.now() + RUN_MS;
    const processLoop = async () => {
      const connection = testRedis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
      connections.push(connection);
      const resilience = new Resilience(
        connection as never,
        config,
        keys,
        pino({ level: "silent" }),
        systemClock,
      );
      instances.push(resilience);
      const request = {
        providerId: "p",
        modelId: "a",
        model,
        tenant: "default",
        user: undefined,
        route: "default",
        tokens: 10,
        costUsd: 0,
        timeoutMs: 10_000,
      };
      // Twenty slots per process, as a worker's concurrency.
      await Promise.all(Array.from({ length: 20 }, (_, slot) => slotLoop(resilience, request, slot)));
    };
    const slotLoop = async (
      resilience: Resilience,
      request: Parameters<Resilience["admit"]>[0],
      slot: number,
    ) => {
      const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      let turn = slot;
      while (Date.now() < until) {
        turn += 1;
        // Jobs take places in line; a worker whose event loop is busy comes back late for its slot.
        const admission = await resilience.admitOrLineUp(request, { reserveMs: 60_000 });
        if (admission.admitted === "in_line") {
          await sleep(admission.waitMs + (turn % 3) * 150);
          const held = await resilience.admitOrLineUp(request, {
            held: { dueMs: admission.dueMs, booked: admission.booked },
          });
          if (held.admitted === true) times.push(Date.now());
        } else if (admission.admitted) {
          times.push(Date.now());
          // Now and then a process is busy elsewhere while it holds leased tokens.
          if (turn % 7 === 0) await sleep(200);
        } else await sleep(Math.min(admission.waitMs ?? 5, 5));
      }
    };
    await Promise.all([processLoop(), processLoop(), processLoop()]);
    times.sort((a, b) => a - b);
    // The bucket was kept busy: roughly its rate for the run, after the first burst.
    expect(times.length).toBeGreaterThan(BURST + ((RPM / 60) * RUN_MS) / 1000 / 2);
    for (const windowMs of [250, 500, 1000, 2000]) {
      const allowed = BURST + ((RPM / 60) * windowMs) / 1000;
      // +2: a call is timed here, after Redis took its token (a millisecond of the rate, rounded).
      expect(busiestWindow(times, windowMs), `window ${windowMs} ms`).toBeLessThanOrEqual(allowed + 2);
    }
  });
});
