/**
 * A job read while a worker takes it or finishes it (GET /v1/jobs/:id, and the events stream built
 * from the same read) is shown in a state it was in: readJob reads the job's state, then its hash.
 * Read the other way round, a job finished between the two reads (hash without its answer, state
 * `completed`) was shown `queued` after a read had shown it `running` (about one job in three with
 * three pollers), and a live events reader was told `queued` after `running`, or `running` twice.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { readEvents } from "../support/sse-client.js";

const config = {
  providers: { fine: { type: "simulated", simulate: { latency_ms: 30 } } },
  models: { good: { provider: "fine" } },
  routes: { default: { chain: [{ model: "good" }] } },
  tenants: { a: { api_keys_env: "A_KEYS" } },
};
const a = { authorization: "Bearer key-a" };
const body = { request: { messages: [{ role: "user", content: "hi" }], max_tokens: 10 } };

describe("a job read while a worker takes it or finishes it", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ redisUrl: inject("redisUrl"), config, env: { A_KEYS: "key-a" } });
  });
  afterAll(() => stack?.close());

  async function pollUntilEnded(
    jobId: string,
  ): Promise<Array<{ status: string; started_at: number | null }>> {
    const seen: Array<{ status: string; started_at: number | null }> = [];
    let ended = false;
    const poll = async () => {
      while (!ended) {
        const { body: job } = await stack.request("GET", `/v1/jobs/${jobId}`, { headers: a });
        seen.push({ status: job.status, started_at: job.started_at });
        if (job.status === "succeeded" || job.status === "failed") ended = true;
      }
    };
    await Promise.all([poll(), poll(), poll()]);
    return seen;
  }

  it("never goes back from `running` to `queued` (it was not waiting for anything)", {
    timeout: 120_000,
  }, async () => {
    const regressions: string[] = [];
    for (let round = 0; round < 60 && regressions.length === 0; round++) {
      const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
      const statuses = (await pollUntilEnded(created.body.id)).map((job) => job.status);
      const started = statuses.indexOf("running");
      if (started >= 0 && statuses.indexOf("queued", started) > 0)
        regressions.push(statuses.filter((status, index) => status !== statuses[index - 1]).join(" -> "));
    }
    // It was ["running -> queued -> succeeded"] (in the order the three pollers' answers came back).
    expect(regressions).toEqual([]);
  });

  it("a live events reader is told each status once, in order", { timeout: 120_000 }, async () => {
    const odd: string[] = [];
    for (let round = 0; round < 80 && odd.length === 0; round++) {
      const created = await stack.request("POST", "/v1/jobs", { body, headers: a });
      const url = `${stack.url}/v1/jobs/${created.body.id}/events`;
      const [events] = await Promise.all([readEvents(url, { headers: a }), pollUntilEnded(created.body.id)]);
      const statuses = events.events
        .filter((event) => event.event === "status")
        .map((event) => event.data.status);
      if (statuses.join(",") !== "queued,running,succeeded")
        odd.push(
          events.events
            .map((event) => `${event.id ?? "(no id)"} ${event.event} ${event.data.status ?? ""}`)
            .join(", "),
        );
    }
    // It was (e.g.): "1 status queued, (no id) status running, 2 status running, 3 attempt, ..."
    expect(odd).toEqual([]);
  });
});
