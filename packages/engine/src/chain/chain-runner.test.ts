import { getMaxListeners } from "node:events";
import { type Config, type JobData, jobDataSchema, loadConfig, resolveChain } from "@cascade/shared";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ProviderError } from "../providers/provider-error.js";
import type { ProviderRegistry } from "../providers/registry.js";
import type { Completion, ProviderAdapter, ProviderCall } from "../providers/types.js";
import type { Admission, Resilience } from "../resilience/resilience.js";
import type { ChainContext } from "./chain-context.js";
import { runChain } from "./chain-runner.js";
import { JobInterruption } from "./interruption.js";
import { RunSignal } from "./run-signal.js";

type Step = Completion | ProviderError | "hang";

const ok = (content = "hello"): Completion => ({
  content,
  toolCalls: [],
  finishReason: "stop",
  usage: { promptTokens: 100, completionTokens: 20 },
});

/** A provider answering from a per-model script, recording every call it receives. */
function scriptedProviders(script: Record<string, Step[]>) {
  const calls: string[] = [];
  const adapter: ProviderAdapter = {
    providerId: "p",
    type: "scripted",
    async generate(call: ProviderCall) {
      calls.push(call.modelId);
      const step = script[call.modelId]?.shift() ?? ok();
      if (step === "hang") {
        return new Promise((_resolve, reject) =>
          call.signal.addEventListener("abort", () => reject(call.signal.reason)),
        );
      }
      if (step instanceof ProviderError) throw step;
      return step;
    },
    stream(call: ProviderCall) {
      return adapter.generate(call);
    },
  };
  const registry: ProviderRegistry = { get: () => adapter };
  return { registry, calls };
}

const config: Config = loadConfig(
  {},
  {
    raw: {
      providers: { p: { type: "simulated" } },
      models: {
        a: { provider: "p", price: { input_per_mtok: 1, output_per_mtok: 2 }, capabilities: ["tools"] },
        b: { provider: "p", price: { input_per_mtok: 1, output_per_mtok: 2 }, context_window: 50 },
        c: { provider: "p", price: { input_per_mtok: 1000, output_per_mtok: 1000 }, capabilities: ["tools"] },
      },
      routes: {
        default: { chain: [{ model: "a", timeout_ms: 200, max_retries: 1 }, { model: "b" }, { model: "c" }] },
        strict: { on_content_filter: "fail", chain: [{ model: "a" }, { model: "b" }] },
        blind: { on_missing_vision: "strip", chain: [{ model: "a" }] },
      },
    },
  },
);

function jobData(overrides: Partial<JobData> = {}, route = "default"): JobData {
  const resolved = resolveChain(config.file, { route, request: {} });
  return jobDataSchema.parse({
    v: 1,
    tenant: "t",
    request: { messages: [{ role: "user", content: "Say hi" }], max_tokens: 10 },
    route: resolved.route,
    chain: resolved.chain,
    policy: resolved.policy,
    priority: 5,
    created_at: 1,
    deadline_at: Date.now() + 60_000,
    ...overrides,
  });
}

/**
 * Shared limits that refuse every hop (breaker open), running `during` while each admission is in
 * flight; counts admissions and settlements.
 */
function refusingResilience(during: () => void) {
  const seen = { admitted: 0, settled: 0 };
  const fake = {
    async admitOrLineUp(): Promise<Admission> {
      seen.admitted += 1;
      during();
      return { admitted: false, reason: "circuit_open", waitMs: undefined, detail: "open" };
    },
    async settle() {
      seen.settled += 1;
    },
  };
  return { resilience: fake as unknown as Resilience, seen };
}

function context(
  data: JobData,
  registry: ProviderRegistry,
  signal = new AbortController().signal,
): ChainContext {
  return {
    jobId: "job_test",
    data,
    config,
    providers: registry,
    clock: { now: () => Date.now() },
    logger: pino({ level: "silent" }),
    random: () => 0.5,
    signal,
    saveProgress: async () => {},
  };
}

