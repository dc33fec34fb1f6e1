import { describe, expect, it } from "vitest";
import { settingsSchema } from "./settings.js";

describe("EVENTS_RETENTION_S", () => {
  const parse = (env: Record<string, string>) => settingsSchema.parse({ REDIS_URL: "redis://x", ...env });
  it("is the job's retention when unset, at least a day; as set when set", () => {
    expect(parse({}).EVENTS_RETENTION_S).toBe(7 * 86_400);
    expect(parse({ JOB_RETENTION_S: "1209600" }).EVENTS_RETENTION_S).toBe(1_209_600);
    expect(parse({ JOB_RETENTION_S: "3600" }).EVENTS_RETENTION_S).toBe(86_400);
    expect(parse({ JOB_RETENTION_S: "3600", EVENTS_RETENTION_S: "60" }).EVENTS_RETENTION_S).toBe(60);
  });
});
