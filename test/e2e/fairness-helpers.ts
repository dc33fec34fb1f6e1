/**
 * Shared pieces of the fair-share proofs (test/e2e/fairness-*.test.ts): a config with tenants over
 * the fake OpenAI upstream, bulk submission per tenant, the queue drained, and each job's times
 * read back from its BullMQ hash (created, first start, end) for waits and shares.
 */
import type { RedisClient } from "@cascade/shared";
import type { ResilienceStack } from "./resilience-helpers.js";
import { sleep } from "./resilience-helpers.js";

/** Tenant ids and their API keys (`<tenant>-key`, in `<TENANT>_KEYS`). */
export function tenantKey(tenant: string): string {
  return `${tenant}-key-7c1e`;
}

export function tenantEnv(tenants: string[]): Record<string, string> {
  return Object.fromEntries(tenants.map((tenant) => [`${tenant.toUpperCase()}_KEYS`, tenantKey(tenant)]));
}

/** One provider `p` on the fake (model `up-m`), route `default`, and the given tenants. */
export function fairnessConfig(
  tenants: Record<string, { weight?: number; max_concurrency?: number }>,
): (fakeUrl: string) => unknown {
  return (url) => ({
    providers: { p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" } },
    models: { m: { provider: "p", name: "up-m" } },
    routes: { default: { deadline_ms: 600_000, chain: [{ model: "m", timeout_ms: 20_000 }] } },
    tenants: Object.fromEntries(
      Object.entries(tenants).map(([id, settings]) => [
        id,
        { api_keys_env: `${id.toUpperCase()}_KEYS`, ...settings },
      ]),
    ),
  });
}

/** POSTs `count` jobs of `tenant` (`lanes` at a time); the message is `<tenant> <index>`. Returns ids in order. */
export async function submitMany(
  stack: ResilienceStack,
  tenant: string,
  count: number,
  options: { priority?: number; lanes?: number } = {},
): Promise<string[]> {
  const ids: string[] = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const index = next++;
      ids[index] = await stack.submit(
        {
          request: { messages: [{ role: "user", content: `${tenant} ${index}` }], max_tokens: 5 },
          ...(options.priority ? { priority: options.priority } : {}),
        },
        tenantKey(tenant),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.lanes ?? 48, count) }, lane));
  return ids;
}

/** Waits until the completions queue holds nothing waiting, prioritized, delayed or running. */
export async function waitDrained(stack: ResilienceStack, timeoutMs: number): Promise<void> {
  const base = `${stack.tag}:completions`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [wait, prioritized, delayed, active] = await Promise.all([
      stack.redis.llen(`${base}:wait`),
      stack.redis.zcard(`${base}:prioritized`),
      stack.redis.zcard(`${base}:delayed`),
      stack.redis.llen(`${base}:active`),
    ]);
    if (wait + prioritized + delayed + active === 0) return;
    await sleep(100);
  }
  throw new Error(`the completions queue did not drain in ${timeoutMs} ms`);
}

/** A job's times (Unix ms) from its BullMQ hash: created, last activation (its run), finished. */
export interface JobTimes {
  id: string;
  tenant: string;
  created: number;
  started: number;
  finished: number;
  state: "completed" | "other";
}

export async function jobTimes(
  redis: RedisClient,
  tag: string,
  ids: string[],
  tenant: string,
): Promise<JobTimes[]> {
  const times: JobTimes[] = [];
  for (let start = 0; start < ids.length; start += 1000) {
    const pipeline = redis.pipeline();
    for (const id of ids.slice(start, start + 1000))
      pipeline.hmget(`${tag}:completions:${id}`, "timestamp", "processedOn", "finishedOn", "returnvalue");
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([, reply], index) => {
      const [created, started, finished, returned] = reply as Array<string | null>;
      times.push({
        id: ids[start + index] as string,
        tenant,
        created: Number(created),
        started: Number(started),
        finished: Number(finished),
        state: returned?.includes('"succeeded"') ? "completed" : "other",
      });
    });
  }
  return times;
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] ?? 0;
}

/** Starts per second within [from, to). */
export function rate(jobs: JobTimes[], from: number, to: number): number {
  if (to <= from) return 0;
  return jobs.filter((job) => job.started >= from && job.started < to).length / ((to - from) / 1000);
}

/**
 * The fake upstream's calls for `tenant`'s jobs (their message starts `<tenant> `, as submitMany
 * writes it), each as the interval it was open: [arrival, arrival + latency).
 */
export function callIntervals(
  stack: ResilienceStack,
  tenant: string,
  latencyMs: number,
): Array<[number, number]> {
  return stack.fake
    .callsFor("up-m")
    .filter((call) => String(call.body?.messages?.at(-1)?.content ?? "").startsWith(`${tenant} `))
    .map((call): [number, number] => [call.at, call.at + latencyMs]);
}

/** The most intervals [start, end) open at once. */
export function maxOverlap(intervals: Array<[number, number]>): number {
  const edges: Array<[number, number]> = [];
  for (const [start, end] of intervals) edges.push([start, 1], [end, -1]);
  // At equal times, ends go first: a slot freed and taken in the same millisecond is not two.
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let most = 0;
  for (const [, change] of edges) {
    open += change;
    most = Math.max(most, open);
  }
  return most;
}

/** Logs a figure line both to the console and into the test's output. */
export function figure(label: string, values: Record<string, unknown>): void {
  console.log(`[fairness] ${label}: ${JSON.stringify(values)}`);
}
