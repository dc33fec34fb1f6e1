import Redis from "ioredis";
import { describe, expect, it } from "vitest";
import { isRedisUnavailableError } from "./redis-gate.js";

describe("isRedisUnavailableError", () => {
  it("takes a command aborted by a dropped connection (a pipeline's, a MULTI's) for Redis being away", async () => {
    // A connection that drops with a pipeline sent: ioredis rejects its commands with an AbortError.
    const redis = new Redis({
      port: 1,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    });
    const aborted = Object.assign(new Error("Command aborted due to connection close"), {
      name: "AbortError",
    });
    expect(isRedisUnavailableError(aborted)).toBe(true);
    // And what a command against an unreachable Redis gets, as before.
    const refused = await redis.get("x").catch((error: Error) => error);
    expect(isRedisUnavailableError(refused)).toBe(true);
    // A reply error is Redis answering, not Redis away.
    expect(
      isRedisUnavailableError(Object.assign(new Error("WRONGTYPE Operation"), { name: "ReplyError" })),
    ).toBe(false);
    redis.disconnect();
  });
});
