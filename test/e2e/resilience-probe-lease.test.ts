/**
 * Proof: the half-open probe is a lease (contract, Semantics → Breakers: "exactly one probe across
 * all workers"). The worker holding it is SIGKILLed while its probe call hangs at the fake; no
 * other worker calls the provider until the lease (hop timeout + 5 s) runs out, then exactly one
 * other worker probes, and its success closes the breaker.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./helpers.js";
import {
  chat,
  figure,
  type ResilienceStack,
  sleep,
  startResilienceStack,
  stream,
} from "./resilience-helpers.js";

const HOP_TIMEOUT_MS = 6_000;
const LEASE_MS = HOP_TIMEOUT_MS + 5_000;
const BREAKER = { min_requests: 2, failure_threshold: 0.5, window_ms: 10_000, open_ms: 1_000 };

const config = (url: string) => ({
  providers: {
    pa: { type: "openai", base_url: url, api_key_env: "FAKE_KEY", breaker: BREAKER },
    pb: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" },
  },
  models: { a: { provider: "pa", name: "up-a" }, b: { provider: "pb", name: "up-b" } },
  routes: { default: { chain: [{ model: "a", timeout_ms: HOP_TIMEOUT_MS }, { model: "b" }] } },
});

let stack: ResilienceStack;

beforeAll(async () => {
  // One worker at first: it surely holds the probe; the others start once the probe hangs.
  stack = await startResilienceStack({ label: "rlease", config, workers: 1, concurrency: 10 });
});

afterAll(async () => {
  await stack?.close();
});

describe("half-open probe lease across worker processes", () => {
  it("a probe held by a SIGKILLed worker is taken over by another worker after the lease", async () => {
    const { fake } = stack;
    const [first] = stack.workers;
    fake.setDefault("up-a", { kind: "server_error" });
    fake.setDefault("up-b", { kind: "ok" });

    // Open the breaker: two failures.
    for (let index = 0; index < 3; index += 1)
      await stack.waitJob(await stack.submit({ request: chat(`open ${index}`) }));
    const opened = await stack.breaker("provider:pa");
    expect(opened.state).toBe("open");
    await sleep(Math.max(0, opened.openUntil - Date.now()) + 100);

    // The probe: it hangs at the fake, held by the only worker.
    fake.setDefault("up-a", { kind: "hang" });
    const callsBefore = fake.callsFor("up-a").length;
    const probeJob = await stack.submit({ request: chat("the probe") });
    const deadline = Date.now() + 5_000;
    while (fake.callsFor("up-a").length === callsBefore && Date.now() < deadline) await sleep(20);
    const probe = fake.callsFor("up-a")[callsBefore];
    expect(probe, "the probe reached the fake").toBeDefined();
    const probeAt = probe?.at ?? 0;
    const halfOpen = await stack.breaker("provider:pa");
    expect(halfOpen.state).toBe("half_open");

    // Two more workers, then the probing worker dies before its hop timeout.
    await Promise.all([stack.startWorker("rlease-worker-2"), stack.startWorker("rlease-worker-3")]);
    expect(Date.now() - probeAt, "kill before the probe's own timeout").toBeLessThan(HOP_TIMEOUT_MS - 500);
    first?.kill("SIGKILL");
    await first?.waitForExit();
    const killedAt = Date.now();
    fake.setDefault("up-a", { kind: "ok", content: "a is back" });

    // Jobs keep arriving at the surviving workers until the breaker closes.
    let closed = false;
    let closedAt = 0;
    const poll = (async () => {
      while (!closed && Date.now() - killedAt < 30_000) {
        closed = (await stack.breaker("provider:pa")).state === "closed";
        if (closed) closedAt = Date.now();
        await sleep(100);
      }
    })();
    const ids = await stream(
      200,
      (index) => stack.submit({ request: chat(`during lease ${index}`) }),
      () => closed || Date.now() - killedAt > 30_000,
    );
    await poll;
    const jobs = await stack.waitAll([...ids, probeJob], 40_000);

    const afterProbe = fake.callsFor("up-a").filter((call) => call.at > probeAt);
    const takeover = afterProbe[0];
    const breaker = await stack.breaker("provider:pa");
    const transitions = breaker.log.map((entry) => `${entry.from}>${entry.to}`);
    const skipped = jobs.filter((job: Json) =>
      job.attempts.some((attempt: Json) => attempt.reason === "circuit_open"),
    );
    figure("probe lease takeover", {
      lease_ms: LEASE_MS,
      killed_after_probe_ms: killedAt - probeAt,
      takeover_probe_after_ms: takeover ? takeover.at - probeAt : null,
      closed_after_probe_ms: closedAt - probeAt,
      jobs_during_lease: jobs.length,
      skipped_circuit_open: skipped.length,
      calls_to_a_after_takeover: afterProbe.length,
      transitions,
    });

    expect(closed).toBe(true);
    expect(takeover).toBeDefined();
    // Nothing reached A while the dead worker's lease lasted; the takeover came right after it.
    expect((takeover?.at ?? 0) - probeAt).toBeGreaterThanOrEqual(LEASE_MS - 100);
    expect((takeover?.at ?? 0) - probeAt).toBeLessThanOrEqual(LEASE_MS + 2_000);
    // The takeover probe succeeded and closed the breaker; no re-open in between.
    expect(transitions.slice(-2)).toEqual(["open>half_open", "half_open>closed"]);
    expect(breaker.state).toBe("closed");
    // Every job succeeded; those that met the lease skipped A with circuit_open and used B.
    expect(jobs.filter((job: Json) => job.status !== "succeeded")).toEqual([]);
    expect(skipped.length).toBeGreaterThan(10);
    for (const job of skipped) {
      expect(job.attempts[0]).toMatchObject({ model: "a", outcome: "skipped", reason: "circuit_open" });
      expect(job).toMatchObject({ model: "b" });
    }
  }, 60_000);
});
