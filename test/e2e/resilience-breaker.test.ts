/**
 * Proof: circuit breakers are shared by every worker (contract, Semantics → Breakers). Three real
 * worker processes on one Redis, a fake OpenAI upstream counting calls with timestamps:
 *
 * - provider failing 100%: A's upstream gets min_requests calls (plus whatever was already in
 *   flight when the breaker opened), then nothing while open, then exactly one probe per half-open
 *   window, the open time doubling on each re-open; every job still succeeds through B, the jobs
 *   that skipped A say `circuit_open`; once A is healthy the next probe closes the breaker and A
 *   serves traffic again;
 * - the doubling is capped at 16 × open_ms;
 * - 400s caused by the caller's request never open the breaker.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAIErrors } from "../support/fake-openai.js";
import type { Json } from "./helpers.js";
import {
  type BreakerState,
  chat,
  figure,
  type ResilienceStack,
  sleep,
  startResilienceStack,
  stream,
} from "./resilience-helpers.js";

const CONCURRENCY = 20;
const WORKERS = 3;
const BREAKER_A = { min_requests: 5, failure_threshold: 0.5, window_ms: 10_000, open_ms: 2_000 };
const BREAKER_C = { min_requests: 2, failure_threshold: 0.5, window_ms: 10_000, open_ms: 150 };
const BREAKER_D = { min_requests: 5, failure_threshold: 0.5, window_ms: 10_000, open_ms: 2_000 };

const config = (url: string) => {
  const provider = (breaker?: object) => ({
    type: "openai",
    base_url: url,
    api_key_env: "FAKE_KEY",
    ...(breaker ? { breaker } : {}),
  });
  return {
    providers: {
      pa: provider(BREAKER_A),
      pb: provider(),
      pc: provider(BREAKER_C),
      pd: provider(BREAKER_D),
    },
    models: {
      a: { provider: "pa", name: "up-a" },
      b: { provider: "pb", name: "up-b" },
      c: { provider: "pc", name: "up-c" },
      d: { provider: "pd", name: "up-d", capabilities: ["json"] },
    },
    routes: {
      default: { chain: [{ model: "a", timeout_ms: 2000 }, { model: "b" }] },
      capped: { chain: [{ model: "c", timeout_ms: 2000 }, { model: "b" }] },
      strict: { chain: [{ model: "d", timeout_ms: 2000 }, { model: "b" }] },
    },
  };
};

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({ label: "rbrk", config, workers: WORKERS, concurrency: CONCURRENCY });
});

afterAll(async () => {
  await stack?.close();
});

/** Polls the breaker hash in the background while a stream runs. */
function watchBreaker(id: string) {
  let latest: BreakerState | undefined;
  let running = true;
  const loop = (async () => {
    while (running) {
      latest = await stack.breaker(id);
      await sleep(100);
    }
  })();
  return {
    get: () => latest,
    async stop() {
      running = false;
      await loop;
    },
  };
}

const failedProbes = (state: BreakerState | undefined) =>
  (state?.log ?? []).filter((entry) => entry.to === "open" && entry.why === "probe failed").length;

/** Expected open time after the n-th opening (0 = first opening): open_ms doubled per re-open, ≤ 16×. */
const openFor = (openMs: number, reopens: number) => Math.min(openMs * 2 ** reopens, 16 * openMs);

