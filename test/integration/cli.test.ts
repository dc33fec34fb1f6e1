/**
 * The `cascade` CLI (packages/cli) as a user runs it: the built dist/main.js as a child process,
 * against an in-process API and worker on real Redis, through a small HTTP proxy that records
 * every request (to count the jobs the API created) and can cut an SSE connection mid-stream.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { REPO_ROOT } from "../support/processes.js";

const CLI = join(REPO_ROOT, "packages/cli/dist/main.js");
const KEY = "cli-test-key";
const auth = { authorization: `Bearer ${KEY}` };

const price = { input_per_mtok: 3, output_per_mtok: 15 };
const config = {
  providers: {
    broken: { type: "simulated", simulate: { error_rate: 1 } },
    fine: { type: "simulated", simulate: { latency_ms: [150, 250] } },
    choppy: { type: "simulated", simulate: { latency_ms: 800, stream_cut_rate: 1 } },
  },
  models: {
    flaky: { provider: "broken", price },
    steady: { provider: "fine", price },
    cutter: { provider: "choppy", price },
  },
  routes: {
    // The primary always fails (then its breaker opens): every job falls back to `steady`.
    main: { chain: [{ model: "flaky" }, { model: "steady" }] },
    // Streams half an answer, breaks off, and `steady` starts over: a `restart` event.
    streamy: { chain: [{ model: "cutter" }, { model: "steady" }] },
  },
  tenants: { cli: { api_keys_env: "CLI_KEYS" } },
};

interface Recorded {
  method: string;
  path: string;
  status: number;
  headers: IncomingHttpHeaders;
}

/** Forwards everything to the stack, recording each exchange; `cutNextEvents` drops one SSE stream after its first delta. */
class RecordingProxy {
  readonly log: Recorded[] = [];
  cutNextEvents = false;
  private server: Server | undefined;
  url = "";

  constructor(private readonly target: string) {}

