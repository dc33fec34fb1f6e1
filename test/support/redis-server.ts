/**
 * Real Redis for tests: REDIS_URL if set, else a `redis-server` from PATH on a free port, else a
 * testcontainers `redis:7-alpine` where Docker runs. No mocks (see ARCHITECTURE.md, habit 9).
 *
 * Probing uses raw RESP over node:net rather than ioredis, which the repo root cannot resolve
 * (it is a dependency of packages/shared only, and pnpm does not hoist it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";

/** A Redis the test run can use; `spawned` is true when this process started it. */
export interface RedisHandle {
  url: string;
  spawned: boolean;
  /** A Redis Cluster (url is one of its masters, a seed): clients must be cluster clients. */
  cluster: boolean;
  /** A spawned cluster: where the run left its keys (keys per master), for the run's last line. */
  describeKeys?(): Promise<string>;
  stop(): Promise<void>;
}

/** A redis-server child owned by a test, which may crash it (`kill`) and start another on its port. */
export interface SpawnedRedis {
  url: string;
  port: number;
  /** The data directory; pass it back (with the port) to restart on the same data. */
  dir: string;
  /** SIGTERM and wait for the exit (Redis flushes its AOF first); resolves at once if already gone. */
  stop(): Promise<void>;
  /** Sends a signal without waiting, e.g. "SIGKILL" to simulate a crash. */
  kill(signal?: NodeJS.Signals): void;
  /** False once the process has exited (or been killed). */
  isRunning(): boolean;
}

export interface SpawnRedisOptions {
  /** Defaults to a free port; pass a previous server's port to restart "the same" Redis. */
  port?: number;
  /** Data directory (created if missing); pass a previous server's `dir` with `appendonly: true` to keep its data. Default: a temp dir. */
  dir?: string;
  /** Persist every write to an AOF (default false). */
  appendonly?: boolean;
  /** More redis-server arguments, e.g. cluster mode (see redis-cluster.ts). */
  extraArgs?: string[];
}

// Servers this process spawned keep their data dirs and pid files under one directory named after
// the process. "exit" hooks clean up after a normal exit, but vitest ends its fork workers with
// SIGTERM, which skips them; so each process also sweeps up after owners that are gone.
const ownRoot = join(tmpdir(), `cascade-redis-${process.pid}`);
const liveServers = new Set<ChildProcess>();
sweepAbandonedServers();
process.once("exit", () => {
  for (const child of liveServers) child.kill("SIGKILL");
  rmSync(ownRoot, { recursive: true, force: true });
});

const HOW_TO_GET_REDIS =
  "No Redis for tests: install redis-server (sudo apt-get install redis-server, or brew install redis), start Docker, or set REDIS_URL=redis://host:port";

/**
 * Finds or starts the Redis for a whole test run (see the file comment for the order).
 * CASCADE_TEST_REDIS=cluster asks for a Redis Cluster instead: REDIS_URL must then be a cluster
 * node, else one is spawned (3 masters, 3 replicas, see redis-cluster.ts).
 */
export async function startRedis(): Promise<RedisHandle> {
  const mode = process.env.CASCADE_TEST_REDIS || "single";
  if (mode !== "single" && mode !== "cluster") {
    throw new Error(`CASCADE_TEST_REDIS must be "single" or "cluster", got "${mode}"`);
  }
  const configured = process.env.REDIS_URL;
  if (configured) {
    await pingRedis(configured).catch((error: Error) => {
      throw new Error(`REDIS_URL=${configured} does not answer PING: ${error.message}`);
    });
    const cluster = await isRedisCluster(configured);
    if (mode === "cluster" && !cluster) {
      throw new Error(`CASCADE_TEST_REDIS=cluster but REDIS_URL=${configured} is not a Redis Cluster node`);
    }
    return { url: configured, spawned: false, cluster, stop: async () => {} };
  }
  if (mode === "cluster") {
    if (!(await isOnPath("redis-server")) || !(await isOnPath("redis-cli"))) {
      throw new Error(
        "CASCADE_TEST_REDIS=cluster needs redis-server and redis-cli on PATH (sudo apt-get install redis-server), or REDIS_URL of a cluster node",
      );
    }
    // Imported here: redis-cluster.ts imports this module.
    const { spawnRedisCluster } = await import("./redis-cluster.js");
    const cluster = await spawnRedisCluster();
    const describeKeys = async () => {
      const masters = await cluster.masters();
      const counts = await Promise.all(masters.map((node) => cluster.command(node, "DBSIZE")));
      return `keys per master: ${masters.map((node, index) => `:${node.port} ${Number(counts[index])}`).join(", ")}`;
    };
    return { url: cluster.url, spawned: true, cluster: true, stop: cluster.stop, describeKeys };
  }
  if (await isOnPath("redis-server")) {
    const server = await spawnRedisServer();
    return { url: server.url, spawned: true, cluster: false, stop: server.stop };
  }
  return startRedisContainer();
}

