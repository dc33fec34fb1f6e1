/**
 * Spawns Cascade's real processes (the built API and worker, `packages/<kind>/dist/main.js`) for
 * end-to-end tests: captures their stdout/stderr line by line, waits for readiness or a log line,
 * and makes sure no process outlives the test run (`stopAllCascadeProcesses()` in afterAll/afterEach,
 * plus an exit hook that SIGKILLs whatever is left if the test process dies).
 *
 * Run `pnpm -r build` first: these helpers start `dist`, not the sources.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { findFreePort } from "./redis-server.js";

export type CascadeKind = "api" | "worker";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const ENTRY_POINTS: Record<CascadeKind, string> = {
  api: join(REPO_ROOT, "packages/api/dist/main.js"),
  worker: join(REPO_ROOT, "packages/worker/dist/main.js"),
};

/** Env vars Cascade reads: never inherited from the test runner's environment, only set explicitly. */
const CASCADE_ENV_VARS = [
  "REDIS_URL",
  "PORT",
  "HOST",
  "CASCADE_CONFIG",
  "WORKER_CONCURRENCY",
  "LOG_LEVEL",
  "CASCADE_REDIS_PREFIX",
  "WORKER_LOCK_DURATION_MS",
  "JOB_RETENTION_S",
  "SHUTDOWN_TIMEOUT_MS",
];

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A parsed pino line (anything JSON on stdout). */
// biome-ignore lint/suspicious/noExplicitAny: log lines carry arbitrary fields.
export type LogLine = Record<string, any>;

export type LinePredicate = string | RegExp | ((line: string) => boolean);