  async start(): Promise<void> {
    const target = new URL(this.target);
    this.server = createServer((req, res) => {
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          this.log.push({
            method: req.method ?? "",
            path: req.url ?? "",
            status: answer.statusCode ?? 0,
            headers: req.headers,
          });
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          const cut = this.cutNextEvents && /\/events$/.test(req.url ?? "");
          if (cut) this.cutNextEvents = false;
          let dropped = false;
          answer.on("data", (chunk: Buffer) => {
            if (dropped) return;
            const text = chunk.toString();
            const delta = cut ? text.indexOf("event: delta") : -1;
            if (delta < 0) {
              res.write(chunk);
              return;
            }
            // Forward up to the end of the first delta event (even when a replay sent everything at
            // once), then drop the connection once that much has left: destroyed at once, a write
            // still buffered was lost, and the client reconnected with no Last-Event-ID.
            dropped = true;
            const end = text.indexOf("\n\n", delta);
            res.write(end < 0 ? text : text.slice(0, end + 2), () => {
              answer.destroy();
              res.destroy();
            });
          });
          answer.on("end", () => res.end());
          answer.on("error", () => res.destroy());
        },
      );
      upstream.on("error", () => res.destroy());
      res.on("close", () => upstream.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  }

  posts(from = 0): Recorded[] {
    return this.log.slice(from).filter((entry) => entry.method === "POST" && entry.path === "/v1/jobs");
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startCli(
  args: string[],
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      NO_COLOR: "1",
      CASCADE_URL: proxy.url,
      CASCADE_API_KEY: KEY,
      CASCADE_PROGRESS_INTERVAL: "0.3",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<Run>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

const cli = (args: string[], env?: Record<string, string>) => startCli(args, env).done;

// biome-ignore lint/suspicious/noExplicitAny: result lines are whatever JSON the CLI wrote.
function readJsonl(path: string): any[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, "utf8").split("\n");
  // Read while the CLI writes: a last line without its newline yet is not a line yet.
  lines.pop();
  return lines.filter((line) => line.trim()).map((line) => JSON.parse(line));
}

async function waitFor(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const message = (text: string) => [{ role: "user", content: text }];

let stack: Stack;
let proxy: RecordingProxy;
let dir: string;

beforeAll(async () => {
  // `npm test` builds everything first; a bare `vitest run` may not have.
  if (!existsSync(CLI)) {
    execFileSync(
      process.execPath,
      [join(REPO_ROOT, "node_modules/typescript/bin/tsc"), "-b", "packages/cli"],
      {
        cwd: REPO_ROOT,
        stdio: "inherit",
      },
    );
  }
  stack = await startStack({ redisUrl: inject("redisUrl"), config, env: { CLI_KEYS: KEY }, concurrency: 20 });
  proxy = new RecordingProxy(stack.url);
  await proxy.start();
  dir = mkdtempSync(join(tmpdir(), "cascade-cli-"));
});

afterAll(async () => {
  await proxy?.close();
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("cascade submit", () => {
  const input = () => join(dir, "requests.jsonl");
  const expected = new Map<string, { status: string; rejected?: boolean }>();

  beforeAll(() => {
    const lines: string[] = [];
    for (let i = 1; i <= 20; i += 1) {
      // Batch-style lines, as for OpenAI's Batch API.
      const id = `req-${i}`;
      lines.push(
        JSON.stringify({
          custom_id: id,
          method: "POST",
          url: "/v1/chat/completions",
          body: { messages: message(`question ${i}`), max_tokens: 30 },
        }),
      );
      expected.set(id, { status: "succeeded" });
    }
    for (let i = 21; i <= 26; i += 1) {
      // Plain chat-completions bodies: their id is their line number.
      lines.push(JSON.stringify({ messages: message(`plain ${i}`), max_tokens: 30 }));
      expected.set(String(i), { status: "succeeded" });
    }
    for (const id of ["json-1", "json-2"]) {
      // No model declares `json`: every hop is skipped, the job fails all_models_failed.
      lines.push(
        JSON.stringify({
          custom_id: id,
          body: { messages: message(id), response_format: { type: "json_object" } },
        }),
      );
      expected.set(id, { status: "failed" });
    }
    // The API refuses this one (400): it is recorded as failed, with no job.
    lines.push(JSON.stringify({ custom_id: "bad-1", body: { messages: message("x"), temperature: "hot" } }));
    expected.set("bad-1", { status: "failed", rejected: true });
    lines.push(JSON.stringify({ messages: message("last"), max_tokens: 30 }));
    expected.set("30", { status: "succeeded" });
    writeFileSync(input(), `${lines.join("\n")}\n\n`);
  });

  it("submits 30 lines and writes one result per line, with ids, statuses, models, costs and a summary", async () => {
    const out = join(dir, "results.jsonl");
    const from = proxy.log.length;
    const run = await cli(["submit", input(), "--route", "main", "--out", out, "--concurrency", "4"]);
    expect(run.stderr).not.toMatch(/cascade: /);
    expect(run.code).toBe(0);

    const results = readJsonl(out);
    expect(results).toHaveLength(30);
    expect(new Set(results.map((result) => result.custom_id))).toEqual(new Set(expected.keys()));
    for (const result of results) {
      const want = expected.get(result.custom_id);
      expect(Object.keys(result).sort()).toEqual(
        ["attempts", "cost_usd", "custom_id", "error", "job_id", "model", "result", "status"].sort(),
      );
      expect(result.status, result.custom_id).toBe(want?.status);
      if (want?.rejected) {
        expect(result.job_id).toBeNull();
        expect(result.error).toMatchObject({ type: "invalid_request_error" });
      } else if (want?.status === "failed") {
        expect(result.job_id).toMatch(/^job_/);
        expect(result.error).toMatchObject({ type: "all_models_failed" });
        expect(result.attempts.map((attempt: { reason: string }) => attempt.reason)).toEqual([
          "capability_missing",
          "capability_missing",
        ]);
      } else {
        expect(result.model).toBe("steady");
        expect(result.cost_usd).toBeGreaterThan(0);
        expect(result.attempts[0]).toMatchObject({ model: "flaky" });
        expect(result.attempts.at(-1)).toMatchObject({ model: "steady", outcome: "success" });
        expect(result.result.choices[0].message.content).toMatch(/^Simulated reply from steady/);
      }
    }
    // Every job was created once, under its line's Idempotency-Key.
    const posts = proxy.posts(from);
    expect(posts).toHaveLength(30);
    expect(new Set(posts.map((post) => post.headers["idempotency-key"])).size).toBe(30);
    expect(posts.filter((post) => post.status === 202)).toHaveLength(29);
    expect(new Set(results.map((result) => result.job_id).filter(Boolean)).size).toBe(29);

    expect(run.stdout).toMatch(
      /^30\/30 lines done: 27 succeeded, 3 failed \(1 refused by the API\); fallback 100% \(29 of 29 jobs\); spend \$0\.\d+;/m,
    );
    // Not a terminal: a plain progress line every CASCADE_PROGRESS_INTERVAL seconds.
    expect(run.stderr).toMatch(/^progress: \d+\/30 done \(\d+ succeeded, \d+ failed\), \d+ in flight, /m);

    // Run again on the finished results: nothing to do, nothing sent.
    const again = proxy.log.length;
    const rerun = await cli(["submit", input(), "--route", "main", "--out", out]);
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toMatch(/Nothing to do: all 30 lines are in/);
    expect(proxy.posts(again)).toHaveLength(0);

    // The same file into a fresh results file: the Idempotency-Keys return the same jobs.
    const copy = join(dir, "results-copy.jsonl");
    const replayFrom = proxy.log.length;
    const replay = await cli(["submit", input(), "--route", "main", "--out", copy]);
    expect(replay.code).toBe(0);
    const replayed = proxy.posts(replayFrom);
    expect(replayed.filter((post) => post.status === 202)).toHaveLength(0);
    expect(replayed.filter((post) => post.status === 200)).toHaveLength(29);
    const jobIds = (rows: Array<{ custom_id: string; job_id: string | null }>) =>
      Object.fromEntries(rows.map((row) => [row.custom_id, row.job_id]));
    expect(jobIds(readJsonl(copy))).toEqual(jobIds(results));
  }, 60_000);

  it("stops on Ctrl+C with a resume hint, then resumes: every line once, no job submitted twice", async () => {
    const file = join(dir, "interrupt.jsonl");
    const ids = Array.from({ length: 30 }, (_, index) => `int-${index + 1}`);
    writeFileSync(
      file,
      `${ids.map((id) => JSON.stringify({ custom_id: id, body: { messages: message(`interrupt ${id}`) } })).join("\n")}\n`,
    );
    const out = join(dir, "interrupt-results.jsonl");
    const from = proxy.log.length;
    const args = ["submit", file, "--route", "main", "--out", out, "--concurrency", "3"];

    const first = startCli(args);
    await waitFor(() => readJsonl(out).length >= 6);
    first.child.kill("SIGINT");
    const interrupted = await first.done;
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(/Interrupted with \d+ of 30 lines left/);
    expect(interrupted.stderr).toContain(
      `Resume with: cascade submit ${file} --out ${out} --route main --concurrency 3`,
    );
    expect(interrupted.stdout).toMatch(/^\d+\/30 lines done: /m);

    const doneFirst = readJsonl(out);
    expect(doneFirst.length).toBeGreaterThanOrEqual(6);
    expect(doneFirst.length).toBeLessThan(30);
    const [header, ...submitted] = readJsonl(`${out}.state.jsonl`);
    expect(header).toMatchObject({ kind: "cascade-submit-state", requests: 30, route: "main" });
    const finishedIds = new Set(doneFirst.map((row) => row.custom_id));
    const stillRunning = submitted.filter((entry) => !finishedIds.has(entry.custom_id));
    expect(stillRunning.length).toBeGreaterThan(0);

    const second = proxy.log.length;
    const resumed = await cli(args);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(
      new RegExp(
        `Resuming: ${doneFirst.length} of 30 lines done, ${stillRunning.length} submitted jobs? to collect`,
      ),
    );
    expect(resumed.stdout).toMatch(/^30\/30 lines done: 30 succeeded, 0 failed; /m);

    const results = readJsonl(out);
    expect(results).toHaveLength(30);
    expect(results.map((row) => row.custom_id).sort()).toEqual([...ids].sort());
    expect(new Set(results.map((row) => row.job_id)).size).toBe(30);
    // Jobs submitted before the interrupt were collected, not submitted again...
    const jobOf = new Map(results.map((row) => [row.custom_id, row.job_id]));
    for (const entry of stillRunning) expect(jobOf.get(entry.custom_id)).toBe(entry.job_id);
    expect(proxy.posts(second)).toHaveLength(30 - doneFirst.length - stillRunning.length);
    // ...and across both runs the API created exactly one job per line.
    const created = proxy.posts(from).filter((post) => post.status === 202);
    expect(created).toHaveLength(30);
    expect(new Set(created.map((post) => post.headers["idempotency-key"])).size).toBe(30);
  }, 60_000);

  it("refuses an invalid input file before submitting anything", async () => {
    const file = join(dir, "invalid.jsonl");
    writeFileSync(file, `${JSON.stringify({ messages: message("ok") })}\nnot json\n{"prompt": "hi"}\n`);
    const from = proxy.log.length;
    const run = await cli(["submit", file, "--out", join(dir, "invalid-results.jsonl")]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/invalid\.jsonl:2: not valid JSON/);
    expect(run.stderr).toMatch(/invalid\.jsonl:3: neither a chat-completions body/);
    expect(run.stderr).toMatch(/2 invalid lines .* nothing was submitted/);
    expect(proxy.posts(from)).toHaveLength(0);
  });

  it("says plainly when --out or the input is not a file it can use (no stack trace, no advice to delete the input)", async () => {
    const file = join(dir, "paths.jsonl");
    writeFileSync(file, `${JSON.stringify({ messages: message("ok") })}\n`);
    const folder = join(dir, "a-folder.jsonl");
    mkdirSync(folder, { recursive: true });
    const from = proxy.log.length;
    const cases: Array<[string[], RegExp]> = [
      [["submit", file, "--out", file], /--out .*paths\.jsonl is the input file itself; choose another path/],
      [["submit", file, "--out", folder], /--out .*a-folder\.jsonl is a directory; give a file path/],
      [
        ["submit", file, "--out", join(file, "out.jsonl")],
        /cannot create .*paths\.jsonl.*: .*(EEXIST|ENOTDIR)/,
      ],
      [
        ["submit", dir, "--out", join(dir, "from-a-folder.jsonl")],
        /cannot read .*: it is a directory, not a JSONL file/,
      ],
    ];
    for (const [args, expected] of cases) {
      const run = await cli(args);
      expect(run.code, args.join(" ")).toBe(1);
      expect(run.stderr, args.join(" ")).toMatch(expected);
      expect(run.stderr, args.join(" ")).not.toMatch(/\n\s+at /);
      expect(run.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
    expect(proxy.posts(from)).toHaveLength(0);
    expect(readFileSync(file, "utf8")).toBe(`${JSON.stringify({ messages: message("ok") })}\n`);
  });

  it("stops at once when every line would fail the same way (an unknown --route)", async () => {
    const run = await cli(["submit", input(), "--route", "nope", "--out", join(dir, "nope.jsonl")]);
    expect(run.code).toBe(1);
    // As every API error prints (docs/cli.md): `cascade: <error.type>: <message> (HTTP <status>)`.
    expect(run.stderr).toMatch(
      /^cascade: invalid_request_error: route: unknown route "nope".* \(HTTP 400\)$/m,
    );
  });
});

describe("cascade jobs get", () => {
  let jobId: string;
  beforeAll(async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { route: "main", request: { messages: message("tell me about fallbacks"), max_tokens: 30 } },
      headers: auth,
    });
    jobId = created.body.id;
    await stack.request("GET", `/v1/jobs/${jobId}?wait=20`, { headers: auth });
  });

  it("prints a human summary: status, model and provider, cost, attempts with reasons, the answer", async () => {
    const run = await cli(["jobs", "get", jobId]);
    expect(run.code).toBe(0);
    const text = run.stdout;
    expect(text).toMatch(new RegExp(`^${jobId}  succeeded$`, "m"));
    expect(text).toMatch(/route\s+main \(chain flaky → steady\)/);
    expect(text).toMatch(/model\s+steady via fine \(fell back from flaky\)/);
    expect(text).toMatch(/cost\s+\$0\.\d+/);
    expect(text).toMatch(/#\s+MODEL\s+PROVIDER\s+OUTCOME\s+REASON\s+HTTP\s+DURATION\s+MESSAGE/);
    expect(text).toMatch(/1\s+flaky\s+broken\s+(error\s+server_error\s+500|skipped\s+circuit_open)/);
    expect(text).toMatch(/2\s+steady\s+fine\s+success/);
    expect(text).toMatch(/Simulated reply from steady to: tell me about fallbacks/);
    // started_at and finished_at are whole seconds: a job within one second ran "< 1 s", never "0 ms".
    expect(text).toMatch(/created\s+.* UTC, ran (< 1 s|\d+(\.\d)? s)$/m);
    expect(text).not.toMatch(/ran 0 ms/);
  });

  it("--json prints the raw job object (and --url/--api-key work as flags)", async () => {
    const run = await cli(["jobs", "get", jobId, "--json", "--url", proxy.url, "--api-key", KEY], {
      CASCADE_URL: "http://127.0.0.1:9",
      CASCADE_API_KEY: "",
    });
    expect(run.code).toBe(0);
    const polled = await stack.request("GET", `/v1/jobs/${jobId}`, { headers: auth });
    expect(JSON.parse(run.stdout)).toEqual(polled.body);
  });

  it("--watch follows the events: status, attempts, streamed tokens, a restart marker; it reconnects with Last-Event-ID and ends at done", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { route: "streamy", request: { messages: message("stream me a story please"), stream: true } },
      headers: auth,
    });
    const id = created.body.id;
    const from = proxy.log.length;
    proxy.cutNextEvents = true;
    const run = await cli(["jobs", "get", id, "--watch"]);
    expect(run.code).toBe(0);

    const job = (await stack.request("GET", `/v1/jobs/${id}`, { headers: auth })).body;
    expect(job.status).toBe("succeeded");
    const content: string = job.result.choices[0].message.content;
    const lines = run.stdout.split("\n");
    expect(lines[0]).toBe("status queued");
    expect(lines).toContain("status running");
    expect(run.stdout).toMatch(/^attempt 1 cutter \(choppy\) error network_error /m);
    expect(run.stdout).toMatch(/^↺ restart: hop 1 stopped \(network_error\); the answer starts over$/m);
    // Before the marker, the first hop's partial answer.
    expect(run.stdout.split(/^↺ restart/m)[0]).toMatch(/\nSimulated/);
    // After the marker, the answer streamed again from the start, in full.
    const afterRestart = (run.stdout.split(/^↺ restart.*$/m)[1] ?? "")
      .split("\n")
      .filter((line) => !/^(attempt \d|status |done )/.test(line));
    expect(afterRestart.join("\n").trim()).toBe(content);
    expect(run.stdout).toMatch(/^attempt 2 steady \(fine\) success /m);
    expect(run.stdout).toMatch(/^status succeeded$/m);
    expect(lines.filter(Boolean).at(-1)).toMatch(
      /^done succeeded {2}steady via fine {2}2 attempts {2}\$0\.\d+$/,
    );

    // The proxy cut the first stream after a delta: the CLI came back with Last-Event-ID.
    const streams = proxy.log.slice(from).filter((entry) => entry.path === `/v1/jobs/${id}/events`);
    expect(streams.length).toBe(2);
    expect(streams[0]?.headers["last-event-id"]).toBeUndefined();
    expect(streams[1]?.headers["last-event-id"]).toMatch(/^\d+-\d+$/);
    expect(run.stderr).toMatch(/reconnecting/);
  });

  it("--watch on a finished job replays its events and ends", async () => {
    const run = await cli(["jobs", "get", jobId, "--watch"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^status queued\nstatus running\nattempt 1 flaky/);
    expect(run.stdout).toMatch(/Simulated reply from steady to: tell me about fallbacks\ndone succeeded/);
  });

  it("an HTTP error prints the API's error type and message and exits 1", async () => {
    const missing = await cli(["jobs", "get", "job_doesnotexist"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^cascade: not_found_error: no job with id job_doesnotexist \(HTTP 404\)$/m,
    );
    const unauthenticated = await cli(["jobs", "get", jobId], { CASCADE_API_KEY: "" });
    expect(unauthenticated.code).toBe(1);
    expect(unauthenticated.stderr).toMatch(/^cascade: \w+: .+\(HTTP 401\)$/m);
    // Where the key goes; and a key given but refused, said so.
    expect(unauthenticated.stderr).toMatch(/give the API key with --api-key.*CASCADE_API_KEY/);
    const refused = await cli(["jobs", "get", jobId], { CASCADE_API_KEY: "not-a-key" });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the API key given \(--api-key or CASCADE_API_KEY\) was refused/);
  });
});

describe("cascade providers", () => {
  it("prints breaker, cooldown, headroom and recent rates per provider, with its models indented", async () => {
    const run = await cli(["providers"]);
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines[0]).toMatch(/^PROVIDER\s+TYPE\s+BREAKER\s+COOLDOWN\s+HEADROOM\s+CALLS\s+ERRORS\s+FALLBACK$/);
    for (const provider of ["broken", "fine", "choppy"]) {
      expect(lines.some((line) => line.startsWith(`${provider} `))).toBe(true);
    }
    for (const model of ["flaky", "steady", "cutter"]) {
      expect(lines.some((line) => line.startsWith(`  ${model} `))).toBe(true);
    }
    // `broken` failed every call it was let make.
    expect(lines.find((line) => line.startsWith("broken "))).toMatch(
      /simulated\s+(open|closed|half_open).*\s100%/,
    );
    const json = await cli(["providers", "--json"]);
    expect(JSON.parse(json.stdout).data.map((provider: { id: string }) => provider.id)).toEqual([
      "broken",
      "fine",
      "choppy",
    ]);
  });
});

describe("usage", () => {
  it.each([
    [["--help"]],
    [["-h"]],
    [["help"]],
    [["help", "submit"]],
    [["submit", "--help"]],
    [["jobs", "--help"]],
    [["jobs", "get", "--help"]],
    [["providers", "-h"]],
  ])("cascade %j prints usage and exits 0", async (args) => {
    const run = await cli(args);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: cascade /);
  });

  it.each([
    [
      ["submit", "requests.jsonl", "--out", "r.jsonl", "--bogus"],
      /^cascade submit: unknown option --bogus$/m,
    ],
    [["providers", "--watch"], /^cascade providers: unknown option --watch$/m],
    [["jobs", "get"], /^cascade jobs get: missing the job id$/m],
    [["jobs", "list"], /^cascade jobs: unknown subcommand list$/m],
    [["frobnicate"], /^cascade: unknown command frobnicate$/m],
    [["help", "frobnicate"], /^cascade help: unknown command frobnicate$/m],
    [["submit", "requests.jsonl"], /--out <results.jsonl> is required/],
    [["submit", "requests.jsonl", "--out", "r.jsonl", "--concurrency", "0"], /--concurrency must be/],
    [[], /^cascade: missing command$/m],
  ])("cascade %j is a usage error: one line, the usage, exit 2", async (args, problem) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(problem);
    expect(run.stderr).toMatch(/^Usage: cascade /m);
    expect(run.stdout).toBe("");
  });
});