/** Always spawns a fresh `redis-server` child; resolves once it answers PING. */
export async function spawnRedisServer(options: SpawnRedisOptions = {}): Promise<SpawnedRedis> {
  const port = options.port ?? (await findFreePort());
  mkdirSync(ownRoot, { recursive: true });
  const dir = options.dir ?? mkdtempSync(join(ownRoot, "server-"));
  mkdirSync(dir, { recursive: true });
  const args = [
    ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no"],
    ...["--save", "", "--appendonly", options.appendonly ? "yes" : "no", "--maxmemory-policy", "noeviction"],
    ...(options.extraArgs ?? []),
  ];
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  let ready = false;
  const output = collectOutput(child, (line) => {
    ready ||= line.includes("Ready to accept connections");
  });
  liveServers.add(child);
  const pidFile = join(ownRoot, `${child.pid}.pid`);
  if (child.pid !== undefined) writeFileSync(pidFile, String(child.pid));

  let exitReason: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once("error", (error) => {
      exitReason = `could not run redis-server: ${error.message}`;
      resolve();
    });
    child.once("exit", (code, signal) => {
      exitReason ??= `redis-server exited (${signal ?? `code ${code}`}): ${output().slice(-3).join(" | ")}`;
      liveServers.delete(child);
      rmSync(pidFile, { force: true });
      resolve();
    });
  });

  const url = `redis://127.0.0.1:${port}`;
  try {
    // Wait for this child's own "ready" line before trusting a PONG: another server on the
    // port (a restart racing its predecessor) would answer PING while ours fails to bind.
    const isReady = () => ready;
    await waitForPing(url, 10_000, () => exitReason, isReady);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  return {
    url,
    port,
    dir,
    kill: (signal = "SIGTERM") => void child.kill(signal),
    isRunning: () => child.exitCode === null && child.signalCode === null && !child.killed,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const escalate = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.kill("SIGTERM");
        await exited;
        clearTimeout(escalate);
      }
      await exited;
    },
  };
}

/** Sends PING over raw RESP (AUTH first when the URL has a password); resolves on +PONG. */
export async function pingRedis(url: string, timeoutMs = 2_000): Promise<void> {
  const reply = await firstReplyLine(url, ["PING"], timeoutMs);
  if (reply.startsWith("-")) throw new Error(reply.slice(1));
  if (reply !== "+PONG") throw new Error(`unexpected reply ${reply}`);
}

/** Whether the Redis at `url` is a Redis Cluster node (CLUSTER INFO answers instead of erring). */
export async function isRedisCluster(url: string, timeoutMs = 2_000): Promise<boolean> {
  return (await firstReplyLine(url, ["CLUSTER", "INFO"], timeoutMs)).startsWith("$");
}

/**
 * Sends one command over raw RESP (AUTH first when the URL has a password) and resolves with the
 * first line of its reply, type prefix included (`+PONG`, `$123`, `-ERR ...`). A failed AUTH rejects.
 */