describe("runChain", () => {
  it("succeeds on the first hop with an OpenAI chat.completion and its cost", async () => {
    const { registry } = scriptedProviders({});
    const result = await runChain(context(jobData(), registry));
    expect(result.kind).toBe("finished");
    if (result.kind !== "finished") return;
    expect(result.outcome).toMatchObject({
      status: "succeeded",
      model: "a",
      provider: "p",
      cost_usd: 0.00014,
    });
    expect(result.outcome.result).toMatchObject({
      object: "chat.completion",
      model: "a",
      choices: [{ message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
    });
    expect(result.outcome.attempts).toEqual([expect.objectContaining({ model: "a", outcome: "success" })]);
  });

  it("records calls earlier runs left in flight first: attempts with no reason, charged their estimates, each once", async () => {
    const { registry } = scriptedProviders({});
    const startedMs = Date.now() - 5_000;
    const lost = [
      { id: "w1/job_test/1", model: "c", provider: "p", deployment: "east", costUsd: 0.12, startedMs },
      // Already in the saved progress (a run before this one found it): not again.
      { id: "w1/job_test/0", model: "a", provider: "p", costUsd: 0.5, startedMs: startedMs - 1_000 },
    ];
    const progress = {
      hop: 0,
      tries: 0,
      attempts: [],
      cost_usd: 0.5,
      started_at: Math.floor((startedMs - 1_000) / 1000),
      counted_calls: ["w1/job_test/0"],
      lost_usd: 0.5,
    };
    const result = await runChain({ ...context(jobData(), registry), progress, lostCalls: lost });
    expect(result.kind).toBe("finished");
    if (result.kind !== "finished") return;
    const [first, answered] = result.outcome.attempts;
    expect(result.outcome.attempts).toHaveLength(2);
    expect(first).toMatchObject({
      model: "c",
      provider: "p",
      deployment: "east",
      outcome: "error",
      started_at: Math.floor(startedMs / 1000),
    });
    expect(first?.reason).toBeUndefined();
    expect(first?.duration_ms).toBeGreaterThanOrEqual(5_000);
    expect(answered).toMatchObject({ model: "a", outcome: "success" });
    // Saved 0.5, this lost call 0.12, the answer 0.00014.
    expect(result.outcome.cost_usd).toBeCloseTo(0.62014, 9);
    expect(result.outcome.started_at).toBe(Math.floor((startedMs - 1_000) / 1000));
  });

  it("saves the lost calls it recorded with the progress of a run that waits", async () => {
    const { registry } = scriptedProviders({
      a: [new ProviderError("rate_limited", "429", { httpStatus: 429, retryAfterMs: 5_000 })],
    });
    const saved: unknown[] = [];
    const lost = [
      { id: "w2/job_test/7", model: "a", provider: "p", costUsd: 0.25, startedMs: Date.now() - 100 },
    ];
    const result = await runChain({
      ...context(jobData({ deadline_at: Date.now() + 600_000 }), registry),
      lostCalls: lost,
      saveProgress: async (progress) => {
        saved.push(structuredClone(progress));
      },
    });
    expect(result.kind).toBe("deferred");
    if (result.kind !== "deferred") return;
    expect(result.progress).toMatchObject({ counted_calls: ["w2/job_test/7"], lost_usd: 0.25 });
    expect(result.progress.attempts.map((attempt) => attempt.outcome)).toEqual(["error", "error"]);
    expect(result.progress.cost_usd).toBeGreaterThanOrEqual(0.25);
    // Saved before the wait (a crash from here on does not lose them).
    expect(saved.at(-1)).toMatchObject({ counted_calls: ["w2/job_test/7"], lost_usd: 0.25 });
  });

  it("names a failed call's journal entry in the progress it saves (its removal may reach Redis later)", async () => {
    const { registry } = scriptedProviders({
      a: [new ProviderError("server_error", "HTTP 500", { httpStatus: 500 })],
    });
    let call = 0;
    // Admits every call and journals it as Resilience does (the entry's field on the ticket).
    const journaling = {
      journal: { instanceId: "w9" },
      async admitOrLineUp(): Promise<Admission> {
        return { admitted: true, ticket: {} as never };
      },
      journalCall(ticket: { journal?: { field: string } }) {
        call += 1;
        ticket.journal = { field: `job_test/${call}` };
        return undefined;
      },
      async settle() {
        return undefined;
      },
      pools: { callStarted() {}, callEnded() {}, failed() {}, latency() {} },
    };
    const saved: Array<{ counted_calls?: string[]; attempts: unknown[] }> = [];
    const data = jobData();
    const result = await runChain({
      ...context(
        { ...data, chain: [{ ...data.chain[0], max_retries: 0 } as never, ...data.chain.slice(1)] },
        registry,
      ),
      resilience: journaling as unknown as Resilience,
      saveProgress: async (progress) => {
        saved.push(structuredClone(progress));
      },
    });
    expect(result.kind).toBe("finished");
    // Saved before b was tried: a's failed call, its attempt and its entry's id.
    expect(saved[0]?.attempts).toHaveLength(1);
    expect(saved[0]?.counted_calls).toEqual(["w9/job_test/1"]);
  });

  it("retries a server error once, then falls back, skipping what cannot fit", async () => {
    const failure = () => new ProviderError("server_error", "HTTP 500", { httpStatus: 500 });
    const { registry, calls } = scriptedProviders({ a: [failure(), failure()] });
    const data = jobData({
      request: { messages: [{ role: "user", content: "x".repeat(400) }], max_tokens: 10 },
    });
    const result = await runChain(context(data, registry));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(calls).toEqual(["a", "a", "c"]);
    expect(
      result.outcome.attempts.map((attempt) => [attempt.model, attempt.outcome, attempt.reason]),
    ).toEqual([
      ["a", "error", "server_error"],
      ["a", "error", "server_error"],
      ["b", "skipped", "context_length"],
      ["c", "success", undefined],
    ]);
  });

  it("tells `answered` once, after the call that succeeded and before anything is recorded of it", async () => {
    const failure = () => new ProviderError("server_error", "HTTP 500", { httpStatus: 500 });
    const { registry, calls } = scriptedProviders({ a: [failure(), failure()] });
    const seen: string[] = [];
    const runContext: ChainContext = {
      ...context(jobData(), registry),
      answered: () => {
        seen.push(`answered after ${calls.join(",")}`);
        return undefined;
      },
      metrics: {
        attempt: (attempt) => seen.push(`recorded ${attempt.model} ${attempt.outcome}`),
        firstToken: () => {},
      },
    };
    const result = await runChain(runContext);
    expect(result.kind).toBe("finished");
    // The failed calls keep the run's slot (its retry and fallback follow); the success frees it.
    expect(seen).toEqual([
      "recorded a error",
      "recorded a error",
      "answered after a,a,b",
      "recorded b success",
    ]);
  });

  it("times out a hanging hop and moves on without retrying it (a silent provider stays silent)", async () => {
    const { registry, calls } = scriptedProviders({ a: ["hang", "hang"] });
    const result = await runChain(context(jobData(), registry));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(calls).toEqual(["a", "b"]);
    expect(result.outcome.attempts.map((attempt) => attempt.reason)).toEqual(["timeout", undefined]);
    expect(result.outcome.model).toBe("b");
  });

  it("retries a timed-out hop when its retry_on names timeout", async () => {
    const { registry, calls } = scriptedProviders({ a: ["hang", "hang"] });
    const base = jobData();
    const chain = base.chain.map((hop, index) =>
      index === 0 ? { ...hop, retry_on: ["timeout" as const, "server_error" as const] } : hop,
    );
    const result = await runChain(context({ ...base, chain }, registry));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(calls).toEqual(["a", "a", "b"]);
    expect(result.outcome.attempts.slice(0, 2).map((attempt) => attempt.reason)).toEqual([
      "timeout",
      "timeout",
    ]);
    expect(result.outcome.model).toBe("b");
  });

  it("fails at once on the caller's bad request, but falls back on a provider-specific one", async () => {
    const bad = scriptedProviders({
      a: [new ProviderError("bad_request", "HTTP 400 invalid_type", { httpStatus: 400 })],
    });
    const failed = await runChain(context(jobData(), bad.registry));
    if (failed.kind !== "finished") throw new Error("expected finished");
    expect(failed.outcome.status).toBe("failed");
    expect(failed.outcome.error?.type).toBe("bad_request");
    expect(bad.calls).toEqual(["a"]);

    const specific = scriptedProviders({
      a: [
        new ProviderError("bad_request", "unsupported_parameter", {
          httpStatus: 400,
          providerSpecific: true,
        }),
      ],
    });
    const fellBack = await runChain(context(jobData(), specific.registry));
    if (fellBack.kind !== "finished") throw new Error("expected finished");
    expect(fellBack.outcome.status).toBe("succeeded");
    expect(fellBack.outcome.model).toBe("b");
  });

  it("honours on_content_filter: fail", async () => {
    const filtered: Completion = { ...ok(), finishReason: "content_filter" };
    const { registry } = scriptedProviders({ a: [filtered] });
    const result = await runChain(context(jobData({}, "strict"), registry));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(result.outcome.status).toBe("failed");
    expect(result.outcome.error?.type).toBe("content_filter");
  });

  it("defers a long Retry-After wait instead of sleeping, keeping its progress", async () => {
    const limited = new ProviderError("rate_limited", "429", { httpStatus: 429, retryAfterMs: 5000 });
    const { registry } = scriptedProviders({ a: [limited] });
    const before = Date.now();
    const result = await runChain(context(jobData(), registry));
    expect(result.kind).toBe("deferred");
    if (result.kind !== "deferred") return;
    expect(result.until).toBeGreaterThanOrEqual(before + 5000);
    expect(result.progress).toMatchObject({ hop: 0, tries: 1 });
    expect(result.progress.attempts[0]).toMatchObject({
      reason: "rate_limited",
      http_status: 429,
      retry_after_ms: 5000,
    });

    // Resumed from its progress, the job retries the same hop and does not start over.
    const resumed = await runChain({
      ...context(jobData(), scriptedProviders({}).registry),
      progress: result.progress,
    });
    if (resumed.kind !== "finished") throw new Error("expected finished");
    expect(resumed.outcome.attempts.map((attempt) => attempt.outcome)).toEqual(["error", "success"]);
  });

  it("moves on when a rate-limit wait would pass the deadline", async () => {
    const limited = new ProviderError("rate_limited", "429", { httpStatus: 429, retryAfterMs: 5000 });
    const { registry } = scriptedProviders({ a: [limited] });
    const result = await runChain(context(jobData({ deadline_at: Date.now() + 1000 }), registry));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(result.outcome.model).toBe("b");
  });

  it("skips hops over the job's price ceiling and needing missing capabilities", async () => {
    const { registry, calls } = scriptedProviders({});
    const data = jobData({
      max_cost_usd: 0.001,
      request: {
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 10,
        tools: [{ type: "function", function: { name: "lookup" } }],
      },
    });
    const result = await runChain(context(data, registry));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(calls).toEqual(["a"]);
    const withoutTools = scriptedProviders({
      a: [new ProviderError("server_error", "500"), new ProviderError("server_error", "500")],
    });
    const failed = await runChain(context(data, withoutTools.registry));
    if (failed.kind !== "finished") throw new Error("expected finished");
    expect(failed.outcome.attempts.map((attempt) => attempt.reason)).toEqual([
      "server_error",
      "server_error",
      "capability_missing",
      "price_ceiling",
    ]);
    expect(failed.outcome.error?.type).toBe("all_models_failed");
  });

  it("ends cancelled when its signal is aborted for cancellation", async () => {
    const controller = new AbortController();
    const { registry } = scriptedProviders({ a: ["hang"] });
    setTimeout(() => controller.abort(new JobInterruption("cancelled")), 20);
    const data = jobData({ chain: [{ model: "a", timeout_ms: 10_000 }] });
    const result = await runChain(context(data, registry, controller.signal));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(result.outcome.status).toBe("cancelled");
    // The call was sent (and charged): it is the job's one attempt, stopped, with no reason of its own.
    expect(result.outcome.attempts).toEqual([
      {
        model: "a",
        provider: expect.any(String),
        outcome: "error",
        message: "the call was stopped: the job was cancelled",
        duration_ms: expect.any(Number),
        started_at: expect.any(Number),
      },
    ]);
  });

  it("ends cancelled, not failed, when cancelled while admission skips every hop", async () => {
    const controller = new AbortController();
    const { registry, calls } = scriptedProviders({});
    const { resilience, seen } = refusingResilience(() => controller.abort(new JobInterruption("cancelled")));
    const result = await runChain({ ...context(jobData(), registry, controller.signal), resilience });
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(result.outcome.status).toBe("cancelled");
    expect(result.outcome.attempts).toEqual([]);
    expect(calls).toEqual([]);
    // The first admission saw the cancel; no later hop asks the shared limits at all.
    expect(seen).toEqual({ admitted: 1, settled: 0 });
  });

  it("charges nothing for a call interrupted while it waited for its journal entry to go out", async () => {
    const controller = new AbortController();
    const sent: string[] = [];
    const adapter: ProviderAdapter = {
      providerId: "p",
      type: "scripted",
      async generate(call: ProviderCall) {
        // As fetch and the lean client: an aborted signal sends nothing.
        if (call.signal.aborted) throw call.signal.reason;
        sent.push(call.modelId);
        return ok();
      },
      stream(call: ProviderCall) {
        return adapter.generate(call);
      },
    };
    const settled: unknown[] = [];
    const fake = {
      async admitOrLineUp(request: unknown): Promise<Admission> {
        return { admitted: true, ticket: { request, plan: {}, probe: false } } as unknown as Admission;
      },
      // As Resilience.journalCall for a network call: the entry goes out in the turn's check phase
      // (CallJournal.written), and a cancel handled before then (a pub/sub message, a gateway
      // caller's socket closing) interrupts the run while the call waits for it.
      journalCall() {
        setImmediate(() => controller.abort(new JobInterruption("cancelled")));
        return new Promise<void>((resolve) => setImmediate(resolve));
      },
      async settle(_ticket: unknown, outcome: unknown) {
        settled.push(outcome);
      },
    };
    const data = jobData({ chain: [{ model: "c", timeout_ms: 10_000 }] });
    const result = await runChain({
      ...context(data, { get: () => adapter }, controller.signal),
      resilience: fake as unknown as Resilience,
    });
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(sent).toEqual([]);
    expect(result.outcome.status).toBe("cancelled");
    // Nothing reached the provider: nothing is charged (it was the prompt's estimate).
    expect(result.outcome.cost_usd).toBe(0);
    expect(settled).toHaveLength(1);
  });

  it("hands the job back, not failed, when shut down while admission skips every hop", async () => {
    const controller = new AbortController();
    const { registry } = scriptedProviders({});
    const { resilience } = refusingResilience(() => controller.abort(new JobInterruption("shutdown")));
    const result = await runChain({ ...context(jobData(), registry, controller.signal), resilience });
    expect(result.kind).toBe("deferred");
    if (result.kind !== "deferred") return;
    expect(result.progress).toMatchObject({ hop: 0, tries: 0, attempts: [] });
  });

  it("replaces images with a placeholder on a blind model when the route says strip, and notes it", async () => {
    const seen: ProviderCall[] = [];
    const registry: ProviderRegistry = {
      get: () => ({
        providerId: "p",
        type: "capturing",
        generate: async (call) => {
          seen.push(call);
          return ok();
        },
        stream: async () => ok(),
      }),
    };
    const request = {
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "what is this?" },
            { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
          ],
        },
      ],
      max_tokens: 10,
    };
    const stripped = await runChain(context(jobData({ request } as never, "blind"), registry));
    if (stripped.kind !== "finished") throw new Error("expected finished");
    expect(stripped.outcome.status).toBe("succeeded");
    expect(stripped.outcome.attempts[0]?.message).toMatch(/on_missing_vision: strip/);
    expect(seen[0]?.request.messages[0]?.content).toEqual([
      { type: "text", text: "what is this?" },
      { type: "text", text: "[image omitted: this model cannot see images]" },
    ]);
    const skipped = await runChain(context(jobData({ request } as never), registry));
    if (skipped.kind !== "finished") throw new Error("expected finished");
    expect(skipped.outcome.attempts[0]).toMatchObject({
      model: "a",
      outcome: "skipped",
      reason: "capability_missing",
    });
  });
});

