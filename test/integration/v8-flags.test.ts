/**
 * A Cascade process starts with V8's allocation-site pretenuring off (packages/shared/src/v8-flags.ts,
 * ADR 0037). With it on, parsing request bodies through `chatRequestSchema` (a `z.preprocess`)
 * tips V8 into allocating the parse's objects in the old generation, and they drag the young
 * objects they point to through every scavenge: here ~100 MB promoted in 300,000 parses, against
 * a few MB for the same loop in a process started by `startProcess`. The child process below runs
 * that loop with `--trace-gc-nvp`, and the bytes its scavenges promoted are summed.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, inject, it } from "vitest";
import { REPO_ROOT } from "../support/processes.js";

const SHARED = pathToFileURL(join(REPO_ROOT, "packages", "shared", "dist", "index.js")).href;
const PARSES = 300_000;
/** What one process's scavenges may promote over the loop with the flag (measured: 2.3–2.9 MB). */
const MAX_PROMOTED_BYTES = 40 * 1024 * 1024;

/** The loop, after the API's start: parse bodies as the doors do, keeping the last 50 (requests in flight). */
const SCRIPT = `
const shared = await import(${JSON.stringify(SHARED)});
await shared.startProcess("api", process.env);
process.stdout.write("loop starts\\n");
const text = JSON.stringify({ messages: [{ role: "system", content: "You are a terse assistant." },
  { role: "user", content: "Write one sentence about queues." }], max_tokens: 64 });
const inFlight = new Array(50);
for (let i = 0; i < ${PARSES}; i += 1) inFlight[i % 50] = shared.chatRequestSchema.parse(JSON.parse(text));
process.exit(0);
`;

/** The loop's scavenges (after "loop starts") and the bytes they promoted, from `--trace-gc-nvp`. */
async function promotedByLoop(): Promise<{ scavenges: number; promoted: number }> {
  // The built-in demo config; the run's Redis (startProcess checks it is there). No NODE_OPTIONS:
  // a larger --max-semi-space-size there keeps the loop's objects young with or without the flag.
  const { CASCADE_CONFIG: _config, NODE_OPTIONS: _options, ...env } = process.env;
  const child = spawn(process.execPath, ["--trace-gc-nvp", "--input-type=module", "-e", SCRIPT], {
    cwd: REPO_ROOT,
    env: { ...env, REDIS_URL: inject("redisUrl"), LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let errors = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    errors += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  expect(code, errors).toBe(0);
  const loop = output.slice(output.indexOf("loop starts"));
  let scavenges = 0;
  let promoted = 0;
  for (const line of loop.split("\n")) {
    const bytes = /\bgc=s\b.*\bpromoted=(\d+)/.exec(line)?.[1];
    if (bytes === undefined) continue;
    scavenges += 1;
    promoted += Number(bytes);
  }
  return { scavenges, promoted };
}

describe("the V8 flags a Cascade process starts with", () => {
  it("keeps short-lived request parses out of the old generation", { timeout: 60_000 }, async () => {
    const { scavenges, promoted } = await promotedByLoop();
    // The loop allocates hundreds of MB: a trace showing no scavenge was not read (another format).
    expect(scavenges).toBeGreaterThan(10);
    // Without the flag: 88–120 MB in seven runs of this test.
    expect(promoted, `${(promoted / 2 ** 20).toFixed(1)} MB promoted`).toBeLessThan(MAX_PROMOTED_BYTES);
  });
});
