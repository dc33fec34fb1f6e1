/**
 * `node --import tsx bench/batch-ingest.ts [--lines 50000] [--rounds 3]`: how long the API takes
 * to accept and enqueue a big batch, and the longest the API process's event loop is held up
 * meanwhile. The API runs in a child process (built dist, as in production, no worker, logs off);
 * this process is the client: it uploads a generated JSONL file (POST /v1/files), creates the
 * batch (POST /v1/batches: the whole file is validated before the answer), then watches the
 * batch's enqueue cursor until every line is on the queue. The child measures its own event loop
 * with a 5 ms setInterval drift probe and `perf_hooks.monitorEventLoopDelay`, per phase.
 * Asserts nothing; prints the figures and writes bench/results/batch-ingest-<timestamp>.json.
 */
import { type ChildProcess, fork } from "node:child_process";
import os from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { buildPackages, loadModules, repoRoot } from "./support/modules.js";
import { startBenchRedis } from "./support/redis-server.js";
import { machineInfo, writeResults } from "./support/results.js";

const benchConfig = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" }, smart: { provider: "sim" } },
  routes: {
    default: { chain: [{ model: "fast" }] },
    summarize: { chain: [{ model: "smart" }, { model: "fast" }] },
  },
  fallbacks: { smart: ["fast"] },
};

interface PhaseStats {
  /** Longest gap of the 5 ms interval probe beyond its 5 ms, in ms. */
  maxBlockMs: number;
  /** monitorEventLoopDelay's max and p99 over the phase, in ms. */
  histogramMaxMs: number;
  histogramP99Ms: number;
  /** Probe gaps over 50 ms. */
  blocksOver50ms: number;
}

type ChildMessage = { type: "ready"; url: string; prefix: string } | { type: "stats"; stats: PhaseStats };

/** The API process: buildApp from packages/api/dist, listening on a free port, probing its loop. */
async function serve(): Promise<void> {
  const { shared, pino } = await loadModules();
  const api = (await import(pathToFileURL(join(repoRoot, "packages", "api", "dist", "app.js")).href)) as {
    buildApp: (deps: unknown) => {
      app: { listen(options: object): Promise<string>; server: { address(): unknown } };
      ready(): Promise<void>;
      close(): Promise<void>;
    };
  };
  const redisUrl = process.env.BENCH_REDIS_URL as string;
  const prefix = `bench-ingest-${Date.now().toString(36)}`;
  const config = shared.loadConfig(
    { REDIS_URL: redisUrl, CASCADE_REDIS_PREFIX: prefix, LOG_LEVEL: "silent" },
    { raw: benchConfig },
  );
  const redis = shared.createRedis(redisUrl);
  const cascade = api.buildApp({ config, redis, logger: pino.pino({ level: "silent" }) });
  await cascade.ready();
  await cascade.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = cascade.app.server.address() as { port: number };

  const histogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  let last = performance.now();
  let maxBlock = 0;
  let over50 = 0;
  setInterval(() => {
    const now = performance.now();
    const block = now - last - 5;
    if (block > maxBlock) maxBlock = block;
    if (block > 50) over50 += 1;
    last = now;
  }, 5);
  const send = (message: ChildMessage) => process.send?.(message);
  process.on("message", async (message: { type: string }) => {
    if (message.type === "mark") {
      send({
        type: "stats",
        stats: {
          maxBlockMs: Math.max(0, maxBlock),
          histogramMaxMs: histogram.max / 1e6,
          histogramP99Ms: histogram.percentile(99) / 1e6,
          blocksOver50ms: over50,
        },
      });
      maxBlock = 0;
      over50 = 0;
      histogram.reset();
    } else if (message.type === "stop") {
      await cascade.close();
      redis.disconnect();
      process.exit(0);
    }
  });
  send({ type: "ready", url: `http://127.0.0.1:${port}`, prefix });
}

function nextMessage<T extends ChildMessage["type"]>(
  child: ChildProcess,
  type: T,
): Promise<Extract<ChildMessage, { type: T }>> {
  return new Promise((resolve) => {
    const listener = (message: ChildMessage) => {
      if (message.type !== type) return;
      child.off("message", listener);
      resolve(message as Extract<ChildMessage, { type: T }>);
    };
    child.on("message", listener);
  });
}