describe("runChain on a run's shared signal (the worker's runs)", () => {
  /** As the worker builds it: `signal` reads the run's current signal. */
  function runContext(data: JobData, registry: ProviderRegistry, run: RunSignal): ChainContext {
    const base = context(data, registry);
    return {
      ...base,
      get signal() {
        return run.signal;
      },
      runSignal: run,
    };
  }

  /** Records the signal each call was made with. */
  function watching(registry: ProviderRegistry) {
    const signals: AbortSignal[] = [];
    const adapter = registry.get("p");
    const watched: ProviderRegistry = {
      get: () => ({
        ...adapter,
        generate(call: ProviderCall) {
          signals.push(call.signal);
          return adapter.generate(call);
        },
      }),
    };
    return { registry: watched, signals };
  }

  it("calls with the run's own signal; a timeout aborts only that call and the fallback succeeds", async () => {
    const scripted = scriptedProviders({ a: ["hang"] });
    const { registry, signals } = watching(scripted.registry);
    const run = new RunSignal();
    const first = run.signal;
    const result = await runChain(runContext(jobData(), registry, run));
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(result.outcome.status).toBe("succeeded");
    expect(result.outcome.model).toBe("b");
    expect(result.outcome.attempts.map((attempt) => attempt.reason)).toEqual(["timeout", undefined]);
    // No controller of the call's own: the run's signal itself, aborted by the timeout only.
    expect(signals[0]).toBe(first);
    expect(first.reason).toBeInstanceOf(ProviderError);
    expect(signals[1]).not.toBe(first);
    expect(signals[1]?.aborted).toBe(false);
    expect(run.signal.aborted).toBe(false);
  });

  it("a cancel after a timeout still aborts the fallback's call, and the job ends cancelled", async () => {
    const scripted = scriptedProviders({ a: ["hang"], b: ["hang"] });
    const { registry, signals } = watching(scripted.registry);
    const run = new RunSignal();
    const data = jobData({
      chain: [
        { model: "a", timeout_ms: 50 },
        { model: "b", timeout_ms: 10_000 },
      ],
    });
    const running = runChain(runContext(data, registry, run));
    while (signals.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    run.interrupt("cancelled");
    const result = await running;
    if (result.kind !== "finished") throw new Error("expected finished");
    expect(result.outcome.status).toBe("cancelled");
    // The fallback's call was sent and stopped: charged, so one of the attempts too.
    expect(result.outcome.attempts.map((attempt) => [attempt.model, attempt.reason])).toEqual([
      ["a", "timeout"],
      ["b", undefined],
    ]);
    expect(result.outcome.attempts[1]).toMatchObject({
      outcome: "error",
      message: "the call was stopped: the job was cancelled",
    });
    expect(signals[1]?.reason).toBeInstanceOf(JobInterruption);
    // Interrupted once: a later timeout cannot replace the interruption.
    run.interrupt("shutdown");
    expect((run.signal.reason as JobInterruption).kind).toBe("cancelled");
  });

  it("a lock loss during a call aborts it; the interruption wins over a later timeout", async () => {
    const scripted = scriptedProviders({ a: ["hang"] });
    const { registry, signals } = watching(scripted.registry);
    const run = new RunSignal();
    const data = jobData({ chain: [{ model: "a", timeout_ms: 30 }] });
    const running = runChain(runContext(data, registry, run));
    while (signals.length < 1) await new Promise((resolve) => setTimeout(resolve, 1));
    run.interrupt("lock_lost");
    await expect(running).rejects.toBeInstanceOf(JobInterruption);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect((run.signal.reason as JobInterruption).kind).toBe("lock_lost");
  });
});

describe("RunSignal", () => {
  it("gives a run of many calls room for their listeners on its one signal, without a leak warning", async () => {
    const run = new RunSignal();
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      for (let call = 0; call < 30; call++) run.forCall().addEventListener("abort", () => {});
      // Node emits the warning on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(getMaxListeners(run.signal)).toBeGreaterThanOrEqual(30);
    expect(warnings.filter((warning) => warning.name === "MaxListenersExceededWarning")).toEqual([]);
  });
});
