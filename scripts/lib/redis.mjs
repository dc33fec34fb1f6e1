// Finding, probing and starting Redis for `npm start` (and the pre-flight check of `npm test`).
// Node built-ins only: this runs before dependencies are installed, so no ioredis.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { isDockerEngineReachable, isOnPath, run } from "./process.mjs";

/** One line telling a user how to get a Redis; printed when none can be found or started. */
export const HOW_TO_GET_REDIS =
  "No Redis found: install one (sudo apt-get install redis-server, or brew install redis), start Docker, or set REDIS_URL=redis://host:port";

/** A failure whose message is already the one line to show the user. */
export class RedisSetupError extends Error {}

/** The URL with any password replaced, for printing. */
export function redactRedisUrl(url) {
  if (!URL.canParse(url)) return "(not a URL)";
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

/**
 * Sends PING (after AUTH when the URL has credentials) over raw RESP and resolves when Redis
 * answers +PONG; rejects with a readable reason otherwise (refused, timeout, NOAUTH, LOADING...).
 */
export function pingRedis(url, timeoutMs = 2_000) {
  const { hostname, port, password, username, protocol } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, "");
  const commands = [];
  if (password) {
    const auth = username ? ["AUTH", decodeURIComponent(username)] : ["AUTH"];
    commands.push([...auth, decodeURIComponent(password)]);
  }
  commands.push(["PING"]);
  return new Promise((resolve, reject) => {
    const options = { host, port: Number(port || 6379) };
    const socket =
      protocol === "rediss:" ? tls.connect({ ...options, servername: host }) : net.connect(options);
    let received = "";
    const finish = (error) => {
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`no answer within ${timeoutMs} ms`)));
    socket.on("error", (error) => finish(error));
    socket.on("close", () => finish(new Error("connection closed before PONG")));
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
      const replies = received.split("\r\n").slice(0, -1);
      const failure = replies.find((reply) => reply.startsWith("-"));
      if (failure) finish(new Error(failure.slice(1)));
      else if (replies.length >= commands.length) {
        finish(replies.at(-1) === "+PONG" ? undefined : new Error(`unexpected reply ${replies.at(-1)}`));
      }
    });
    socket.write(commands.map(encodeCommand).join(""));
  });
}

function encodeCommand(parts) {
  return `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join("")}`;
}

/** True when PING succeeds. */
export async function isRedisReachable(url, timeoutMs) {
  return pingRedis(url, timeoutMs).then(
    () => true,
    () => false,
  );
}

/**
 * Polls PING until it succeeds or `timeoutMs` passes. `exited()` lets a caller that spawned the
 * server fail fast with the server's own output instead of waiting out the timeout; `ready()` holds
 * pinging until that server logged readiness, so a PONG from another server on the port is not trusted.
 */
export async function waitForRedis(
  url,
  { timeoutMs = 10_000, exited = () => undefined, ready = () => true } = {},
) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    const exitReason = exited();
    if (exitReason) throw new RedisSetupError(exitReason);
    try {
      if (ready()) return await pingRedis(url, 1_000);
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new RedisSetupError(
    `Redis at ${redactRedisUrl(url)} did not answer PING within ${timeoutMs} ms (${lastError?.message})`,
  );
}

/** True when nothing listens on 127.0.0.1:port. */
export function isPortFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port the OS considers free right now. */
export function findFreePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `redis-server` as a child in its own process group, so a Ctrl+C in the terminal reaches
 * only start.mjs, which stops Redis last (after the API and worker have drained).
 * Its output is kept in memory (last lines only) and shown if it fails to start.
 */
export async function startRedisServer({ port, dir, appendonly = true }) {
  mkdirSync(dir, { recursive: true });
  const args = [
    ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no"],
    ...["--appendonly", appendonly ? "yes" : "no", "--maxmemory-policy", "noeviction"],
  ];
  const child = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const output = [];
  let ready = false;
  const keep = (chunk) => {
    const lines = chunk.toString().split("\n").filter(Boolean);
    ready ||= lines.some((line) => line.includes("Ready to accept connections"));
    output.push(...lines);
    if (output.length > 20) output.splice(0, output.length - 20);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exitReason;
  child.on("error", (error) => (exitReason = `could not run redis-server: ${error.message}`));
  child.on("exit", (code, signal) => {
    exitReason ??= `redis-server exited (${signal ?? `code ${code}`}): ${output.slice(-3).join(" | ")}`;
  });
  const url = `redis://127.0.0.1:${port}`;
  await waitForRedis(url, { exited: () => exitReason, ready: () => ready });
  return { url, port, child, stop: () => stopChild(child) };
}

/** SIGTERM (Redis then syncs its AOF), SIGKILL after 10 s; resolves once the process is gone. */
export function stopChild(child, graceMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/**
 * Finds a Redis for `npm start`, in order: REDIS_URL; one already on 127.0.0.1:defaultPort; a
 * redis-server child persisting to dataDir; the compose file's redis service. Resolves to
 * { url, description, stop? } (stop is set only for a child we own); throws RedisSetupError.
 */
export async function findOrStartRedis({ env, root, dataDir, defaultPort = 6379, log = console.log }) {
  if (env.REDIS_URL) {
    // As the API and worker check it, before anything tries to reach it.
    if (!URL.canParse(env.REDIS_URL) || !/^rediss?:$/.test(new URL(env.REDIS_URL).protocol)) {
      throw new RedisSetupError(
        "REDIS_URL must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379); fix it, or unset REDIS_URL to let npm start find or start Redis",
      );
    }
    try {
      await pingRedis(env.REDIS_URL, 3_000);
    } catch (error) {
      throw new RedisSetupError(
        `REDIS_URL=${redactRedisUrl(env.REDIS_URL)} is not reachable (${error.message}); start that Redis or unset REDIS_URL`,
      );
    }
    return { url: env.REDIS_URL, description: "REDIS_URL" };
  }
  const localUrl = `redis://127.0.0.1:${defaultPort}`;
  if (await isRedisReachable(localUrl)) return { url: localUrl, description: "already running" };

  if (isOnPath("redis-server")) {
    const port = (await isPortFree(defaultPort)) ? defaultPort : await findFreePort();
    log(`Starting redis-server on port ${port} (data in ${dataDir})...`);
    const server = await startRedisServer({ port, dir: dataDir });
    return { url: server.url, description: "started by npm start", stop: server.stop, child: server.child };
  }

  if (isDockerEngineReachable()) {
    log("Starting Redis with docker compose (service redis)...");
    const code = await run("docker", ["compose", "up", "-d", "redis"], {
      cwd: root,
      env: { ...env, REDIS_PORT: String(defaultPort) },
    });
    if (code !== 0)
      throw new RedisSetupError(`docker compose up -d redis failed (exit ${code}). ${HOW_TO_GET_REDIS}`);
    await waitForRedis(localUrl, { timeoutMs: 60_000 });
    return {
      url: localUrl,
      description: "docker compose service redis (docker compose stop redis to stop it)",
    };
  }
  throw new RedisSetupError(HOW_TO_GET_REDIS);
}

/** Where `npm start` keeps the data of a Redis it starts itself. */
export function defaultDataDir(root) {
  return join(root, ".cascade", "redis");
}
