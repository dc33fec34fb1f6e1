/**
 * A worker trusts a breaker it saw closed (and its provider not cooling down) for a second
 * without asking Redis, until a message on the breaker channel says something changed. Two races
 * let a worker call a provider that every other worker knew was cooling down (CI saw a call 30 ms
 * into a 3 s cooldown, test/e2e/resilience-cooldown.test.ts):
 *
 * - the settling worker published the change in a separate command after its script, so the
 *   cooldown was visible in Redis before the message went out;
 * - an admission whose round trip was in flight when the message arrived marked the provider
 *   clear again afterwards, from what it read before the change.
 *
 * Driven through two Resilience instances (two "workers") on the run's real Redis.
 */
import type { RedisClient } from "@cascade/shared";
import { afterEach, describe, expect, it } from "vitest";
import { serverNodes, testRedis } from "../support/redis-clients.js";
import { inlineConfig, type ResilienceHarness, startResilience } from "./resilience-class-helpers.js";

const config = inlineConfig({
  providers: { p: { type: "simulated" } },
  models: { a: { provider: "p" } },
  routes: { default: { chain: [{ model: "a" }] } },
});

const opened: Array<{ close(): Promise<void> } | RedisClient> = [];
afterEach(async () => {
  for (const item of opened.splice(0)) {
    if ("disconnect" in item) item.disconnect();
    else await item.close();
  }
});

function worker(label: string): ResilienceHarness {
  const harness = startResilience(config, label);
  opened.push(harness);
  return harness;
}

async function subscriberFor(harness: ResilienceHarness): Promise<RedisClient> {
  const subscriber = testRedis(undefined, { maxRetriesPerRequest: 1 });
  opened.push(subscriber);
  await harness.resilience.listen(subscriber as never);
  return subscriber;
}

describe("the in-process known-clear cache", () => {
  it("an admission in flight when a change is announced does not mark the provider clear again", async () => {
    const harness = worker("known-clear-race");
    const { resilience, hop } = harness;
    const subscriber = await subscriberFor(harness);

    // The admission's round trip starts; before its answer is read, a change is announced.
    const pending = resilience.admit(hop("a"));
    subscriber.emit("message", harness.keys.breakerChannel, "provider:p:changed");
    const first = await pending;
    expect(first.admitted).toBe(true);

    // The change: p cools down (written by another worker, whose message came before the answer).
    await harness.admin.hset(harness.keys.cooldown("provider", "p"), "until", Date.now() + 5_000);

    const next = await resilience.admit(hop("a"));
    expect(next).toMatchObject({ admitted: false, reason: "rate_limited" });
  });

  it("a 429's cooldown is announced by the script that writes it, before anyone can read it", async () => {
    const label = "known-clear-announce";
    const settling = worker(label);
    const listener = testRedis(undefined, { maxRetriesPerRequest: 1 });
    opened.push(listener);
    const messages: string[] = [];
    listener.on("message", (_channel: string, message: string) => messages.push(message));
    await listener.subscribe(settling.keys.breakerChannel);

    // Watch every command the server runs (each master of a cluster): the PUBLISH must come
    // from inside the settle script.
    const commands: Array<{ args: string[]; source: string }> = [];
    for (const server of await serverNodes(settling.admin, "master")) {
      const monitor = await server.monitor();
      opened.push(monitor);
      monitor.on("monitor", (_time: string, args: string[], source: string) =>
        commands.push({ args, source }),
      );
    }

    const admission = await settling.resilience.admit(settling.hop("a"));
    if (!admission.admitted) throw new Error("not admitted");
    await settling.resilience.settle(admission.ticket, { reason: "rate_limited", retryAfterMs: 3_000 });
    const deadline = Date.now() + 2_000;
    while (messages.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));

    expect(messages).toEqual(["provider:p:changed"]);
    const publishes = commands.filter(
      (command) =>
        command.args[0]?.toLowerCase() === "publish" && command.args[1] === settling.keys.breakerChannel,
    );
    expect(publishes).toHaveLength(1);
    expect(publishes[0]?.source).toBe("lua");
  });
});