function generateFile(lines: number): string {
  const models = ["fast", "summarize", "smart", "fast"];
  const parts: string[] = [];
  for (let index = 0; index < lines; index += 1) {
    parts.push(
      JSON.stringify({
        custom_id: `request-${index}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: models[index % models.length],
          messages: [
            { role: "system", content: "You are a careful assistant that answers in one short paragraph." },
            {
              role: "user",
              content: `Summarize document ${index}: ${"lorem ipsum dolor sit amet ".repeat(4)}`,
            },
          ],
          max_tokens: 200,
          temperature: 0.2,
        },
      }),
    );
  }
  return `${parts.join("\n")}\n`;
}

async function round(
  lines: number,
  text: string,
  shared: Awaited<ReturnType<typeof loadModules>>["shared"],
  redisUrl: string,
) {
  const child = fork(import.meta.filename, ["--serve"], {
    env: { ...process.env, BENCH_REDIS_URL: redisUrl },
    execArgv: process.execArgv,
    stdio: "inherit",
  });
  const { url, prefix } = await nextMessage(child, "ready");
  const redis = shared.createRedis(redisUrl);
  const mark = async () => {
    const reply = nextMessage(child, "stats");
    child.send({ type: "mark" });
    return (await reply).stats;
  };
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    await mark();
    const started = performance.now();
    const form = new FormData();
    form.append("file", new Blob([text]), "ingest.jsonl");
    form.append("purpose", "batch");
    const uploaded = (await (await fetch(`${url}/v1/files`, { method: "POST", body: form })).json()) as {
      id: string;
    };
    const uploadMs = performance.now() - started;
    const upload = await mark();

    const createStarted = performance.now();
    const response = await fetch(`${url}/v1/batches`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        input_file_id: uploaded.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    });
    const batch = (await response.json()) as { id: string; status: string };
    if (response.status !== 200)
      throw new Error(`POST /v1/batches answered ${response.status}: ${JSON.stringify(batch)}`);
    const createMs = performance.now() - createStarted;
    const create = await mark();

    const key = `{${prefix}}:batch:${batch.id}`;
    for (;;) {
      if ((await redis.hget(key, "enqueue_done")) === "1") break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const enqueueMs = performance.now() - createStarted - createMs;
    const enqueue = await mark();
    const queued = await redis.zcard(`{${prefix}}:completions:prioritized`);
    if (queued !== lines) throw new Error(`expected ${lines} queued jobs, found ${queued}`);
    return {
      uploadMs,
      createMs,
      enqueueMs,
      totalMs: performance.now() - started,
      upload,
      create,
      enqueue,
      queued,
    };
  } finally {
    child.send({ type: "stop" });
    await new Promise((resolve) => child.once("exit", resolve));
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  const argument = (name: string, fallback: number) => {
    const index = process.argv.indexOf(name);
    return index >= 0 ? Number(process.argv[index + 1]) : fallback;
  };
  const lines = argument("--lines", 50_000);
  const rounds = argument("--rounds", 3);
  if (!process.argv.includes("--no-build")) buildPackages();
  const { shared } = await loadModules();
  const redis = await startBenchRedis();
  const text = generateFile(lines);
  const machine = machineInfo();
  console.log(
    `batch ingest bench: ${lines} lines (${(Buffer.byteLength(text) / 1024 / 1024).toFixed(1)} MB), ${rounds} round(s); ` +
      `${machine.cpus} cpus, node ${machine.node}, load average ${os.loadavg()[0]?.toFixed(2)}`,
  );
  const results = [];
  try {
    for (let index = 0; index < rounds; index += 1) {
      const result = await round(lines, text, shared, redis.url);
      results.push(result);
      const phase = (name: string, ms: number, stats: PhaseStats) =>
        `${name} ${(ms / 1000).toFixed(2)} s (max block ${stats.maxBlockMs.toFixed(1)} ms, loop delay p99 ${stats.histogramP99Ms.toFixed(1)} ms, blocks > 50 ms: ${stats.blocksOver50ms})`;
      console.log(
        `round ${index + 1}: ${phase("upload", result.uploadMs, result.upload)}; ${phase("validate+accept", result.createMs, result.create)}; ` +
          `${phase("enqueue", result.enqueueMs, result.enqueue)}; ${Math.round(lines / ((result.createMs + result.enqueueMs) / 1000))} lines/s accepted+queued`,
      );
    }
    const worst = Math.max(
      ...results.flatMap((result) =>
        [result.upload, result.create, result.enqueue].map((stats) => stats.maxBlockMs),
      ),
    );
    console.log(`max event-loop block over all rounds and phases: ${worst.toFixed(1)} ms`);
    console.log(
      `results: ${writeResults("batch-ingest", { lines, machine, loadavg: os.loadavg(), results })}`,
    );
  } finally {
    await redis.stop();
  }
}

if (process.argv.includes("--serve")) await serve();
else await main();
