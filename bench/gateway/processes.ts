/**
 * The processes of the gateway bench: the fake upstream, Cascade's API and the Portkey gateway,
 * each its own Node process (so none shares an event loop with the load generator), killed when
 * the bench exits, also on Ctrl+C or a crash.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";

export interface Child {
  name: string;
  process: ChildProcess;
  /** The last lines it wrote to stdout/stderr (when they were piped). */
  tail(): string;
  /** True once it has exited. */
  exited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      for (const child of running) child.kill("SIGKILL");
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

/**
 * Spawns `node <args>`. With `quiet`, stdout goes to /dev/null (a log at full speed, as a
 * production log would go to a file or pipe) and only stderr is kept for error messages.
 */
export function spawnNode(
  name: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; quiet?: boolean; cwd?: string },
): Child {
  installExitHooks();
  const stdout = options.quiet ? openSync("/dev/null", "w") : "pipe";
  const child = spawn(process.execPath, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", stdout, "pipe"],
  });
  running.add(child);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (!line.trim()) continue;
      lines.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
      if (lines.length > 30) lines.shift();
    }
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let done = false;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", () => {
      done = true;
      running.delete(child);
      resolve();
    });
    child.once("error", (error) => {
      lines.push(`could not start: ${error.message}`);
      done = true;
      running.delete(child);
      resolve();
    });
  });
  return {
    name,
    process: child,
    tail: () => lines.slice(-8).join("\n"),
    exited: () => done,
    async stop(graceMs = 5_000) {
      if (done) return;
      const escalate = setTimeout(() => child.kill("SIGKILL"), graceMs);
      child.kill("SIGTERM");
      await exit;
      clearTimeout(escalate);
    },
  };
}

/** Waits until `child` prints a line matching `pattern` on stdout; returns the match. */
export function waitForLine(child: Child, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${child.name} did not print ${pattern} within ${timeoutMs} ms: ${child.tail()}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const match = pattern.exec(buffer);
      if (match) {
        cleanup();
        resolve(match);
      }
    };
    const onExit = () => {
      cleanup();
      reject(new Error(`${child.name} exited before it was ready: ${child.tail()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.process.stdout?.off("data", onData);
      child.process.off("exit", onExit);
    };
    child.process.stdout?.on("data", onData);
    child.process.once("exit", onExit);
  });
}

/** Polls `url` until it answers at all (any status); fails when `child` exits or after `timeoutMs`. */
export async function waitForHttp(child: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exited()) throw new Error(`${child.name} exited before it was ready: ${child.tail()}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) {
        throw new Error(`${child.name} not answering ${url} within ${timeoutMs} ms: ${child.tail()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
