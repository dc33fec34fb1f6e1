/**
 * End to end (API + one worker process, the fake OpenAI over real HTTP): a worker opens as many
 * upstream connections to a provider as it has job slots (WORKER_CONCURRENCY, ADR 0022), so with
 * 150 slots 150 slow calls are in flight at once (one Agent capped at 128 per origin held the
 * 129th until the first answered).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { chatRequest, FAKE_KEY_VALUE, fakeConfig, postJob, until, waitForTerminal } from "./helpers.js";

const SLOTS = 150;
const ANSWER_AFTER_MS = 8000;

let fake: FakeOpenAI;
let dir: TempDir;
let api: CascadeApi;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  dir = makeTempDir();
  const env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("connections"),
    CASCADE_CONFIG: dir.write("cascade.json", fakeConfig(fake.url, { primaryTimeoutMs: 30_000 })),
    FAKE_KEY: FAKE_KEY_VALUE,
    LOG_LEVEL: "info",
    WORKER_CONCURRENCY: String(SLOTS),
  };
  [api] = await Promise.all([startApi({ env }), startWorker({ env })]);
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  await fake?.close();
  dir?.cleanup();
});

describe("upstream connections of a worker", () => {
  it(`has all ${SLOTS} job slots calling one provider at once, each on its own connection`, async () => {
    fake.setDefault("up-primary", { kind: "ok", content: "slow", delayMs: ANSWER_AFTER_MS });
    const ids: string[] = [];
    for (let batch = 0; batch < SLOTS; batch += 50) {
      const created = await Promise.all(
        Array.from({ length: 50 }, (_, index) =>
          postJob(api.url, { request: chatRequest(`job ${batch + index}`) }),
        ),
      );
      for (const answer of created) {
        expect(answer.status).toBe(202);
        ids.push(answer.body.id);
      }
    }
    await until(
      () => fake.callsFor("up-primary").length >= SLOTS,
      `${SLOTS} upstream calls`,
      ANSWER_AFTER_MS,
    );
    const calls = fake.callsFor("up-primary");
    const arrivals = calls.map((call) => call.at);
    // All arrived before the first could have been answered: they were in flight together.
    expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeLessThan(ANSWER_AFTER_MS);
    expect(new Set(calls.map((call) => call.connectionId)).size).toBe(SLOTS);
    const jobs = await Promise.all(ids.map((id) => waitForTerminal(api.url, id, 30_000)));
    expect(jobs.every((job) => job.status === "succeeded")).toBe(true);
  }, 60_000);
});
