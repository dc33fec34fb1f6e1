/**
 * A failed settlement is retried, not dropped (issue "Trust", item 4). The Resilience class on
 * real Redis, whose server refuses its scripts for a while: an ACL takes EVAL/EVALSHA away from
 * the Resilience's own user (every settle script answers NOPERM), then gives it back. Budget
 * corrections, lease give-backs and usage records of successes (batched), of
 * failures and of aborted calls must all be in Redis afterwards, exactly once:
 * also when a script ran but its answer was lost (a client-side timeout while Redis was paused).
 */
import { afterEach, describe, expect, it } from "vitest";
import { keysMatching, onEveryServer, testRedis } from "../support/redis-clients.js";
import {
  inlineConfig,
  NO_KEY_HASH,
  type ResilienceHarness,
  startResilience,
} from "./resilience-class-helpers.js";

const config = inlineConfig({
  providers: { p: { type: "simulated" } },
  // $1000 per million tokens: $0.001 a token.
  models: { a: { provider: "p", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
  routes: { default: { chain: [{ model: "a" }] } },
  tenants: {
    acme: { api_key_sha256: [NO_KEY_HASH], budget: { daily_usd: 100 }, user_budget: { daily_usd: 50 } },
  },
});
const ESTIMATE_USD = 0.01; // 10 tokens
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let harness: ResilienceHarness | undefined;
let user: string | undefined;
afterEach(async () => {
  await harness?.resilience.close(1_000);
  harness?.connection.disconnect();
  if (user && harness) await onEveryServer(harness.admin, "ACL", "DELUSER", user);
  harness?.admin.disconnect();
  harness = undefined;
});

/** A Resilience connected as its own ACL user, whose script rights the test can take away. */
async function startAsUser(label: string, options: { commandTimeout?: number } = {}) {
  // ACL users live on each server (a cluster does not replicate them): set on every node.
  const admin = testRedis(undefined, { maxRetriesPerRequest: 1 });
  user = `settle-${label}-${Math.random().toString(36).slice(2, 8)}`;
  await onEveryServer(admin, "ACL", "SETUSER", user, "on", ">secret", "~*", "&*", "+@all");
  admin.disconnect();
  const connection = testRedis(undefined, {
    username: user,
    password: "secret",
    maxRetriesPerRequest: 1,
    ...options,
  });
  harness = startResilience(config, label, { connection });
  return harness;
}

async function books(target: ResilienceHarness) {
  const spend = await keysMatching(target.admin, `${target.keys.bullPrefix}:spend:*`);
  const values: Record<string, number> = {};
  for (const key of spend)
    values[key.split(":spend:")[1]?.split(":d:")[0] ?? key] = Number(await target.admin.get(key));
  const usage = await keysMatching(target.admin, `${target.keys.bullPrefix}:usage:*`);
  const total = usage.length ? Number(await target.admin.hget(usage[0] as string, "total")) : 0;
  return { spend: values, usage: total };
}

/** Admits `count` calls of tenant acme, user u1, estimated at $0.01 each. */
async function admitCalls(target: ResilienceHarness, count: number) {
  const tickets = [];
  for (let index = 0; index < count; index += 1) {
    const admission = await target.resilience.admit(
      target.hop("a", { tenant: "acme", user: "u1", tokens: 10, costUsd: ESTIMATE_USD }),
    );
    if (!admission.admitted) throw new Error(`not admitted: ${admission.reason}`);
    tickets.push(admission.ticket);
  }
  return tickets;
}

describe("settlements while Redis refuses them", () => {
  it("successes, failures and aborted calls settled during a refusal are written once it ends", async () => {
    const target = await startAsUser("refuse");
    const tickets = await admitCalls(target, 10);
    await onEveryServer(target.admin, "ACL", "SETUSER", user as string, "-eval", "-evalsha");
    // 5 successes at $0.03 (batched), 3 server errors at $0, 2 aborted calls at $0.005.
    for (const ticket of tickets.slice(0, 5))
      await target.resilience.settle(ticket, {
        reason: undefined,
        promptTokens: 10,
        completionTokens: 20,
        costUsd: 0.03,
      });
    for (const ticket of tickets.slice(5, 8))
      await target.resilience.settle(ticket, { reason: "server_error" });
    for (const ticket of tickets.slice(8))
      await target.resilience.settle(ticket, {
        reason: undefined,
        aborted: true,
        promptTokens: 5,
        completionTokens: 0,
        costUsd: 0.005,
      });
    await target.resilience.flush();
    await sleep(400); // a few refused retries
    await onEveryServer(target.admin, "ACL", "SETUSER", user as string, "+@all");
    await target.resilience.close(10_000);
    const { spend, usage } = await books(target);
    const expected = 5 * 0.03 + 2 * 0.005;
    expect(usage).toBeCloseTo(expected, 9);
    expect(spend["tenant:acme"]).toBeCloseTo(expected, 9);
    expect(spend["user:acme:u1"]).toBeCloseTo(expected, 9);
  });

  it("a batch whose script ran but whose answer was lost is not applied twice", async () => {
    const target = await startAsUser("lost-reply", { commandTimeout: 150 });
    const tickets = await admitCalls(target, 4);
    for (const ticket of tickets)
      await target.resilience.settle(ticket, {
        reason: undefined,
        promptTokens: 10,
        completionTokens: 20,
        costUsd: 0.03,
      });
    // Redis holds every write for 600 ms; the client gives up after 150 ms, Redis runs it later.
    await onEveryServer(target.admin, "CLIENT", "PAUSE", "600", "WRITE");
    await target.resilience.flush();
    await sleep(800);
    await target.resilience.close(10_000);
    const { spend, usage } = await books(target);
    expect(usage).toBeCloseTo(4 * 0.03, 9);
    expect(spend["tenant:acme"]).toBeCloseTo(4 * 0.03, 9);
  });

  it("close() gives up after its bound when Redis keeps refusing", async () => {
    const target = await startAsUser("bounded");
    const [ticket] = await admitCalls(target, 1);
    await onEveryServer(target.admin, "ACL", "SETUSER", user as string, "-eval", "-evalsha");
    if (ticket)
      await target.resilience.settle(ticket, { reason: undefined, costUsd: 0.02, promptTokens: 20 });
    const started = Date.now();
    await target.resilience.close(800);
    expect(Date.now() - started).toBeLessThan(2_000);
    await onEveryServer(target.admin, "ACL", "SETUSER", user as string, "+@all");
  });
});
