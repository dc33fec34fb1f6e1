/**
 * No secret in any log line or in Redis. The real API and worker processes run at LOG_LEVEL=trace
 * with tenants whose API keys and webhook secrets are distinctive random strings, and provider
 * keys likewise; they do real work (fallbacks past a 500 and an upstream 401, signed webhooks
 * delivered and dead and retried, a streamed job read over SSE, a batch, bad keys, admin calls).
 * Then every captured stdout/stderr line of both processes, and every key and value under the
 * test's Redis prefix, is searched for each secret.
 */
import { randomBytes } from "node:crypto";
import { createRedis } from "@cascade/shared";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  type CascadeProcess,
  makeTempDir,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { dumpKeys } from "../support/redis-dump.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";
import { runSecretWorkload } from "./secret-workload.js";

const distinctive = (label: string) => `${label}-${randomBytes(16).toString("hex")}`;
const webhookSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

/** Every secret, by what it is (the label shows in a failure, never the secret itself). */
const SECRETS = {
  "acme API key": distinctive("sk-acme"),
  "acme second API key": distinctive("sk-acme2"),
  "globex API key": distinctive("sk-globex"),
  "acme webhook secret": webhookSecret(),
  "globex webhook secret": webhookSecret(),
  "upstream provider key": distinctive("sk-upstream"),
  "rejected provider key": distinctive("sk-rejected"),
};

/** The strings to search for: each secret, and a whsec_ secret's key material on its own too. */
function needles(): Array<{ label: string; text: string }> {
  return Object.entries(SECRETS).flatMap(([label, secret]) => [
    { label, text: secret },
    ...(secret.startsWith("whsec_") ? [{ label: `${label} (without whsec_)`, text: secret.slice(6) }] : []),
  ]);
}

let fake: FakeOpenAI;
let sink: WebhookSink;
let dir: TempDir;
let api: CascadeApi;
let worker: CascadeProcess;
let redis: Redis;
const prefix = uniquePrefix("secrets");

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: SECRETS["upstream provider key"] });
  sink = await startWebhookSink();
  dir = makeTempDir();
  redis = createRedis(inject("redisUrl")) as Redis;
  const config = {
    providers: {
      up: { type: "openai", base_url: fake.url, api_key_env: "SECRETS_UP_KEY" },
      // The fake only takes the upstream key: this provider's calls are refused with a 401.
      locked: { type: "openai", base_url: fake.url, api_key_env: "SECRETS_LOCKED_KEY" },
    },
    models: {
      good: { provider: "up", name: "up-good" },
      broken: { provider: "up", name: "up-broken" },
      refused: { provider: "locked", name: "up-good" },
    },
    routes: {
      default: { chain: [{ model: "broken" }, { model: "refused" }, { model: "good" }] },
      doomed: { chain: [{ model: "broken" }, { model: "refused" }] },
    },
    tenants: {
      acme: { api_keys_env: "SECRETS_ACME_KEYS", webhook_secret_env: "SECRETS_ACME_WHSEC", admin: true },
      globex: { api_keys_env: "SECRETS_GLOBEX_KEYS", webhook_secret_env: "SECRETS_GLOBEX_WHSEC" },
    },
    webhooks: { allow_private_networks: true, max_attempts: 2, retry_schedule_ms: [200] },
  };
  const env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: prefix,
    CASCADE_CONFIG: dir.write("cascade.json", config),
    LOG_LEVEL: "trace",
    WORKER_CONCURRENCY: "4",
    SECRETS_UP_KEY: SECRETS["upstream provider key"],
    SECRETS_LOCKED_KEY: SECRETS["rejected provider key"],
    SECRETS_ACME_KEYS: `${SECRETS["acme API key"]},${SECRETS["acme second API key"]}`,
    SECRETS_GLOBEX_KEYS: SECRETS["globex API key"],
    SECRETS_ACME_WHSEC: SECRETS["acme webhook secret"],
    SECRETS_GLOBEX_WHSEC: SECRETS["globex webhook secret"],
  };
  [api, worker] = await Promise.all([startApi({ env }), startWorker({ env })]);
  fake.setDefault("up-broken", { kind: "server_error" });
  await runSecretWorkload({ api, sink, secrets: SECRETS });
  // SIGTERM, so both processes flush their buffered log lines before the search.
  await stopAllCascadeProcesses(10_000);
}, 120_000);

afterAll(async () => {
  await stopAllCascadeProcesses();
  await fake?.close();
  await sink?.close();
  redis?.disconnect();
  dir?.cleanup();
});

describe("no secret in any log line or in Redis", () => {
  it("the workload really ran: signed webhooks, an upstream that saw the key, trace-level lines", () => {
    expect(sink.requests.some((request) => request.headers["webhook-signature"]?.startsWith("v1,"))).toBe(
      true,
    );
    expect(
      fake.calls.some((call) => call.headers.authorization === `Bearer ${SECRETS["upstream provider key"]}`),
    ).toBe(true);
    expect(
      fake.calls.some((call) => call.headers.authorization === `Bearer ${SECRETS["rejected provider key"]}`),
    ).toBe(true);
    const levels = new Set([...api.logs(), ...worker.logs()].map((line) => line.level));
    expect(
      [...levels].some((level) => level <= 20),
      "no debug or trace line was logged",
    ).toBe(true);
  });

  it("no stdout or stderr line of the API or the worker holds a secret", () => {
    const found: string[] = [];
    for (const proc of [api, worker]) {
      const lines = [...proc.stdout, ...proc.stderr];
      expect(lines.length, `${proc.name} logged nothing`).toBeGreaterThan(0);
      for (const { label, text } of needles()) {
        const line = lines.find((candidate) => candidate.includes(text));
        // The line with the secret masked, so the failure message does not leak it either.
        if (line) found.push(`${proc.name}: ${label} in ${line.replaceAll(text, "<SECRET>").slice(0, 600)}`);
      }
    }
    expect(found).toEqual([]);
  });

  it("no key or value under the test's Redis prefix holds a secret", async () => {
    const dumped = await dumpKeys(redis, `*${prefix}*`);
    expect(dumped.length, "nothing in Redis under the prefix").toBeGreaterThan(10);
    expect(dumped.some((entry) => entry.type === "hash")).toBe(true);
    const found: string[] = [];
    for (const entry of dumped) {
      for (const { label, text } of needles()) {
        if (entry.key.includes(text) || entry.values.some((value) => value.includes(text))) {
          found.push(`${label} in ${entry.type} ${entry.key}`);
        }
      }
    }
    expect(found).toEqual([]);
  });
});