export interface CascadeProcess {
  kind: CascadeKind;
  /** A label for messages, e.g. "worker-A". */
  name: string;
  child: ChildProcess;
  pid: number;
  /** Every stdout line so far (pino JSON lines, one per entry). */
  readonly stdout: string[];
  /** Every stderr line so far. */
  readonly stderr: string[];
  /** Stdout lines that parse as JSON objects. */
  logs(): LogLine[];
  /** Resolves with the first stdout or stderr line (already seen or future) that matches. */
  waitForLine(match: LinePredicate, timeoutMs?: number): Promise<string>;
  /** Like waitForLine, on parsed JSON log lines. */
  waitForLog(match: (log: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves when the process has exited (rejects after timeoutMs). */
  waitForExit(timeoutMs?: number): Promise<ExitStatus>;
  /** Undefined while running. */
  readonly exitStatus: ExitStatus | undefined;
  /** Sends a signal without waiting. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<ExitStatus>;
  /** The last lines of output, for assertion messages. */
  describe(): string;
}

export interface CascadeApi extends CascadeProcess {
  port: number;
  /** http://127.0.0.1:PORT */
  url: string;
}

export interface SpawnOptions {
  /** Cascade env vars and provider keys; `undefined` removes a variable. */
  env: Record<string, string | undefined>;
  name?: string;
}

const live = new Set<CascadeProcess>();
process.once("exit", () => {
  for (const proc of live) proc.child.kill("SIGKILL");
});
// vitest ends its fork workers with SIGTERM, which skips "exit" hooks: processes a failed
// beforeAll started (before its stack object existed to stop them) outlived the run, retrying a
// Redis that was gone, at a few % CPU each. Exiting runs the hooks above (and redis-server.ts's).
process.once("SIGTERM", () => process.exit(143));

function matcher(match: LinePredicate): (line: string) => boolean {
  if (typeof match === "string") return (line) => line.includes(match);
  if (match instanceof RegExp) return (line) => match.test(line);
  return match;
}

function parseLog(line: string): LogLine | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const parsed = JSON.parse(line);
    return parsed && typeof parsed === "object" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Spawns `node packages/<kind>/dist/main.js` with a clean Cascade environment; does not wait. */
export function spawnCascade(kind: CascadeKind, options: SpawnOptions): CascadeProcess {
  const entry = ENTRY_POINTS[kind];
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`pnpm -r build\` before the e2e tests`);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !CASCADE_ENV_VARS.includes(key)) env[key] = value;
  }
  // No inherited debugger or loader flags from the test runner.
  delete env.NODE_OPTIONS;
  for (const [key, value] of Object.entries(options.env)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const child = spawn(process.execPath, [entry], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  const name = options.name ?? kind;
  const stdout: string[] = [];
  const stderr: string[] = [];
  const listeners = new Set<(line: string) => void>();
  let exitStatus: ExitStatus | undefined;
  const exitListeners = new Set<(status: ExitStatus) => void>();

  const collect = (stream: NodeJS.ReadableStream | null, into: string[]) => {
    let partial = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        into.push(line);
        for (const listener of listeners) listener(line);
      }
    });
    stream?.on("end", () => {
      if (partial) {
        into.push(partial);
        for (const listener of listeners) listener(partial);
        partial = "";
      }
    });
  };
  collect(child.stdout, stdout);
  collect(child.stderr, stderr);

  // "close" (not "exit") fires after stdout/stderr are drained, so every line is in by then.
  const closed = new Promise<ExitStatus>((resolveClosed) => {
    child.once("error", (error) => {
      stderr.push(`spawn error: ${error.message}`);
      exitStatus ??= { code: -1, signal: null };
      resolveClosed(exitStatus);
    });
    child.once("close", (code, signal) => {
      exitStatus ??= { code, signal };
      resolveClosed(exitStatus);
    });
  });
  closed.then((status) => {
    live.delete(proc);
    for (const listener of exitListeners) listener(status);
  });

  const describe = () =>
    `${name} (pid ${child.pid}${exitStatus ? `, exited ${exitStatus.signal ?? `code ${exitStatus.code}`}` : ""})\n` +
    `  stderr: ${stderr.slice(-10).join("\n          ") || "(empty)"}\n` +
    `  stdout: ${stdout.slice(-10).join("\n          ") || "(empty)"}`;

  const waitForLine = (match: LinePredicate, timeoutMs = 15_000) => {
    const test = matcher(match);
    const seen = [...stdout, ...stderr].find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolveLine, reject) => {
      const done = () => {
        clearTimeout(timer);
        listeners.delete(onLine);
        exitListeners.delete(onExit);
      };
      const onLine = (line: string) => {
        if (!test(line)) return;
        done();
        resolveLine(line);
      };
      const onExit = () => {
        done();
        reject(new Error(`${name} exited before logging ${String(match)}\n${describe()}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${name} did not log ${String(match)} within ${timeoutMs} ms\n${describe()}`));
      }, timeoutMs);
      listeners.add(onLine);
      if (exitStatus) onExit();
      else exitListeners.add(onExit);
    });
  };

  const waitForExit = (timeoutMs = 15_000) =>
    new Promise<ExitStatus>((resolveExit, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name} did not exit within ${timeoutMs} ms\n${describe()}`)),
        timeoutMs,
      );
      closed.then((status) => {
        clearTimeout(timer);
        resolveExit(status);
      });
    });

  const proc: CascadeProcess = {
    kind,
    name,
    child,
    pid: child.pid ?? -1,
    stdout,
    stderr,
    logs: () => stdout.map(parseLog).filter((log): log is LogLine => log !== undefined),
    waitForLine,
    async waitForLog(match, timeoutMs) {
      const line = await waitForLine((text) => {
        const log = parseLog(text);
        return log !== undefined && match(log);
      }, timeoutMs);
      return parseLog(line) as LogLine;
    },
    waitForExit,
    get exitStatus() {
      return exitStatus;
    },
    kill(signal = "SIGTERM") {
      if (!exitStatus) child.kill(signal);
    },
    async stop(graceMs = 5_000) {
      if (exitStatus) return exitStatus;
      const escalate = setTimeout(() => child.kill("SIGKILL"), graceMs);
      child.kill("SIGTERM");
      const status = await closed;
      clearTimeout(escalate);
      return status;
    },
    describe,
  };
  live.add(proc);
  return proc;
}

/** Starts the API on a free port and resolves once `GET /readyz` answers 200. */
export async function startApi(options: SpawnOptions & { timeoutMs?: number }): Promise<CascadeApi> {
  const port = await findFreePort();
  const proc = spawnCascade("api", {
    name: options.name ?? "api",
    env: { HOST: "127.0.0.1", ...options.env, PORT: String(port) },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  while (true) {
    if (proc.exitStatus) throw new Error(`the API exited during startup\n${proc.describe()}`);
    try {
      const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1_000) });
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await proc.stop(1_000);
      throw new Error(`the API did not become ready\n${proc.describe()}`);
    }
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 100));
  }
  return Object.assign(proc, { port, url });
}

export const WORKER_STARTED = "cascade worker started";

/** Starts a worker and resolves once it logs "cascade worker started". */
export async function startWorker(options: SpawnOptions & { timeoutMs?: number }): Promise<CascadeProcess> {
  const proc = spawnCascade("worker", { name: options.name ?? "worker", env: options.env });
  try {
    await proc.waitForLine(WORKER_STARTED, options.timeoutMs ?? 15_000);
  } catch (error) {
    await proc.stop(1_000);
    throw error;
  }
  return proc;
}

/** Stops every Cascade process still running (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopAllCascadeProcesses(graceMs = 3_000): Promise<void> {
  await Promise.all([...live].map((proc) => proc.stop(graceMs)));
}

/** SIGKILLs every Cascade process still running and waits for them to go. */
export async function killAllCascadeProcesses(): Promise<void> {
  await Promise.all(
    [...live].map((proc) => {
      proc.kill("SIGKILL");
      return proc.waitForExit(5_000).catch(() => undefined);
    }),
  );
}

/** A temp dir for config files, removed by `cleanup()`. */
export interface TempDir {
  path: string;
  /** Writes `content` (an object becomes JSON; a string is written as is) and returns its path. */
  write(fileName: string, content: unknown): string;
  cleanup(): void;
}

export function makeTempDir(prefix = "cascade-e2e-"): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    write(fileName, content) {
      const file = join(path, fileName);
      writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content, null, 2));
      return file;
    },
    cleanup: () => rmSync(path, { recursive: true, force: true }),
  };
}

/** A Redis key prefix no other test file (or run) uses. */
export function uniquePrefix(label: string): string {
  return `e2e${label}${process.pid}${Date.now()}${Math.floor(Math.random() * 1e6)}`;
}
