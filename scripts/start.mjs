// `npm start`: install what is missing, find or start Redis, build, then run the API and one worker
// until Ctrl+C. Node built-ins only: this runs before dependencies are installed.
import { spawn } from "node:child_process";
import { lookup } from "node:dns/promises";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildPackages, ensureDependencies } from "./lib/pnpm.mjs";
import { defaultDataDir, findOrStartRedis, RedisSetupError, redactRedisUrl } from "./lib/redis.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const services = new Map(); // name -> ChildProcess
let redis; // { url, description, stop?, child? }
let shuttingDown = false;

async function main() {
  watchParent();
  await ensureDependencies(root);
  redis = await findRedisOrExit();
  // Last-resort cleanup for exits we do not orchestrate (a failed build, a crash in this script):
  // children live in their own process groups, so nothing else would stop them.
  process.on("exit", () => {
    for (const child of services.values()) child.kill("SIGTERM");
    redis?.child?.kill("SIGTERM");
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"])
    process.on(signal, () => shutDown(`${signal} received`, 0));
  await buildPackages(root);
  if (shuttingDown) return;

  const env = { ...process.env, REDIS_URL: redis.url };
  // Another process on the API's port would answer the banner's /healthz while our API fails.
  const taken = await portTaken(env.PORT || "3000", env.HOST || "127.0.0.1");
  if (taken) {
    await shutDown(
      `PORT ${env.PORT || "3000"} on ${env.HOST || "127.0.0.1"} is in use by another process (${taken}): stop it, or run with another port (PORT=3001 npm start)`,
      1,
    );
    return;
  }
  if (shuttingDown) return;
  startService("api", "packages/api/dist/main.js", env);
  startService("worker", "packages/worker/dist/main.js", env);
  redis.child?.on("exit", (code, signal) => {
    if (!shuttingDown) shutDown(`redis-server exited unexpectedly (${signal ?? `code ${code}`})`, 1);
  });
  await printBannerWhenReady(env);
}

/**
 * Stops everything when the process that started this one goes away. `npm start` runs this script
 * in a shell, and a SIGTERM sent to npm alone (a supervisor, `docker stop`, `timeout`) reaches
 * that shell, which ends without passing it on: this script, and the services in their own
 * process groups, ran on as orphans holding the port. Checked once a second; the services drain
 * as on SIGTERM.
 */
function watchParent() {
  // Only under a package manager's script (npm, pnpm): started directly (`nohup node
  // scripts/start.mjs &`), outliving the shell that started it is what was asked for.
  if (!process.env.npm_lifecycle_event) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    shutDown("the process that started npm start has gone (it was stopped)", 0);
  }, 1000);
  timer.unref();
}

async function findRedisOrExit() {
  try {
    const found = await findOrStartRedis({ env: process.env, root, dataDir: defaultDataDir(root) });
    console.log(`Redis: ${redactRedisUrl(found.url)} (${found.description})`);
    return found;
  } catch (error) {
    if (!(error instanceof RedisSetupError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}

/**
 * Runs `node <script>` in its own process group (not on Windows, where that means a new console):
 * a terminal Ctrl+C then reaches only this script, which sends exactly one SIGTERM to each child,
 * instead of every process receiving SIGINT at once and Redis vanishing under draining workers.
 */
function startService(name, script, env) {
  const child = spawn(process.execPath, [join(root, script)], {
    cwd: root,
    env,
    stdio: "inherit",
    detached: process.platform !== "win32",
  });
  services.set(name, child);
  child.on("exit", (code, signal) => {
    services.delete(name);
    if (!shuttingDown) shutDown(`${name} exited unexpectedly (${signal ?? `code ${code}`})`, code || 1);
  });
}

/** Stops the services (SIGTERM, then SIGKILL on a second signal), then the Redis we started. */
async function shutDown(reason, exitCode) {
  if (shuttingDown) {
    console.error("Forcing shutdown.");
    for (const child of services.values()) child.kill("SIGKILL");
    return;
  }
  shuttingDown = true;
  console.error(`${reason}; stopping${services.size ? ` ${[...services.keys()].join(" and ")}` : ""}...`);
  const exits = [...services.values()].map((child) => waitForExit(child));
  for (const child of services.values()) child.kill("SIGTERM");
  const results = await Promise.all(exits);
  const unclean = results.some(({ code, signal }) => code !== 0 && signal !== "SIGTERM");
  if (redis?.stop) await redis.stop();
  process.exit(exitCode || (unclean ? 1 : 0));
}

/**
 * "EADDRINUSE" when another process listens on `port` at `host`, else undefined (a bad PORT or
 * HOST is the API's to report, in its own words). `localhost` is probed at every address it
 * resolves to (::1 and 127.0.0.1), as Fastify listens on each of them for that name (for any
 * other name, on the first address only, which is what listening on the name probes).
 */
async function portTaken(port, host) {
  const number = Number(port);
  if (!Number.isInteger(number) || number < 1 || number > 65535) return undefined;
  const addresses =
    host === "localhost"
      ? await lookup(host, { all: true }).then(
          (found) => found.map(({ address }) => address),
          () => [host],
        )
      : [host];
  for (const address of addresses) {
    const taken = await new Promise((resolve) => {
      const probe = createServer();
      probe.once("error", (error) => resolve(error.code === "EADDRINUSE" ? error.code : undefined));
      probe.listen(number, address, () => probe.close(() => resolve(undefined)));
    });
    if (taken) return taken;
  }
  return undefined;
}

function waitForExit(child) {
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

/** Waits (up to 30 s) for /healthz, then prints where the API and its pages are and how to try it. */
async function printBannerWhenReady(env) {
  const port = env.PORT || "3000";
  const host = env.HOST || "127.0.0.1";
  const reachableHost = ["0.0.0.0", "::", ""].includes(host)
    ? "127.0.0.1"
    : host.includes(":")
      ? `[${host}]`
      : host;
  const base = `http://${reachableHost}:${port}`;
  const deadline = Date.now() + 30_000;
  while (!shuttingDown && Date.now() < deadline) {
    const healthy = await fetch(`${base}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (healthy) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (shuttingDown) return;
  const auth = env.CASCADE_CONFIG ? " -H 'authorization: Bearer <your key>'" : "";
  // Pages an operator opens in a browser; with a config file of tenants they need an admin key.
  const adminNote = env.CASCADE_CONFIG
    ? [
        "  (an admin tenant's key: the dashboard asks for it; for the queues, any user name and the key as password)",
      ]
    : [];
  console.log(
    [
      "",
      `Cascade API on ${base}, one worker; Ctrl+C stops everything.`,
      `  Dashboard:  ${base}/dashboard`,
      `  Queues:     ${base}/admin/queues  (bull-board: inspect, retry, clean jobs)`,
      ...adminNote,
      `  API docs:   ${base}/docs`,
      "Try:",
      `  curl -s ${base}/v1/jobs${auth} -H 'content-type: application/json' \\`,
      `    -d '{"request":{"messages":[{"role":"user","content":"Say hello"}]}}'`,
      `  curl -s '${base}/v1/jobs/<id from above>?wait=30'${auth}`,
      "",
    ].join("\n"),
  );
}

main().catch((error) => {
  console.error(`npm start failed: ${error.message}`);
  process.exit(1);
});
