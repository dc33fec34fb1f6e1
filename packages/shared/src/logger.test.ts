import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, createPrettyDestination, logFormatFor } from "./logger.js";

describe("logFormatFor", () => {
  it("is pretty at a terminal and JSON whenever stdout is captured", () => {
    expect(logFormatFor(true)).toBe("pretty");
    expect(logFormatFor(false)).toBe("json");
    // A pipe or a file: Node leaves isTTY undefined.
    expect(logFormatFor(undefined)).toBe("json");
  });
});

describe("createPrettyDestination", () => {
  it("writes one readable line per entry, redacted like the JSON", async () => {
    const output = new PassThrough();
    const chunks: string[] = [];
    output.on("data", (chunk: Buffer) => chunks.push(chunk.toString()));
    const logger = createLogger("info", { name: "cascade-api" }, createPrettyDestination(output));
    logger.info({ job_id: "job_1", authorization: "Bearer sk-secret" }, "job finished");
    await new Promise((resolve) => setImmediate(resolve));
    const text = chunks.join("");
    expect(text).toMatch(/INFO.*\(cascade-api\).*job finished/);
    expect(text).toContain("job_1");
    expect(text).not.toContain("sk-secret");
    expect(text.trim().split("\n")).toHaveLength(1);
    expect(() => JSON.parse(text)).toThrow();
  });
});