function firstReplyLine(url: string, command: string[], timeoutMs: number): Promise<string> {
  const { hostname, port, username, password, protocol } = new URL(url);
  const commands = [command];
  if (password) {
    const credentials = username ? [username, password] : [password];
    commands.unshift(["AUTH", ...credentials.map(decodeURIComponent)]);
  }
  return new Promise((resolve, reject) => {
    const host = hostname.replace(/^\[|\]$/g, "");
    const target = { host, port: Number(port || 6379) };
    const socket =
      protocol === "rediss:" ? tls.connect({ ...target, servername: host }) : net.connect(target);
    let received = "";
    let settled = false;
    const finish = (error: Error | undefined, reply = "") => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (error) reject(error);
      else resolve(reply);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`no answer within ${timeoutMs} ms`)));
    socket.on("error", finish);
    socket.on("close", () => finish(new Error("connection closed before a reply")));
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      const replies = received.split("\r\n").slice(0, -1);
      if (commands.length === 2 && replies[0]?.startsWith("-")) {
        finish(new Error(replies[0].slice(1)));
      } else if (replies.length >= commands.length) {
        finish(undefined, replies[commands.length - 1]);
      }
    });
    socket.write(
      commands
        .map(
          (parts) =>
            `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join("")}`,
        )
        .join(""),
    );
  });
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

async function waitForPing(
  url: string,
  timeoutMs: number,
  exitReason: () => string | undefined,
  ready: () => boolean = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: Error | undefined;
  while (Date.now() < deadline) {
    const reason = exitReason();
    if (reason) throw new Error(reason);
    try {
      if (ready()) return await pingRedis(url, 1_000);
    } catch (error) {
      lastError = error as Error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `redis-server at ${url} did not answer PING within ${timeoutMs} ms (${lastError?.message})`,
  );
}

/** Keeps the last lines of the child's output (it must be drained anyway) for error messages. */
function collectOutput(child: ChildProcess, onLine: (line: string) => void): () => string[] {
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    const fresh = chunk.toString().split("\n").filter(Boolean);
    fresh.forEach(onLine);
    lines.push(...fresh);
    if (lines.length > 20) lines.splice(0, lines.length - 20);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return () => lines;
}

function isOnPath(command: string): Promise<boolean> {
  return new Promise((resolve) => {
    const finder = spawn(process.platform === "win32" ? "where" : "which", [command], { stdio: "ignore" });
    finder.on("error", () => resolve(false));
    finder.on("exit", (code) => resolve(code === 0));
  });
}

/** The Docker fallback; loaded lazily so runs with a local redis-server never touch testcontainers. */
async function startRedisContainer(): Promise<RedisHandle> {
  const { GenericContainer, Wait } = await import("testcontainers");
  try {
    const container = await new GenericContainer("redis:7-alpine")
      .withCommand(["redis-server", "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"])
      .withExposedPorts(6379)
      .withWaitStrategy(Wait.forLogMessage("Ready to accept connections"))
      .start();
    const url = `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
    await waitForPing(url, 10_000, () => undefined);
    return { url, spawned: true, cluster: false, stop: async () => void (await container.stop()) };
  } catch (error) {
    const reason = (error as Error).message.split("\n")[0];
    throw new Error(`${HOW_TO_GET_REDIS} (Docker fallback failed: ${reason})`);
  }
}

/** Kills the redis-servers and removes the dirs of test processes that died without cleaning up. */
function sweepAbandonedServers(): void {
  for (const name of readdirSync(tmpdir())) {
    const owner = /^cascade-redis-(\d+)$/.exec(name)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    const root = join(tmpdir(), name);
    try {
      for (const file of readdirSync(root).filter((entry) => entry.endsWith(".pid"))) {
        killIfRedis(Number(readFileSync(join(root, file), "utf8")));
      }
      rmSync(root, { recursive: true, force: true });
    } catch {
      // Another test process is sweeping the same directory.
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Only where /proc proves the pid is still a redis-server: a reused pid must never be killed. */
function killIfRedis(pid: number): void {
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("redis-server")) process.kill(pid, "SIGKILL");
  } catch {
    // Already gone, or no /proc on this platform.
  }
}
