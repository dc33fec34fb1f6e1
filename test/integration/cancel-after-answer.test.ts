/**
 * DELETE on a job whose call has already answered, while its worker records the result: the
 * result stands (a paid answer is kept), so the job ends succeeded, and the DELETE must say so
 * (409, the job has ended) rather than 202, which promises the job "ends cancelled once its worker
 * has aborted" (contract). A black-box probe saw 13 of 95 running-job cancels answered 202 and
 * then succeed. The API now waits a moment after asking for the cancel, for the job's end, and
 * answers what happened; a call still in flight is aborted and the job ends cancelled (202).
 */
import type { JobData } from "@cascade/shared";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

let stack: Stack;
const headers = { authorization: "Bearer acme-key" };
/** Set while a slow job's bookkeeping (after its answer) is held up, with what releases it. */
let held: { entered: () => void; release: Promise<void> } | undefined;

beforeAll(async () => {
  stack = await startStack({
    redisUrl: inject("redisUrl"),
    config: {
      providers: {
        sim: { type: "simulated", simulate: { latency_ms: 0 } },
        slow: { type: "simulated", simulate: { latency_ms: 3000 } },
      },
      models: { fast: { provider: "sim" }, sluggish: { provider: "slow" } },
      routes: { default: { chain: [{ model: "fast" }] }, slow: { chain: [{ model: "sluggish" }] } },
      tenants: { acme: { api_keys_env: "ACME_KEYS", max_open_requests: 2 } },
    },
    env: { ACME_KEYS: "acme-key" },
    // A slow Redis taking the webhook, after the answer: the job is still shown running.
    beforeFinished: async (data: JobData) => {
      if (data.metadata?.hold !== "1" || !held) return;
      held.entered();
      await held.release;
    },
  });
});
afterAll(() => stack?.close());

/** A job whose answer is in and whose bookkeeping is held (shown running) until `release`. */
async function jobHeldAfterItsAnswer() {
  let release!: () => void;
  let entered!: () => void;
  const inBookkeeping = new Promise<void>((resolve) => {
    entered = resolve;
  });
  held = {
    entered,
    release: new Promise<void>((resolve) => {
      release = resolve;
    }),
  };
  const created = await stack.request("POST", "/v1/jobs", {
    headers,
    body: { metadata: { hold: "1" }, request: { messages: [{ role: "user", content: "answered" }] } },
  });
  await inBookkeeping;
  return { created, release };
}

describe("DELETE on a running job", () => {
  it("whose answer is in and being recorded: 409 with the job ended succeeded, not 202", async () => {
    const { created, release } = await jobHeldAfterItsAnswer();
    expect((await stack.request("GET", `/v1/jobs/${created.body.id}`, { headers })).body.status).toBe(
      "running",
    );
    // The bookkeeping goes on 300 ms into the DELETE.
    setTimeout(release, 300);
    const cancel = await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers });
    expect(cancel.status).toBe(409);
    expect(cancel.body.error.type).toBe("conflict_error");
    expect(cancel.body.error.message).toMatch(/succeeded/);
    const job = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=5`, { headers });
    expect(job.body.status).toBe("succeeded");
    held = undefined;
  });

  it("by a tenant at its max_open_requests: 202 at once (no wait for the end), not a 429 for a cancel asked", async () => {
    const { created, release } = await jobHeldAfterItsAnswer();
    // Two requests held open (the tenant's cap): waiting GETs of the job.
    const waiting = [0, 1].map(() =>
      stack.request("GET", `/v1/jobs/${created.body.id}?wait=20`, { headers }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const cancel = await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers });
    expect(cancel.status).toBe(202);
    release();
    await Promise.all(waiting);
    held = undefined;
  });

  it("whose call is in flight: 202, and the job ends cancelled", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      headers,
      body: { route: "slow", request: { messages: [{ role: "user", content: "slow" }] } },
    });
    const deadline = Date.now() + 5_000;
    while (
      (await stack.request("GET", `/v1/jobs/${created.body.id}`, { headers })).body.status !== "running"
    ) {
      if (Date.now() > deadline) throw new Error("the job never started");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const cancel = await stack.request("DELETE", `/v1/jobs/${created.body.id}`, { headers });
    expect(cancel.status).toBe(202);
    const job = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=5`, { headers });
    expect(job.body.status).toBe("cancelled");
  });
});
