import { describe, expect, it } from "vitest";
import { redisCliFor } from "./connection.js";

describe("redisCliFor", () => {
  it("reaches the Redis REDIS_URL names, never showing its password", () => {
    expect(redisCliFor("redis://127.0.0.1:42111")).toBe("redis-cli -h 127.0.0.1 -p 42111");
    expect(redisCliFor("redis://cache.internal")).toBe("redis-cli -h cache.internal -p 6379");
    expect(redisCliFor("rediss://app:s3cret@redis.example.com:6380/2")).toBe(
      "redis-cli -h redis.example.com -p 6380 --tls --user app --askpass -n 2",
    );
    // redis-cli takes an IPv6 address without the URL's brackets.
    expect(redisCliFor("redis://[::1]:6390")).toBe("redis-cli -h ::1 -p 6390");
    expect(redisCliFor("redis://:s3cret@127.0.0.1:6379/0")).not.toContain("s3cret");
  });
});
