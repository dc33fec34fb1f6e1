/**
 * A job that started and went back to the queue to wait for a limit (contract: job `status`, and
 * the `status` events of GET /v1/jobs/:id/events): while it waits, its event stream's latest
 * status is the one GET shows (`queued`), and `running` follows when it runs again. For jobs whose
 * events are derived from their state and for streamed jobs, whose worker writes them. Real API and
 * worker processes; a provider limited to one call a second, so later jobs wait in the delayed set.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ReceivedEvent, readEvents } from "../support/sse-client.js";
import { chat, type ResilienceStack, sleep, startResilienceStack } from "./resilience-helpers.js";

const config = (url: string) => ({
  providers: {
    p: { type: "openai", base_url: url, api_key_env: "FAKE_KEY", limits: { rpm: 60, burst: 1 } },
    q: { type: "openai", base_url: url, api_key_env: "FAKE_KEY" },
  },
  models: { a: { provider: "p", name: "up-a" }, b: { provider: "q", name: "up-b" } },
  routes: {
    default: { deadline_ms: 600_000, chain: [{ model: "a", timeout_ms: 10_000 }] },
    retrying: { deadline_ms: 600_000, chain: [{ model: "b", max_retries: 1 }] },
  },
});

let stack: ResilienceStack;

beforeAll(async () => {
  stack = await startResilienceStack({ label: "events-wait", config, workers: 1, concurrency: 10 });
});

afterAll(async () => {
  await stack?.close();
});

const statuses = (events: ReceivedEvent[]) =>
  events.filter((event) => event.event === "status").map((event) => event.data.status);

describe("the events of a job waiting for a limit after it started", () => {
  for (const stream of [false, true]) {
    it(`${stream ? "streamed" : "not streamed"}: the stream says queued while GET does, then running`, async () => {
      stack.fake.setDefault("up-a", { kind: "ok", delayMs: 20 });
      const ids = await stack.submitMany(5, (index) =>
        stream ? { request: chat(`wait ${index}`, { stream: true }) } : { request: chat(`wait ${index}`) },
      );
      const last = ids.at(-1) as string;
      // One call a second: the last job took a place in line ~4 s ahead and waits in the queue.
      let waiting = await stack.job(last);
      for (let tries = 0; tries < 40 && !(waiting.status === "queued" && waiting.started_at); tries++) {
        await sleep(50);
        waiting = await stack.job(last);
      }
      expect(waiting).toMatchObject({ status: "queued" });
      expect(waiting.started_at).not.toBeNull();
      const url = `${stack.api.url}/v1/jobs/${last}/events`;
      const now = await readEvents(url, { timeoutMs: 700 });
      expect(now.ended).toBe(false);
      expect(statuses(now.events).at(-1)).toBe("queued");
      expect(statuses(now.events)).toContain("running");

      const whole = await readEvents(url, { timeoutMs: 20_000 });
      expect(whole.ended).toBe(true);
      const seen = statuses(whole.events);
      expect(seen.at(-1)).toBe("succeeded");
      // It ran again after it waited (a reader that came in while it waited saw it start again).
      expect(whole.events.at(-1)?.event).toBe("done");
      const [job] = await stack.waitAll([last], 20_000);
      expect(job?.status).toBe("succeeded");
    });
  }

  for (const stream of [false, true]) {
    it(`${stream ? "streamed" : "not streamed"}: a job waiting out a Retry-After between tries stays running, as GET says`, async () => {
      // A 429 with Retry-After 3 s, then an answer: the retry waits in the delayed set.
      stack.fake.script("up-b", { kind: "rate_limited", retryAfterSeconds: 3 });
      stack.fake.setDefault("up-b", { kind: "ok" });
      const request = stream ? chat("retry later", { stream: true }) : chat("retry later");
      const id = await stack.submit({ route: "retrying", request });
      let waiting = await stack.job(id);
      for (let tries = 0; tries < 40 && waiting.attempts.length === 0; tries++) {
        await sleep(50);
        waiting = await stack.job(id);
      }
      expect(waiting).toMatchObject({ status: "running", attempts: [{ reason: "rate_limited" }] });
      await sleep(300);
      const now = await readEvents(`${stack.api.url}/v1/jobs/${id}/events`, { timeoutMs: 700 });
      expect(now.ended).toBe(false);
      expect(statuses(now.events)).toEqual(["queued", "running"]);
      const [job] = await stack.waitAll([id], 20_000);
      expect(job?.status).toBe("succeeded");
    });
  }

  it("a reader that follows the whole wait sees queued, then running again", async () => {
    stack.fake.setDefault("up-a", { kind: "ok", delayMs: 20 });
    const ids = await stack.submitMany(4, (index) => ({ request: chat(`follow ${index}`) }));
    const last = ids.at(-1) as string;
    const followed = await readEvents(`${stack.api.url}/v1/jobs/${last}/events`, { timeoutMs: 20_000 });
    expect(followed.ended).toBe(true);
    const seen = statuses(followed.events);
    const queuedAgain = seen.lastIndexOf("queued");
    expect(queuedAgain).toBeGreaterThan(seen.indexOf("running"));
    expect(seen.slice(queuedAgain + 1)).toEqual(["running", "succeeded"]);
  });
});