describe("circuit breaker shared by three worker processes", () => {
  it("opens on a provider failing 100%, lets one probe per doubling half-open window, closes when healthy", async () => {
    const { fake } = stack;
    // 500 after 100 ms, so several calls are in flight at once.
    fake.setDefault("up-a", {
      kind: "status",
      status: 500,
      body: openAIErrors.serverError("req_x"),
      delayMs: 100,
    });
    fake.setDefault("up-b", { kind: "ok", content: "from b" });

    const watcher = watchBreaker("provider:pa");
    let healedAt = 0;
    let closedAtIndex = -1;
    const started = Date.now();
    const ids = await stream(
      133,
      (index) => stack.submit({ request: chat(`breaker job ${index}`), metadata: { index: String(index) } }),
      (index) => {
        const state = watcher.get();
        if (index > 260) return true; // safety: ~35 s
        if (!healedAt) {
          // 60 jobs over ~8 s, and at least two failed probes, before A gets healthy.
          if (index >= 60 && failedProbes(state) >= 2) {
            fake.setDefault("up-a", { kind: "ok", content: "from a" });
            healedAt = Date.now();
          }
          return false;
        }
        if (closedAtIndex < 0 && state?.state === "closed") closedAtIndex = index;
        // Ten more jobs after the breaker closed: A serves them.
        return closedAtIndex >= 0 && index >= closedAtIndex + 10;
      },
    );
    await watcher.stop();
    const jobs = await stack.waitAll(ids, 60_000);
    const breaker = await stack.breaker("provider:pa");

    // Every job succeeded: through B while A was failing or open, through A once it closed.
    const statuses = jobs.map((job: Json) => job.status);
    expect(statuses.filter((status) => status !== "succeeded")).toEqual([]);

    // The breaker's history: opened on failures, re-opened on failed probes, closed on success.
    const transitions = breaker.log.map((entry) => `${entry.from}>${entry.to}`);
    expect(breaker.state).toBe("closed");
    expect(transitions[0]).toBe("closed>open");
    expect(transitions.at(-1)).toBe("half_open>closed");
    const firstOpen = breaker.log[0] as BreakerState["log"][number];
    expect(firstOpen.why).toMatch(/^\d+ of \d+ calls failed$/);

    const callsA = fake.callsFor("up-a").sort((x, y) => x.at - y.at);
    const healedCallIndex = callsA.findIndex((call) => call.at >= healedAt);
    expect(healedCallIndex).toBeGreaterThan(0);
    // Calls before the first probe could come: the opening burst (min_requests + in flight).
    const burst = callsA.filter((call) => call.at < firstOpen.at + BREAKER_A.open_ms);
    const inFlightAfterOpen = burst.filter((call) => call.at > firstOpen.at).length;
    // The probes: every call from the first one after open_ms up to the successful one.
    const probes = callsA.slice(burst.length, healedCallIndex + 1);
    const gaps: number[] = [];
    let previous = firstOpen.at;
    for (const probe of probes) {
      gaps.push(probe.at - previous);
      previous = probe.at;
    }
    const expected = probes.map((_, index) => openFor(BREAKER_A.open_ms, index));
    const afterClose = callsA.slice(healedCallIndex + 1);
    figure("breaker 100% failing", {
      jobs: jobs.length,
      elapsed_ms: Date.now() - started,
      calls_to_a_before_first_probe: burst.length,
      min_requests: BREAKER_A.min_requests,
      of_which_arrived_after_open: inFlightAfterOpen,
      worker_slots: WORKERS * CONCURRENCY,
      probes: probes.length,
      probe_gaps_ms: gaps,
      expected_gaps_ms: expected,
      calls_to_a_after_close: afterClose.length,
      transitions,
    });

    expect(burst.length).toBeGreaterThanOrEqual(BREAKER_A.min_requests);
    expect(burst.length).toBeLessThanOrEqual(BREAKER_A.min_requests + WORKERS * CONCURRENCY);
    // At least two failed probes and the healthy one; each exactly one call, spaced by the open time.
    expect(probes.length).toBeGreaterThanOrEqual(3);
    gaps.forEach((gap, index) => {
      const want = expected[index] as number;
      expect(gap, `gap before probe ${index + 1}`).toBeGreaterThanOrEqual(want);
      expect(gap, `gap before probe ${index + 1}`).toBeLessThanOrEqual(want + 1_500);
    });
    // One half-open window per probe: open → half_open → (open | closed), never two probes in one.
    const afterFirst = transitions.slice(1);
    for (let index = 0; index < afterFirst.length; index += 2) {
      expect(afterFirst[index]).toBe("open>half_open");
      expect(afterFirst[index + 1]).toBe(
        index + 2 < afterFirst.length ? "half_open>open" : "half_open>closed",
      );
    }
    expect(afterFirst.length).toBe(probes.length * 2);

    // Jobs' attempts: one per call to A; skipped ones say circuit_open and went to B.
    const attemptsOnA = jobs.map((job: Json) => job.attempts[0]);
    const calledA = attemptsOnA.filter((attempt: Json) => attempt.outcome !== "skipped");
    const skippedA = attemptsOnA.filter((attempt: Json) => attempt.outcome === "skipped");
    expect(calledA.length).toBe(callsA.length);
    for (const attempt of skippedA) {
      expect(attempt).toMatchObject({
        model: "a",
        provider: "pa",
        outcome: "skipped",
        reason: "circuit_open",
      });
      expect(attempt.http_status).toBeUndefined();
    }
    expect(skippedA.length).toBeGreaterThan(jobs.length / 2);
    for (const job of jobs) {
      if (job.attempts[0].outcome === "success") {
        expect(job).toMatchObject({ model: "a", provider: "pa" });
        expect(job.attempts).toHaveLength(1);
      } else {
        expect(job).toMatchObject({ model: "b", provider: "pb" });
        expect(job.attempts).toHaveLength(2);
        expect(["server_error", "circuit_open"]).toContain(job.attempts[0].reason);
      }
    }
    expect(fake.callsFor("up-b").length).toBe(jobs.length - (probes.length > 0 ? 1 : 0) - afterClose.length);
    // A serves traffic again: the last ten jobs went to A, each with one call.
    expect(afterClose.length).toBeGreaterThanOrEqual(10);
    for (const job of jobs.slice(-10)) expect(job).toMatchObject({ status: "succeeded", model: "a" });
  }, 90_000);

  it("caps the doubling open time at 16 × open_ms", async () => {
    const { fake } = stack;
    fake.setDefault("up-c", { kind: "server_error" });
    fake.setDefault("up-b", { kind: "ok" });
    const watcher = watchBreaker("provider:pc");
    // open_ms 150: opens 150, 300, 600, 1200, 2400 (= 16×), 2400, … — 7 probes ≈ 10 s.
    const wantedProbes = 7;
    const ids = await stream(
      50,
      (index) => stack.submit({ route: "capped", request: chat(`cap job ${index}`) }),
      (index) => index > 400 || failedProbes(watcher.get()) >= wantedProbes,
    );
    await watcher.stop();
    const jobs = await stack.waitAll(ids, 60_000);
    expect(jobs.filter((job: Json) => job.status !== "succeeded")).toEqual([]);

    const breaker = await stack.breaker("provider:pc");
    const firstOpen = breaker.log.find((entry) => entry.to === "open") as BreakerState["log"][number];
    const callsC = fake.callsFor("up-c").sort((x, y) => x.at - y.at);
    const probes = callsC.filter((call) => call.at >= firstOpen.at + BREAKER_C.open_ms);
    const gaps = probes.map(
      (probe, index) => probe.at - (index === 0 ? firstOpen.at : (probes[index - 1]?.at ?? 0)),
    );
    const expected = gaps.map((_, index) => openFor(BREAKER_C.open_ms, index));
    figure("breaker doubling cap", {
      open_ms: BREAKER_C.open_ms,
      probes: probes.length,
      probe_gaps_ms: gaps,
      expected_gaps_ms: expected,
      reopens: breaker.reopens,
    });
    expect(probes.length).toBeGreaterThanOrEqual(wantedProbes);
    gaps.forEach((gap, index) => {
      const want = expected[index] as number;
      expect(gap, `gap before probe ${index + 1}`).toBeGreaterThanOrEqual(want);
      expect(gap, `gap before probe ${index + 1}`).toBeLessThanOrEqual(want + 1_000);
    });
    // The capped gaps (from the 5th re-open on) stay at 16 × open_ms, not 32 × or more.
    expect(gaps.slice(5).every((gap) => gap < 32 * BREAKER_C.open_ms)).toBe(true);
  }, 60_000);

  it("never opens on 400s caused by the caller's request: every call reaches the provider", async () => {
    const { fake } = stack;
    // OpenAI's real answer to response_format json_object without "json" in the messages.
    fake.setDefault("up-d", {
      kind: "status",
      status: 400,
      body: {
        error: {
          message:
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
          type: "invalid_request_error",
          param: "messages",
          code: null,
        },
      },
    });
    const before = fake.callsFor("up-b").length;
    const total = 40;
    const ids: string[] = [];
    // Two waves: a burst of 25 at once, then 15 more after the first ones failed.
    const request = (index: number) => ({
      route: "strict",
      request: chat(`Give me the list ${index}`, { response_format: { type: "json_object" } }),
    });
    ids.push(...(await Promise.all(Array.from({ length: 25 }, (_, index) => stack.submit(request(index))))));
    await stack.waitAll(ids, 30_000);
    ids.push(
      ...(await stream(
        50,
        (index) => stack.submit(request(25 + index)),
        (index) => index >= total - 25,
      )),
    );
    const jobs = await stack.waitAll(ids, 30_000);
    const breaker = await stack.breaker("provider:pd");
    figure("breaker vs 400 bad_request", {
      jobs: jobs.length,
      calls_to_d: fake.callsFor("up-d").length,
      calls_to_b: fake.callsFor("up-b").length - before,
      breaker_state: breaker.state,
      transitions: breaker.log.length,
    });
    for (const job of jobs) {
      expect(job).toMatchObject({ status: "failed", error: { type: "bad_request" } });
      expect(job.attempts).toHaveLength(1);
      expect(job.attempts[0]).toMatchObject({
        model: "d",
        outcome: "error",
        reason: "bad_request",
        http_status: 400,
      });
    }
    expect(fake.callsFor("up-d")).toHaveLength(total);
    expect(fake.callsFor("up-b").length - before).toBe(0);
    expect(breaker.state).toBe("closed");
    expect(breaker.log).toEqual([]);
  }, 60_000);
});
