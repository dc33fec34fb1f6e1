/**
 * Proof: a less urgent job is not starved (contract, "Pools and fairness"; docs/configuration.md,
 * "Fair share and aging"). Tenant urgent keeps priority-1 batch lines arriving (a batch of 500
 * every 400 ms) faster than two worker processes × concurrency 50 run them; tenant patient queues
 * one job of priority FAIRNESS_AGING_PRIORITY (default 2) among them. The patient job is taken
 * after (priority − 1) × 1,000 of urgent's jobs (the gap between two priorities is 1,000 rounds of
 * a weight-1 tenant), while urgent's jobs are still waiting.
 *
 * The default suite uses priority 2 (1,000 jobs overtake it) to stay near 30 s;
 * `FAIRNESS_AGING_PRIORITY=10` shows the full bound, 9,000 priority-1 jobs, in a few minutes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FakeCall } from "../support/fake-openai.js";
import { fairnessConfig, figure, submitMany, tenantEnv, tenantKey, waitDrained } from "./fairness-helpers.js";
import { type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const PATIENT_PRIORITY = Number(process.env.FAIRNESS_AGING_PRIORITY ?? 2);
/** Rounds of priority-1 work that overtake it: gap / tag unit per step of priority. */
const ROUNDS = (PATIENT_PRIORITY - 1) * 1000;
const LINES_PER_BATCH = 500;
const BATCHES = Math.ceil((ROUNDS + 1500) / LINES_PER_BATCH);

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({
    label: "faira",
    config: fairnessConfig({ urgent: {}, patient: {} }),
    workers: 2,
    concurrency: 50,
    env: tenantEnv(["urgent", "patient"]),
  });
  // 100 slots × 150 ms: at most ~670 jobs/s, below the ~1,000/s the batches bring, so urgent's
  // backlog grows throughout (with 20 ms calls the workers kept up, and nothing waited).
  stack.fake.setDefault("up-m", { kind: "ok", delayMs: 150, content: "ok" });
});

afterAll(async () => {
  await stack?.close();
});

/** Uploads `lines` priority-1 chat lines of tenant urgent and starts their batch. */
async function urgentBatch(first: number): Promise<void> {
  const lines = Array.from({ length: LINES_PER_BATCH }, (_, index) =>
    JSON.stringify({
      custom_id: `u${first + index}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { messages: [{ role: "user", content: `urgent ${first + index}` }], max_tokens: 5 },
    }),
  );
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([`${lines.join("\n")}\n`]), "urgent.jsonl");
  const authorization = `Bearer ${tenantKey("urgent")}`;
  const file = await fetch(`${stack.api.url}/v1/files`, {
    method: "POST",
    body: form,
    headers: { authorization },
  });
  const fileId = ((await file.json()) as { id: string }).id;
  const batch = await stack.request(
    "POST",
    "/v1/batches",
    { input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h", priority: 1 },
    tenantKey("urgent"),
  );
  if (batch.status !== 200)
    throw new Error(`POST /v1/batches answered ${batch.status}: ${JSON.stringify(batch.body)}`);
}

describe("aging", () => {
  it(`a priority-${PATIENT_PRIORITY} job is taken after ~${ROUNDS} priority-1 jobs, while they keep arriving`, async () => {
    await urgentBatch(0);
    // Let urgent's backlog reach the queue first, so the patient job queues behind real work.
    const prioritized = `${stack.tag}:completions:prioritized`;
    const backlogBy = Date.now() + 20_000;
    while ((await stack.redis.zcard(prioritized)) < 200 && Date.now() < backlogBy) await sleep(20);
    const [patientId] = await submitMany(stack, "patient", 1, { priority: PATIENT_PRIORITY });
    for (let index = 1; index < BATCHES; index += 1) {
      await urgentBatch(index * LINES_PER_BATCH);
      await sleep(400);
    }
    const contentOf = (call: FakeCall) => String(call.body?.messages?.at(-1)?.content ?? "");
    // Batch lines reach the queue a little after POST /v1/batches answers: wait for every job's
    // call, not only for an empty queue.
    const total = BATCHES * LINES_PER_BATCH + 1;
    const deadline = Date.now() + 600_000;
    while (new Set(stack.fake.callsFor("up-m").map(contentOf)).size < total && Date.now() < deadline)
      await sleep(200);
    await waitDrained(stack, 60_000);
    const calls = stack.fake.callsFor("up-m");
    const patientCall = calls.find((call) => contentOf(call).startsWith("patient "));
    const patientCreated = Number(
      await stack.redis.hget(`${stack.tag}:completions:${patientId}`, "timestamp"),
    );
    // A job's first call only: on a loaded machine a run can lose its lock and run again.
    const firstCalls = new Map<string, FakeCall>();
    for (const call of calls) if (!firstCalls.has(contentOf(call))) firstCalls.set(contentOf(call), call);
    const urgentCalls = [...firstCalls.values()].filter((call) => contentOf(call).startsWith("urgent "));
    const overtaken = urgentCalls.filter(
      (call) => call.at > patientCreated && call.at < (patientCall?.at ?? 0),
    ).length;
    const after = urgentCalls.filter((call) => call.at > (patientCall?.at ?? 0)).length;
    const urgentQueuedAfterPatient = Math.max(0, BATCHES - 1) * LINES_PER_BATCH;
    figure(`aging, priority ${PATIENT_PRIORITY} among priority 1`, {
      urgent_jobs: urgentCalls.length,
      upstream_calls: calls.length,
      expected_rounds: ROUNDS,
      urgent_started_while_patient_waited: overtaken,
      urgent_started_after_patient: after,
      urgent_queued_after_patient: urgentQueuedAfterPatient,
      patient_wait_ms: (patientCall?.at ?? 0) - patientCreated,
    });
    expect(patientCall).toBeDefined();
    expect(urgentCalls).toHaveLength(BATCHES * LINES_PER_BATCH);
    // Overtaken by about (priority − 1) × 1,000 priority-1 jobs (± what 100 slots had in hand).
    expect(overtaken).toBeGreaterThanOrEqual(ROUNDS - 150);
    expect(overtaken).toBeLessThanOrEqual(ROUNDS + 250);
    // And taken while priority-1 jobs were still waiting: not starved until they ran out.
    expect(after).toBeGreaterThanOrEqual(300);
  }, 700_000);
});
