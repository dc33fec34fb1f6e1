/**
 * Shared pieces of the resilience proofs (test/e2e/resilience-*.test.ts): a stack of real
 * processes (one API, several workers) on the run's Redis under a unique prefix, pointed at its own
 * fake OpenAI upstream; job submission and waiting in bulk; direct reads of Cascade's Redis keys
 * (breaker hash, spend) through ioredis; and small statistics over the fake's call timestamps.
 */
import type { RedisClient } from "@cascade/shared";
import { inject } from "vitest";
import { type FakeCall, type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  type CascadeProcess,
  makeTempDir,
  startApi,
  startWorker,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { testRedis } from "../support/redis-clients.js";
import { FAKE_KEY_VALUE, type HttpResult, type Json, sleep } from "./helpers.js";

export { sleep };

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export interface StackOptions {
  /** A short label for the Redis prefix and process names. */
  label: string;
  /** Builds the config from the fake's base URL (providers use `api_key_env: "FAKE_KEY"`). */
  config: (fakeUrl: string) => unknown;
  workers?: number;
  concurrency?: number;
  /** Extra environment for every process (e.g. tenants' API keys). */
  env?: Record<string, string>;
  logLevel?: string;
}

export interface ResilienceStack {
  fake: FakeOpenAI;
  api: CascadeApi;
  workers: CascadeProcess[];
  env: Record<string, string>;
  prefix: string;
  /** A direct connection to the run's Redis, for reading Cascade's keys. */
  redis: RedisClient;
  /** `{prefix}` — the hash tag every Cascade key starts with. */
  tag: string;
  dir: TempDir;
  startWorker(name: string, concurrency?: number): Promise<CascadeProcess>;
  request(method: string, path: string, body?: unknown, apiKey?: string): Promise<HttpResult>;
  /** POST /v1/jobs; throws unless 202. Returns the job id. */
  submit(body: unknown, apiKey?: string): Promise<string>;
  /** Submits `count` jobs, `body(index)` each, 50 at a time; returns their ids in order. */
  submitMany(count: number, body: (index: number) => unknown): Promise<string[]>;
  /** The job object now (GET /v1/jobs/:id). */
  job(id: string, apiKey?: string): Promise<Json>;
  /** Waits until the job is terminal (GET ?wait, re-polled). */
  waitJob(id: string, totalMs?: number, apiKey?: string): Promise<Json>;
  /** Waits for many jobs, at most `parallel` long-polls at a time; same order as `ids`. */
  waitAll(ids: string[], totalMs?: number, apiKey?: string, parallel?: number): Promise<Json[]>;
  /** The breaker hash (state, open_until, reopens, log…) of `provider:<id>` or `model:<id>`. */
  breaker(breakerId: string): Promise<BreakerState>;
  close(): Promise<void>;
}

export interface BreakerState {
  state: string;
  reopens: number;
  openUntil: number;
  probeUntil: number;
  /** Transitions, oldest first. */
  log: Array<{ at: number; from: string; to: string; why: string }>;
}

export async function startResilienceStack(options: StackOptions): Promise<ResilienceStack> {
  const fake = await startFakeOpenAI();
  const dir = makeTempDir(`cascade-${options.label}-`);
  const prefix = uniquePrefix(options.label);
  const redisUrl = inject("redisUrl");
  const env: Record<string, string> = {
    REDIS_URL: redisUrl,
    CASCADE_REDIS_PREFIX: prefix,
    CASCADE_CONFIG: dir.write("cascade.json", options.config(fake.url)),
    FAKE_KEY: FAKE_KEY_VALUE,
    LOG_LEVEL: options.logLevel ?? "info",
    WORKER_CONCURRENCY: String(options.concurrency ?? 10),
    WORKER_LOCK_DURATION_MS: "5000",
    ...options.env,
  };
  const redis = testRedis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: false });
  const workers: CascadeProcess[] = [];
  const spawnWorker = async (name: string, concurrency?: number) => {
    const worker = await startWorker({
      name,
      env: concurrency === undefined ? env : { ...env, WORKER_CONCURRENCY: String(concurrency) },
    });
    workers.push(worker);
    return worker;
  };
  const count = options.workers ?? 3;
  const [api] = await Promise.all([
    startApi({ env, name: `${options.label}-api` }),
    ...Array.from({ length: count }, (_, index) => spawnWorker(`${options.label}-worker-${index + 1}`)),
  ]);
  const tag = `{${prefix}}`;

  const request = async (method: string, path: string, body?: unknown, apiKey?: string) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    const response = await fetch(`${api.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(70_000),
    });
    const text = await response.text();
    let parsed: Json = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: response.status, body: parsed, headers: response.headers };
  };

  const waitJob = async (id: string, totalMs = 60_000, apiKey?: string) => {
    const deadline = Date.now() + totalMs;
    let last: HttpResult | undefined;
    while (Date.now() < deadline) {
      const waitS = Math.max(1, Math.min(20, Math.floor((deadline - Date.now()) / 1000)));
      last = await request("GET", `/v1/jobs/${id}?wait=${waitS}`, undefined, apiKey);
      if (last.status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${last.status}`);
      if (TERMINAL.has(last.body.status)) return last.body;
    }
    throw new Error(`job ${id} not terminal after ${totalMs} ms: ${JSON.stringify(last?.body)}`);
  };

  return {
    fake,
    api,
    workers,
    env,
    prefix,
    redis,
    tag,
    dir,
    startWorker: spawnWorker,
    request,
    async submit(body, apiKey) {
      const response = await request("POST", "/v1/jobs", body, apiKey);
      if (response.status !== 202) {
        throw new Error(`POST /v1/jobs answered ${response.status}: ${JSON.stringify(response.body)}`);
      }
      return response.body.id as string;
    },
    async submitMany(count, body) {
      const ids: string[] = [];
      for (let start = 0; start < count; start += 50) {
        const batch = Array.from({ length: Math.min(50, count - start) }, (_, index) => body(start + index));
        ids.push(...(await Promise.all(batch.map((each) => this.submit(each)))));
      }
      return ids;
    },
    async job(id, apiKey) {
      const response = await request("GET", `/v1/jobs/${id}`, undefined, apiKey);
      if (response.status !== 200) throw new Error(`GET /v1/jobs/${id} answered ${response.status}`);
      return response.body;
    },
    waitJob,
    async waitAll(ids, totalMs = 60_000, apiKey, parallel = 40) {
      const results: Json[] = new Array(ids.length);
      let next = 0;
      const lane = async () => {
        while (next < ids.length) {
          const index = next++;
          results[index] = await waitJob(ids[index] as string, totalMs, apiKey);
        }
      };
      await Promise.all(Array.from({ length: Math.min(parallel, ids.length) }, lane));
      return results;
    },
    async breaker(breakerId) {
      const hash = await redis.hgetall(`${tag}:breaker:${breakerId}`);
      return {
        state: hash.state ?? "closed",
        reopens: Number(hash.reopens ?? 0),
        openUntil: Number(hash.open_until ?? 0),
        probeUntil: Number(hash.probe_until ?? 0),
        log: (JSON.parse(hash.log ?? "[]") as BreakerState["log"]).reverse(),
      };
    },
    async close() {
      await Promise.all([api, ...workers].map((proc) => proc.stop(3_000)));
      await fake.close();
      redis.disconnect();
      dir.cleanup();
    },
  };
}

