/**
 * Proof: a tpm bucket reserves prompt estimate + max_tokens before each call and settles to the
 * real usage after it (contract, Semantics → Buckets). Three worker processes, provider limits
 * { tpm }, requests with a large max_tokens whose real usage (scripted at the fake) is small:
 * the real tokens used in any 60 s window stay within 1.05 × tpm, and the throughput is far above
 * what the reservations alone would allow — the unused reservation comes back.
 *
 * Two regimes, since the bucket's capacity is one second of tpm (resilience/breaker-config.ts):
 * a reservation below the capacity, and one far above it, where each admitted call runs the bucket
 * into debt until its settle gives the unused part back. In the second, a backlog of jobs that
 * looked at the bucket while a call was in flight must not sleep for the whole debt: the settle,
 * milliseconds later, has returned ~95% of it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./helpers.js";
import {
  figure,
  maxInWindow,
  type ResilienceStack,
  sleep,
  startResilienceStack,
} from "./resilience-helpers.js";

const RUN_MS = 30_000;
const QUEUED = 40;
const PROMPT = "Reply with one short line, please."; // 34 characters: ceil(34 / 4) + 10 = 19 tokens

interface Scenario {
  name: string;
  tpm: number;
  maxTokens: number;
  usage: { prompt_tokens: number; completion_tokens: number };
  /**
   * "feed": keeps QUEUED jobs waiting, topping up as calls are made (a steady stream);
   * "backlog": queues every job at the start (a batch), none after.
   */
  arrival: "feed" | "backlog";
}

const SCENARIOS: Scenario[] = [
  // Reservation (19 + 450) below the bucket's capacity (one second of tpm, 500 tokens).
  {
    name: "reservation below capacity",
    tpm: 30_000,
    maxTokens: 450,
    usage: { prompt_tokens: 20, completion_tokens: 20 },
    arrival: "feed",
  },
  // Reservation (19 + 4000) far above the capacity (100 tokens): each call runs the bucket into debt.
  {
    name: "reservation above capacity",
    tpm: 6_000,
    maxTokens: 4_000,
    usage: { prompt_tokens: 100, completion_tokens: 100 },
    arrival: "backlog",
  },
];

const config = (url: string) => ({
  providers: Object.fromEntries(
    SCENARIOS.map((scenario, index) => [
      `p${index}`,
      { type: "openai", base_url: url, api_key_env: "FAKE_KEY", limits: { tpm: scenario.tpm } },
    ]),
  ),
  models: Object.fromEntries(
    SCENARIOS.map((_, index) => [`m${index}`, { provider: `p${index}`, name: `up-${index}` }]),
  ),
  routes: Object.fromEntries(
    SCENARIOS.map((_, index) => [
      `r${index}`,
      { deadline_ms: 600_000, chain: [{ model: `m${index}`, timeout_ms: 10_000 }] },
    ]),
  ),
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({ label: "rtpm", config, workers: 3, concurrency: 20 });
});

afterAll(async () => {
  await stack?.close();
});

describe("tpm bucket settles to real usage across three worker processes", () => {
  SCENARIOS.forEach((scenario, index) => {
    it(
      `${scenario.name}: ≤ 1.05 × tpm per 60 s of real usage, throughput far above reservation-bound`,
      async () => {
        const { fake } = stack;
        const upstream = `up-${index}`;
        fake.setDefault(upstream, { kind: "ok", delayMs: 30, usage: scenario.usage });
        const realPerCall = scenario.usage.prompt_tokens + scenario.usage.completion_tokens;
        const reservation = Math.ceil(PROMPT.length / 4) + 10 + scenario.maxTokens;
        const capacity = Math.max(1, Math.ceil(scenario.tpm / 60));
        // Enough jobs waiting at every moment that the bucket is saturated throughout.
        const realBound = (scenario.tpm * RUN_MS) / 60_000 / realPerCall;
        const backlog = Math.ceil(realBound * 1.3) + 5;
        const ids: string[] = [];
        const submit = () =>
          stack.submit({
            route: `r${index}`,
            request: { messages: [{ role: "user", content: PROMPT }], max_tokens: scenario.maxTokens },
          });
        const submittedAt = Date.now();
        if (scenario.arrival === "backlog")
          ids.push(...(await Promise.all(Array.from({ length: backlog }, submit))));
        while (Date.now() < submittedAt + RUN_MS) {
          const missing = QUEUED - (ids.length - fake.callsFor(upstream).length);
          if (scenario.arrival === "feed" && missing > 0)
            ids.push(...(await Promise.all(Array.from({ length: missing }, submit))));
          await sleep(100);
        }

        const calls = fake.callsFor(upstream).sort((x, y) => x.at - y.at);
        const inRun = calls.filter((call) => call.at < submittedAt + RUN_MS);
        const tokensInRun = inRun.length * realPerCall;
        const window = maxInWindow(inRun, 60_000, () => realPerCall);
        // What reservations alone would let through in the run: the initial bucket plus the refill.
        const reservationBound = Math.floor((capacity + (scenario.tpm * RUN_MS) / 60_000) / reservation) + 1;
        const sample = await Promise.all(ids.slice(0, 20).map((id) => stack.job(id)));
        const runBound = (1.05 * scenario.tpm * RUN_MS) / 60_000 + capacity;
        const stats = await stack.redis.hgetall(`${stack.tag}:stats:provider:p${index}`);
        const skips = Object.entries(stats)
          .filter(([field]) => field.endsWith(":skips"))
          .reduce((total, [, value]) => total + Number(value), 0);
        figure(`tpm ${scenario.name}`, {
          tpm: scenario.tpm,
          bucket_capacity: capacity,
          reservation_per_call: reservation,
          real_tokens_per_call: realPerCall,
          run_ms: RUN_MS,
          arrival: scenario.arrival,
          jobs_submitted: ids.length,
          calls_in_run: inRun.length,
          real_tokens_in_run: tokensInRun,
          tokens_per_minute: Math.round((tokensInRun * 60_000) / RUN_MS),
          max_real_tokens_in_any_60s_window: window.max,
          limit_for_the_run: runBound,
          limit_1_05_tpm: 1.05 * scenario.tpm,
          calls_allowed_by_reservations_alone: reservationBound,
          calls_allowed_by_real_usage: Math.floor(realBound),
          speedup_over_reservation_bound: Number((inRun.length / reservationBound).toFixed(1)),
          admissions_denied_while_waiting: skips,
          first_call_offsets_ms: inRun.slice(0, 8).map((call) => call.at - submittedAt),
        });

        // Nothing failed or was skipped while waiting (the deadline is long).
        for (const job of sample) {
          expect(job.status).not.toBe("failed");
          expect(job.attempts.filter((attempt: Json) => attempt.outcome !== "success")).toEqual([]);
        }
        // The limit holds on real usage…
        expect(window.max).toBeLessThanOrEqual(1.05 * scenario.tpm);
        expect(tokensInRun).toBeLessThanOrEqual(runBound);
        // …and settlement returns the unused reservation: far more calls than reservations allow,
        // and at least half of what the real usage allows.
        expect(inRun.length).toBeGreaterThanOrEqual(5 * reservationBound);
        expect(inRun.length).toBeGreaterThanOrEqual(0.5 * realBound);
      },
      RUN_MS + 60_000,
    );
  });
});
