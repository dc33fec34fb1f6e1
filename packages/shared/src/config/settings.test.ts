import { describe, expect, it } from "vitest";
import { settingsSchema } from "./settings.js";

describe("EVENTS_RETENTION_S", () => {
  const parse = (env: Record<string, string>) => settingsSchema.parse({ REDIS_URL: "redis://x", ...env });
  it("is the job's retention when unset; as set when set", () => {
    expect(parse({}).EVENTS_RETENTION_S).toBe(7 * 86_400);
    expect(parse({ JOB_RETENTION_S: "1209600" }).EVENTS_RETENTION_S).toBe(1_209_600);
    expect(parse({ JOB_RETENTION_S: "3600" }).EVENTS_RETENTION_S).toBe(3600);
    expect(parse({ JOB_RETENTION_S: "3600", EVENTS_RETENTION_S: "60" }).EVENTS_RETENTION_S).toBe(60);
  });
});

describe("the environment's other settings", () => {
  const parse = (env: Record<string, string>) => settingsSchema.safeParse({ REDIS_URL: "redis://x", ...env });
  it("takes an empty HOST as unset (127.0.0.1), not as every interface", () => {
    expect(parse({ HOST: "" }).data?.HOST).toBe("127.0.0.1");
    expect(parse({ HOST: "  " }).data?.HOST).toBe("127.0.0.1");
    expect(parse({ HOST: "0.0.0.0" }).data?.HOST).toBe("0.0.0.0");
  });

  it("takes whole numbers in decimal only (as Helm writes them too), not 0x or 0b", () => {
    expect(parse({ WORKER_CONCURRENCY: "16" }).data?.WORKER_CONCURRENCY).toBe(16);
    expect(parse({ JOB_RETENTION_S: "1.2096e+06" }).data?.JOB_RETENTION_S).toBe(1_209_600);
    expect(Object.is(parse({ PORT: "-0" }).data?.PORT, 0)).toBe(true);
    for (const value of ["0x10", "0b1", "0o7", "16.5", "16 workers", "Infinity"]) {
      const result = parse({ WORKER_CONCURRENCY: value });
      expect(result.success, value).toBe(false);
      expect(result.error?.issues[0]?.message).toContain("WORKER_CONCURRENCY must be an integer");
    }
  });

  it("refuses a REDIS_URL with no host or a port no Redis has, naming the form, not the password", () => {
    for (const url of [
      "redis://",
      "redis://:pw@127.0.0.1:notaport",
      "redis://:s3cr/et@host:6379",
      "redis://u:p@ss@host:bad",
      "redis://127.0.0.1:99999",
      "redis://[::1",
    ]) {
      const result = parse({ REDIS_URL: url });
      expect(result.success, url).toBe(false);
      expect(result.error?.issues).toHaveLength(1);
      const message = result.error?.issues[0]?.message ?? "";
      expect(message).toContain("redis://[user:password@]host:port[/db]");
      for (const secret of ["pw", "s3cr", "et@", "p@ss"]) expect(message).not.toContain(secret);
    }
    expect(parse({ REDIS_URL: "rediss://user:pw@redis.example.com:6380/2" }).success).toBe(true);
    expect(parse({ REDIS_URL: "redis://[::1]:6379" }).success).toBe(true);
  });

  it("says what a REDIS_URL that is no redis:// URL starts with, never the rest (a password may follow)", () => {
    const cases: Array<[string, string]> = [
      ["myredis.redis.cache.windows.net:6380,password=S3CRET,ssl=True", '"myredis.redis.cache.windows.net:"'],
      [":S3CRET@host:6379", '":"'],
      ["http://user:S3CRET@host", '"http:"'],
      [" redis://host:6379", '" redis:"'],
    ];
    for (const [url, shown] of cases) {
      const result = parse({ REDIS_URL: url });
      const message = result.error?.issues[0]?.message ?? "";
      expect(message, url).toContain("must start with redis:// or rediss://");
      expect(message, url).toContain(shown);
      expect(message, url).not.toContain("S3CRET");
    }
    expect(parse({ REDIS_URL: "S3CRET" }).error?.issues[0]?.message).not.toContain("S3CRET");
  });
});