/** Calls `submit` every `intervalMs` until `stop()` is true; resolves with what the calls returned. */
export async function stream<T>(
  intervalMs: number,
  submit: (index: number) => Promise<T>,
  stop: (index: number) => boolean,
): Promise<T[]> {
  const pending: Array<Promise<T>> = [];
  const started = Date.now();
  for (let index = 0; !stop(index); index += 1) {
    pending.push(submit(index));
    // Paced against the clock, so a slow POST does not stretch the stream.
    const wake = started + (index + 1) * intervalMs;
    await sleep(Math.max(0, wake - Date.now()));
  }
  return Promise.all(pending);
}

/** The largest number of `calls` whose `at` falls in any window [t, t + windowMs). */
export function maxInWindow(
  calls: Array<Pick<FakeCall, "at">>,
  windowMs: number,
  weight: (call: number) => number = () => 1,
): { max: number; from: number } {
  const times = calls.map((call) => call.at);
  const order = times.map((_, index) => index).sort((a, b) => (times[a] ?? 0) - (times[b] ?? 0));
  let best = { max: 0, from: 0 };
  let sum = 0;
  let tail = 0;
  for (let head = 0; head < order.length; head += 1) {
    const headIndex = order[head] as number;
    sum += weight(headIndex);
    while ((times[order[tail] as number] ?? 0) <= (times[headIndex] ?? 0) - windowMs) {
      sum -= weight(order[tail] as number);
      tail += 1;
    }
    if (sum > best.max) best = { max: sum, from: times[order[tail] as number] ?? 0 };
  }
  return best;
}

export function chat(content: string, extra: Record<string, unknown> = {}) {
  return { messages: [{ role: "user", content }], max_tokens: 50, ...extra };
}

/** Logs a figure line both to the console and into the test's output. */
export function figure(label: string, values: Record<string, unknown>): void {
  console.log(`[resilience] ${label}: ${JSON.stringify(values)}`);
}

/**
 * One OpenAI-compatible model `a` (upstream `up-a`) at $1000 per million tokens ($0.001 a token,
 * so charges are easy to count), a 60 s hop, and tenant `acme` (keys in ACME_KEYS) with a $50
 * daily budget: the stack of the charging tests.
 */
export function pricedModelConfig(url: string) {
  return {
    providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
    models: { a: { provider: "p", name: "up-a", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
    routes: { default: { chain: [{ model: "a", timeout_ms: 60_000 }] } },
    tenants: { acme: { api_keys_env: "ACME_KEYS", budget: { daily_usd: 50 } } },
  };
}
