/**
 * Shared pieces of the chaos tests: the short/long switch (`CHAOS_LONG=1`, set by `pnpm chaos`),
 * the Cascade config over the counting upstream, a paced job submitter and the figures each
 * scenario prints.
 */
import { type HttpResult, http, sleep } from "../e2e/helpers.js";
import { type CascadeProcess, spawnCascade } from "../support/processes.js";
import { findFreePort } from "../support/redis-server.js";

/** `pnpm chaos` runs the long versions; `npm test` the short ones. */
export const CHAOS_LONG = process.env.CHAOS_LONG === "1";

/** The short figure, or the long one under CHAOS_LONG=1. */
export function scale<T>(short: T, long: T): T {
  return CHAOS_LONG ? long : short;
}

export const CHAOS_KEY = "sk-chaos-fake-key-5e1d0a";

/** One provider (`up`, OpenAI-compatible, at `upstreamUrl`) and one model `echo` on route default. */
export function chaosConfig(
  upstreamUrl: string,
  options: { limits?: Record<string, number>; breaker?: Record<string, number>; timeoutMs?: number } = {},
) {
  return {
    providers: {
      up: {
        type: "openai",
        base_url: upstreamUrl,
        api_key_env: "CHAOS_KEY",
        ...(options.limits ? { limits: options.limits } : {}),
        ...(options.breaker ? { breaker: options.breaker } : {}),
      },
    },
    models: { echo: { provider: "up", name: "up-echo", price: { input_per_mtok: 1, output_per_mtok: 2 } } },
    routes: { default: { chain: [{ model: "echo", timeout_ms: options.timeoutMs ?? 20_000 }] } },
    webhooks: { allow_private_networks: true, max_attempts: 8, retry_schedule_ms: [500, 1000, 2000] },
  };
}

/** The chat request of job `key` (the upstream counts calls by this message). */
export function chaosRequest(key: string) {
  return { messages: [{ role: "user", content: key }], max_tokens: 16 };
}

/** One POST /v1/jobs as the submitter saw it. */
export interface Submission {
  key: string;
  sentAt: number;
  answeredAt: number;
  status: number | "error";
  jobId?: string;
  errorType?: string;
  /** Why no answer came (a timeout, a refused connection). */
  failure?: string;
}

/**
 * Posts `count` jobs (`key(i)`), `perSecond` a second, at most `inFlight` requests at a time;
 * each request gives up after `timeoutMs` (counted as "error": the API hung).
 */
export async function submitJobs(options: {
  apiUrl: string;
  count: number;
  perSecond: number;
  key: (index: number) => string;
  body?: (key: string) => Record<string, unknown>;
  inFlight?: number;
  timeoutMs?: number;
  stop?: () => boolean;
}): Promise<Submission[]> {
  const submissions: Submission[] = [];
  const started = Date.now();
  const inFlight = options.inFlight ?? 50;
  let next = 0;
  const lane = async () => {
    while (next < options.count && !options.stop?.()) {
      const index = next++;
      const dueAt = started + (index * 1000) / options.perSecond;
      if (dueAt > Date.now()) await sleep(dueAt - Date.now());
      const key = options.key(index);
      const sentAt = Date.now();
      let answer: HttpResult | undefined;
      let failure: string | undefined;
      try {
        answer = await http(
          options.apiUrl,
          "POST",
          "/v1/jobs",
          { request: chaosRequest(key), ...options.body?.(key) },
          options.timeoutMs ?? 10_000,
        );
      } catch (error) {
        answer = undefined;
        const cause = (error as { cause?: { code?: string } }).cause;
        failure = `${(error as Error).name}: ${(error as Error).message}${cause?.code ? ` (${cause.code})` : ""}`;
      }
      submissions.push({
        key,
        sentAt,
        answeredAt: Date.now(),
        status: answer?.status ?? "error",
        ...(answer?.status === 202 ? { jobId: answer.body.id as string } : {}),
        ...(answer && answer.status !== 202
          ? { errorType: answer.body?.error?.type ?? String(answer.body).slice(0, 200) }
          : {}),
        ...(failure ? { failure } : {}),
      });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return submissions;
}

/** GET /v1/jobs/:id for each id, `inFlight` at a time; the answers in the same order. */
export async function readJobs(apiUrl: string, ids: string[], inFlight = 20): Promise<HttpResult[]> {
  const answers: HttpResult[] = new Array(ids.length);
  let next = 0;
  const lane = async () => {
    while (next < ids.length) {
      const index = next++;
      answers[index] = await http(apiUrl, "GET", `/v1/jobs/${ids[index]}`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return answers;
}

/** Prints a scenario's figures as one block (vitest shows it under the test). */
export function printFigures(scenario: string, figures: Record<string, string | number>): void {
  const width = Math.max(...Object.keys(figures).map((name) => name.length));
  const lines = Object.entries(figures).map(([name, value]) => `  ${name.padEnd(width)}  ${value}`);
  console.log(`chaos: ${scenario}${CHAOS_LONG ? " (long)" : " (short)"}\n${lines.join("\n")}`);
}

/** Seconds with one decimal, for figures. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A worker process, and when it is ready (see spawnQuietWorker). */
export interface QuietWorker {
  worker: CascadeProcess;
  ready: Promise<CascadeProcess>;
  isReady(): boolean;
}

/**
 * Spawns a worker at LOG_LEVEL=warn (thousands of jobs' info lines cost CPU the run needs), so
 * "cascade worker started" is not logged: it is ready once its metrics endpoint answers, which it
 * serves once its queues, workers and listeners are set up.
 */
export async function spawnQuietWorker(
  name: string,
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<QuietWorker> {
  const port = await findFreePort();
  const worker = spawnCascade("worker", {
    name,
    env: { ...env, LOG_LEVEL: "warn", METRICS_PORT: String(port) },
  });
  let readyNow = false;
  const ready = (async () => {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      if (worker.exitStatus) throw new Error(`${name} exited during startup\n${worker.describe()}`);
      try {
        const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
          signal: AbortSignal.timeout(1_000),
        });
        await response.arrayBuffer();
        if (response.ok) {
          readyNow = true;
          return worker;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        worker.kill("SIGKILL");
        throw new Error(`${name} did not start within ${timeoutMs} ms\n${worker.describe()}`);
      }
      await sleep(100);
    }
  })();
  ready.catch(() => {}); // a worker killed while it starts is no error of the spawner's
  return { worker, ready, isReady: () => readyNow };
}

/** Starts a quiet worker (see spawnQuietWorker) and resolves once it is ready. */
export async function startQuietWorker(
  name: string,
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<CascadeProcess> {
  return (await spawnQuietWorker(name, env, timeoutMs)).ready;
}
