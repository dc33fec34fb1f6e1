/**
 * The Redis a benchmark runs against: REDIS_URL when set, else a private `redis-server` on a
 * free port with no persistence (`--save "" --appendonly no`) and `noeviction`, stopped at the end
 * (also on Ctrl+C and on a crash of the bench process).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface BenchRedis {
  url: string;
  /** True when this process started the server (so its INFO counters are the bench's own). */
  spawned: boolean;
  stop(): Promise<void>;
}

/** A port free right now (the OS picks it). */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const children = new Set<ChildProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", () => {
    for (const child of children) child.kill("SIGKILL");
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      for (const child of children) child.kill("SIGKILL");
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

async function spawnRedisServer(): Promise<BenchRedis> {
  const port = await findFreePort();
  const dir = mkdtempSync(join(tmpdir(), "cascade-bench-redis-"));
  const args = [
    ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no"],
    ...["--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"],
  ];
  installExitHooks();
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => {
    child.once("error", (error) => {
      lines.push(`could not run redis-server: ${error.message}`);
      resolve();
    });
    child.once("exit", () => {
      children.delete(child);
      resolve();
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`redis-server not ready within 10 s: ${lines.slice(-3).join(" | ")}`)),
      10_000,
    );
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n").filter(Boolean)) {
        lines.push(line);
        if (lines.length > 20) lines.shift();
        if (line.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited before it was ready: ${lines.slice(-3).join(" | ")}`));
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const escalate = setTimeout(() => child.kill("SIGKILL"), 5_000);
      child.kill("SIGTERM");
      await exited;
      clearTimeout(escalate);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis://127.0.0.1:${port}`, spawned: true, stop };
}

export async function startBenchRedis(env: NodeJS.ProcessEnv = process.env): Promise<BenchRedis> {
  if (env.REDIS_URL) return { url: env.REDIS_URL, spawned: false, stop: async () => {} };
  return spawnRedisServer();
}
