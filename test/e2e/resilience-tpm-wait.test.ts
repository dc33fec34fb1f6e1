/**
 * A job waiting for a tpm bucket holds no worker slot past its first second (contract, Semantics →
 * Buckets: "the job waits in the delayed set (no worker slot held) if its deadline allows, else the
 * hop is skipped with rate_limited"). Found by a black-box probe: tpm denials told a wait capped
 * at 200 ms, so every waiting job slept in its worker, holding a slot for its whole wait (another
 * route's job started 13–17 s late behind two of them), and a deadline shorter than the bucket's
 * refill was waited out whole, then reported as "no bucket capacity for 200 ms".
 *
 * One worker process with two slots; a provider with `tpm: 3000` (capacity 50 tokens) whose call
 * uses its whole reservation, so the bucket owes ~1,000 tokens (~20 s of refill) after it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const config = (url: string) => ({
  providers: {
    tpmp: { type: "openai", base_url: url, api_key_env: "FAKE_KEY", limits: { tpm: 3000 } },
    free: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" },
  },
  models: {
    "m-tpm": { provider: "tpmp", name: "up-tpm" },
    "m-free": { provider: "free", name: "up-free" },
  },
  routes: { default: { chain: [{ model: "m-tpm" }] } },
});

const request = { messages: [{ role: "user", content: "Hi" }], max_tokens: 1000 };

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({ label: "tpmwait", config, workers: 1, concurrency: 2 });
  stack.fake.setDefault("up-tpm", { kind: "ok", usage: { prompt_tokens: 11, completion_tokens: 1000 } });
  stack.fake.setDefault("up-free", { kind: "ok" });
});

afterAll(async () => {
  await stack?.close();
});

/** Submits a job that drains the tpm bucket and waits for it to end. */
async function drainBucket(): Promise<void> {
  const drained = await stack.waitJob(await stack.submit({ request, models: ["m-tpm"] }), 60_000);
  expect(drained.status).toBe("succeeded");
}

describe("waiting for a tpm bucket", () => {
  it("holds no worker slot: another route's job starts while two jobs wait for the bucket", async () => {
    await drainBucket();
    const waiting = await Promise.all(
      [1, 2].map(() => stack.submit({ request, models: ["m-tpm"], deadline_ms: 60_000 })),
    );
    // Both claimed (the worker's two slots) and told the bucket is ~20 s short.
    await sleep(500);
    const submittedAt = Date.now();
    const other = await stack.waitJob(await stack.submit({ request, models: ["m-free"] }), 20_000);
    const tookMs = Date.now() - submittedAt;
    expect(other.status).toBe("succeeded");
    // Held slots made this 13–17 s; a wait past the first second goes to the delayed set.
    expect(tookMs).toBeLessThan(4_000);
    // The two still wait (no call yet beyond the one that drained the bucket), nothing skipped.
    expect(stack.fake.callsFor("up-tpm")).toHaveLength(1);
    for (const id of waiting) {
      const job = await stack.job(id);
      expect(["queued", "running"]).toContain(job.status);
      expect(job.attempts).toEqual([]);
      expect([200, 202]).toContain((await stack.request("DELETE", `/v1/jobs/${id}`)).status);
    }
  }, 90_000);

  it("skips the hop once the bucket's refill is past the job's deadline, naming that wait", async () => {
    // The bucket still owes the earlier drain: this one waits for it, then drains it again.
    await drainBucket();
    const submittedAt = Date.now();
    const job = await stack.waitJob(
      await stack.submit({ request, models: ["m-tpm", "m-free"], deadline_ms: 5_000 }),
      20_000,
    );
    const tookMs = Date.now() - submittedAt;
    expect(job.status).toBe("succeeded");
    expect(job.model).toBe("m-free");
    const skip = job.attempts[0];
    expect(skip).toMatchObject({ model: "m-tpm", outcome: "skipped", reason: "rate_limited" });
    // The bucket owes ~1,000 tokens at 50 a second: the wait named is the refill's (~20 s), not 200 ms.
    const named = Number(/for (\d+) ms/.exec(skip.message)?.[1]);
    expect(named).toBeGreaterThan(5_000);
    // Skipped after a second of looking, not after the whole deadline.
    expect(tookMs).toBeLessThan(4_000);
  }, 120_000);

  it("looks again less and less often while a backlog waits for the bucket", async () => {
    await drainBucket();
    const worker = await stack.startWorker("tpmwait-wide", 20);
    const ids = await stack.submitMany(40, () => ({ request, models: ["m-tpm"], deadline_ms: 120_000 }));
    await sleep(12_000);
    // BullMQ counts every claim of a job (`ats`). Each wait in the delayed set looks again twice
    // as late (2, 4, 8 s): about 3 claims each in 12 s, where a fixed 2 s made about 5.
    const pipeline = stack.redis.pipeline();
    for (const id of ids) pipeline.hget(`${stack.tag}:completions:${id}`, "ats");
    const claims = ((await pipeline.exec()) ?? []).map(([, value]) => Number(value ?? 0));
    const mean = claims.reduce((sum, value) => sum + value, 0) / claims.length;
    console.log(
      `[resilience] tpm backlog: ${JSON.stringify({ jobs: ids.length, claims_mean: mean, calls: stack.fake.callsFor("up-tpm").length })}`,
    );
    for (const id of ids) await stack.request("DELETE", `/v1/jobs/${id}`);
    await worker.stop();
    expect(mean).toBeLessThan(4.2);
  }, 120_000);
});
