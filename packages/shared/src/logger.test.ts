import { execFileSync } from "node:child_process";
import { pbkdf2 } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  createLogDestination,
  createLogger,
  createPrettyDestination,
  type LogDestination,
  logFormatFor,
} from "./logger.js";

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

describe("createLogger", () => {
  it("keeps a Redis error's command arguments (job data, answers) out of the line", async () => {
    const output = new PassThrough();
    const chunks: string[] = [];
    output.on("data", (chunk: Buffer) => chunks.push(chunk.toString()));
    const logger = createLogger("info", {}, createPrettyDestination(output));
    const error = Object.assign(new Error("OOM command not allowed when used memory > 'maxmemory'."), {
      name: "ReplyError",
      command: { name: "evalsha", args: ["sha", "1", '{"content":"the model answered this"}'] },
    });
    logger.error({ err: error }, "job failed unexpectedly");
    await new Promise((resolve) => setImmediate(resolve));
    const text = chunks.join("");
    expect(text).toContain("OOM command not allowed");
    expect(text).toContain("evalsha");
    expect(text).not.toContain("the model answered this");
  });
});

/** Runs `use` with the path of a log file in a fresh directory, removed afterwards. */
async function withLogFile(use: (path: string) => Promise<void> | void): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), "cascade-log-"));
  try {
    await use(join(directory, "out.log"));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** `destination.flush` as a promise (rejects with the error its callback gets). */
const flushed = (destination: LogDestination) =>
  new Promise<void>((resolve, reject) => destination.flush((error) => (error ? reject(error) : resolve())));

describe("createLogDestination", () => {
  const lineOf = (index: number) => ({ job_id: `job_${index}`, hop: 0, outcome: "success" });

  it("writes every line, whole and in order, in batches; flush calls back once all is written", () =>
    withLogFile(async (path) => {
      const destination = createLogDestination(path);
      const logger = createLogger("info", {}, destination);
      // Past several batches, then a few lines short of one, which only a flush hands over.
      for (let index = 0; index < 1000; index++) logger.info(lineOf(index), "hop succeeded");
      for (let index = 1000; index < 1003; index++) logger.info(lineOf(index), "hop succeeded");
      await flushed(destination);
      const lines = readFileSync(path, "utf8").trimEnd().split("\n");
      expect(lines).toHaveLength(1003);
      lines.forEach((line, index) => {
        const entry = JSON.parse(line) as { job_id: string; msg: string };
        expect(entry.job_id).toBe(`job_${index}`);
        expect(entry.msg).toBe("hop succeeded");
      });
      // With nothing gathered and nothing in flight, flush still calls back.
      await flushed(destination);
      destination.end();
    }));

  it("flushSync writes the gathered lines before it returns", () =>
    withLogFile(async (path) => {
      const fd = openSync(path, "a");
      // Every thread of libuv's pool kept busy: an asynchronous write could not land before the
      // file is read below, so only a synchronous one passes.
      const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
      const busy = Array.from(
        { length: threads },
        () => new Promise((resolve) => pbkdf2("busy", "salt", 400_000, 32, "sha256", resolve)),
      );
      try {
        const destination = createLogDestination(fd);
        const logger = createLogger("info", {}, destination);
        for (let index = 0; index < 3; index++) logger.info(lineOf(index), "before exit");
        destination.flushSync();
        const lines = readFileSync(path, "utf8").trimEnd().split("\n");
        expect(lines.map((line) => (JSON.parse(line) as { job_id: string }).job_id)).toEqual([
          "job_0",
          "job_1",
          "job_2",
        ]);
        destination.end();
      } finally {
        await Promise.all(busy);
      }
    }));

  it("flush calls back on a file still opening, once it is open and written; with an error once ended", () =>
    withLogFile(async (path) => {
      const destination = createLogDestination(path);
      // Nothing gathered, the file not open yet: the callback still comes.
      await flushed(destination);
      createLogger("info", {}, destination).info(lineOf(7), "after open");
      await flushed(destination);
      expect(readFileSync(path, "utf8")).toContain('"job_id":"job_7"');
      destination.end();
      await expect(flushed(destination)).rejects.toThrow(/closed/);
    }));

  it("hands a quiet process's lines over within its flush interval, with no flush asked", () =>
    withLogFile(async (path) => {
      const destination = createLogDestination(path);
      createLogger("info", {}, destination).info(lineOf(1), "alone");
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(readFileSync(path, "utf8")).toContain('"job_id":"job_1"');
      destination.end();
    }));

  it("writes the lines still gathered when the process exits", () => {
    const script = [
      `import { createLogger } from ${JSON.stringify(join(import.meta.dirname, "logger.ts"))};`,
      "const logger = createLogger('info');",
      "for (let index = 0; index < 3; index++) logger.info({ index }, 'before exit');",
      "process.exit(0);",
    ].join("\n");
    const output = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    const lines = output.trimEnd().split("\n");
    expect(lines.map((line) => (JSON.parse(line) as { index: number }).index)).toEqual([0, 1, 2]);
  });
});
