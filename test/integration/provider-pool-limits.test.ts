/**
 * A pooled model's own `limits` cap the pool as a whole, on top of each deployment's
 * (configuration.md, Models → `limits`; ADR 0020). GET /v1/providers shows that bucket as it shows
 * a plain model's (`scope: "model"`, with its headroom), on each of the pool's deployment entries,
 * beside the deployment's own; /metrics has it once, as the model's, not as each deployment's.
 * Real API and worker in this process, simulated providers.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";

// biome-ignore lint/suspicious/noExplicitAny: assertions read whatever JSON came back.
type Json = Record<string, any>;

const config = {
  providers: { p: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: {
    plain: { provider: "p", limits: { rpm: 60, burst: 3 } },
    pooled: {
      limits: { rpm: 60, burst: 3 },
      deployments: [
        { id: "a", provider: "p", limits: { rpm: 600 } },
        { id: "b", provider: "p" },
      ],
    },
  },
};

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ redisUrl: inject("redisUrl"), config });
});

afterAll(() => stack?.close());

const limitViews = (entries: Json[]) => entries.flatMap((entry) => entry.limits as Json[]);

async function runJob(model: string, content: string): Promise<Json> {
  const created = await stack.request("POST", "/v1/jobs", {
    body: { request: { messages: [{ role: "user", content }], max_tokens: 5 }, models: [model] },
  });
  expect(created.status).toBe(202);
  return (await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`)).body;
}

describe("GET /v1/providers and a pooled model's own limits", () => {
  it("shows the pool's rpm bucket on its deployments' entries, as a plain model's is shown", async () => {
    for (let index = 0; index < 3; index += 1) {
      expect((await runJob("pooled", `pool ${index}`)).status).toBe("succeeded");
      expect((await runJob("plain", `plain ${index}`)).status).toBe("succeeded");
    }
    const response = await stack.request("GET", "/v1/providers");
    expect(response.status).toBe(200);
    const provider = response.body.data.find((entry: Json) => entry.id === "p");
    const plain = provider.models.filter((entry: Json) => entry.id === "plain");
    const pooled = provider.models.filter((entry: Json) => entry.id === "pooled");
    expect(pooled.map((entry: Json) => entry.deployment).sort()).toEqual(["a", "b"]);
    expect(limitViews(plain)).toEqual([
      expect.objectContaining({ scope: "model", kind: "rpm", limit: 60, capacity: 3 }),
    ]);
    // The pool's burst of 3 was just spent by 3 calls: every deployment entry shows the bucket
    // holding it back (was: on none of them).
    for (const entry of pooled) {
      expect(entry.limits).toContainEqual(
        expect.objectContaining({ scope: "model", kind: "rpm", limit: 60, capacity: 3 }),
      );
      const pool = entry.limits.find((limit: Json) => limit.scope === "model");
      expect(pool.available).toBeLessThan(3);
    }
    // A deployment's own bucket stays beside it, on its entry only.
    const a = pooled.find((entry: Json) => entry.deployment === "a");
    const b = pooled.find((entry: Json) => entry.deployment === "b");
    expect(a.limits).toContainEqual(
      expect.objectContaining({ scope: "deployment", kind: "rpm", limit: 600 }),
    );
    expect(b.limits.filter((limit: Json) => limit.scope === "deployment")).toEqual([]);
  });

  it("/metrics has the pool's bucket once, as the model's", async () => {
    const response = await fetch(`${stack.url}/metrics`);
    expect(response.status).toBe(200);
    const lines = (await response.text())
      .split("\n")
      .filter((line) => line.startsWith("cascade_limit_available{"));
    expect(lines.filter((line) => line.includes('scope="model",id="pooled",kind="rpm"'))).toHaveLength(1);
    expect(lines.filter((line) => line.includes('scope="deployment",id="pooled/a",kind="rpm"'))).toHaveLength(
      1,
    );
    expect(lines.filter((line) => line.includes('id="pooled/b"'))).toEqual([]);
  });
});
