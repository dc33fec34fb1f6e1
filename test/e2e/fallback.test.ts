/**
 * End to end, as separate processes (API + one worker on a real Redis, the fake OpenAI upstream
 * over real HTTP): a job whose first model answers 500 falls back to the second and succeeds with
 * an OpenAI chat.completion; a job whose every hop fails ends `all_models_failed`; the worker logs
 * one JSON line per hop (`current_model`, `fallback_reason`) and never logs the prompt or the key.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type FakeOpenAI, startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeApi,
  type CascadeProcess,
  type LogLine,
  makeTempDir,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { chatRequest, FAKE_KEY_VALUE, fakeConfig, postJob, waitForTerminal } from "./helpers.js";

const PROMPT_OK = "Summarise the quarterly report for zebra-marmalade-7731";
const PROMPT_FAIL = "Translate the confidential memo about walrus-saffron-4402";
/** Quoted back by the upstream's 400, as vLLM's and LiteLLM's validation errors quote their input. */
const PROMPT_ECHOED = 'Draft the "secret" merger letter\nfor pelican-quartz-9120';

let fake: FakeOpenAI;
let dir: TempDir;
let api: CascadeApi;
let worker: CascadeProcess;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  dir = makeTempDir();
  const env = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("fallback"),
    CASCADE_CONFIG: dir.write("cascade.json", fakeConfig(fake.url)),
    FAKE_KEY: FAKE_KEY_VALUE,
    LOG_LEVEL: "info",
    WORKER_CONCURRENCY: "4",
    WORKER_LOCK_DURATION_MS: "2000",
  };
  [api, worker] = await Promise.all([startApi({ env }), startWorker({ env })]);
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  await fake?.close();
  dir?.cleanup();
});

/** The worker's per-hop lines for one job (lines carrying current_model). */
const hopLines = (jobId: string): LogLine[] =>
  worker.logs().filter((log) => log.job_id === jobId && "current_model" in log);

describe("fallback across separate API and worker processes", () => {
  it("falls back from a 500 to the backup model and returns an OpenAI chat.completion", async () => {
    fake.setDefault("up-primary", { kind: "server_error" });
    fake.setDefault("up-backup", { kind: "ok", content: "backup says hello" });

    const created = await postJob(api.url, { request: chatRequest(PROMPT_OK), metadata: { doc: "42" } });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({
      object: "job",
      status: "queued",
      route: "default",
      metadata: { doc: "42" },
    });
    expect(created.body.id).toMatch(/^job_/);

    const job = await waitForTerminal(api.url, created.body.id, 20_000);
    expect(job).toMatchObject({
      id: created.body.id,
      object: "job",
      status: "succeeded",
      model: "backup",
      provider: "fake",
      error: null,
    });
    expect(job.attempts).toHaveLength(2);
    expect(job.attempts[0]).toMatchObject({
      model: "primary",
      provider: "fake",
      outcome: "error",
      reason: "server_error",
      http_status: 500,
    });
    expect(job.attempts[1]).toMatchObject({ model: "backup", provider: "fake", outcome: "success" });
    expect(job.attempts[1].reason).toBeUndefined();
    for (const attempt of job.attempts) expect(attempt.duration_ms).toBeGreaterThanOrEqual(0);

    expect(job.result).toMatchObject({ object: "chat.completion", model: "backup" });
    expect(job.result.choices[0]).toMatchObject({
      index: 0,
      finish_reason: "stop",
      message: { role: "assistant", content: "backup says hello" },
    });
    expect(job.result.usage.prompt_tokens).toBeGreaterThan(0);
    expect(job.result.usage.total_tokens).toBe(
      job.result.usage.prompt_tokens + job.result.usage.completion_tokens,
    );
    expect(typeof job.cost_usd).toBe("number");
    expect(job.cost_usd).toBeGreaterThan(0);
    expect(job.started_at).toBeGreaterThanOrEqual(job.created_at);
    expect(job.finished_at).toBeGreaterThanOrEqual(job.started_at);

    // The upstream saw both models by their upstream names, with our key.
    const [primaryCall] = fake.callsFor("up-primary");
    const [backupCall] = fake.callsFor("up-backup");
    expect(fake.callsFor("up-primary")).toHaveLength(1);
    expect(fake.callsFor("up-backup")).toHaveLength(1);
    expect(primaryCall?.path).toBe("/v1/chat/completions");
    expect(primaryCall?.headers.authorization).toBe(`Bearer ${FAKE_KEY_VALUE}`);
    expect(backupCall?.body.messages).toEqual([{ role: "user", content: PROMPT_OK }]);

    // One JSON log line per hop, naming the model and why it fell back.
    await worker.waitForLog((log) => log.job_id === job.id && log.current_model === "backup");
    const lines = hopLines(job.id);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ current_model: "primary", fallback_reason: "server_error", hop: 0 });
    expect(lines[1]).toMatchObject({ current_model: "backup", outcome: "success", hop: 1 });
  });

  it("fails with all_models_failed when every hop fails (500, then 429 with retry-after)", async () => {
    fake.reset();
    fake.script("up-primary", { kind: "server_error" });
    fake.script("up-backup", { kind: "rate_limited", retryAfterSeconds: 1 });

    const created = await postJob(api.url, { request: chatRequest(PROMPT_FAIL) });
    expect(created.status).toBe(202);
    const job = await waitForTerminal(api.url, created.body.id, 20_000);

    expect(job).toMatchObject({ status: "failed", result: null, model: null });
    expect(job.error).toMatchObject({ type: "all_models_failed" });
    expect(typeof job.error.message).toBe("string");
    expect(job.attempts).toHaveLength(2);
    expect(job.attempts[0]).toMatchObject({
      model: "primary",
      outcome: "error",
      reason: "server_error",
      http_status: 500,
    });
    expect(job.attempts[1]).toMatchObject({
      model: "backup",
      outcome: "error",
      reason: "rate_limited",
      http_status: 429,
    });
    expect(fake.callsFor("up-primary")).toHaveLength(1);
    expect(fake.callsFor("up-backup")).toHaveLength(1);

    await worker.waitForLog((log) => log.job_id === job.id && log.current_model === "backup");
    const lines = hopLines(job.id);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ current_model: "primary", fallback_reason: "server_error" });
    expect(lines[1]).toMatchObject({ current_model: "backup", fallback_reason: "rate_limited" });
  });

  it("falls back on a connection reset (network_error) and on a hang past timeout_ms (timeout)", async () => {
    fake.reset();
    fake.setDefault("up-backup", { kind: "ok" });
    fake.script("up-primary", { kind: "reset" }, { kind: "hang" });

    const reset = await postJob(api.url, { request: chatRequest("first: the connection drops") });
    const resetJob = await waitForTerminal(api.url, reset.body.id, 20_000);
    expect(resetJob).toMatchObject({ status: "succeeded", model: "backup" });
    expect(resetJob.attempts[0]).toMatchObject({
      model: "primary",
      outcome: "error",
      reason: "network_error",
    });

    const hung = await postJob(api.url, { request: chatRequest("second: the upstream hangs") });
    const hungJob = await waitForTerminal(api.url, hung.body.id, 20_000);
    expect(hungJob).toMatchObject({ status: "succeeded", model: "backup" });
    expect(hungJob.attempts[0]).toMatchObject({ model: "primary", outcome: "error", reason: "timeout" });
    // Bounded by the hop's timeout_ms (2000), end to end.
    expect(hungJob.attempts[0].duration_ms).toBeGreaterThanOrEqual(1_900);
    expect(hungJob.attempts[0].duration_ms).toBeLessThan(5_000);
    expect(hungJob.result.choices[0].message.content).toBe("Echo: second: the upstream hangs");
  });

  it("keeps a prompt an upstream's error quotes out of the log (the tenant still reads it in the attempt)", async () => {
    fake.script("up-primary", { kind: "status", status: 400, echoMessages: true });
    const created = await postJob(api.url, { request: chatRequest(PROMPT_ECHOED), models: ["primary"] });
    expect(created.status).toBe(202);
    const job = await waitForTerminal(api.url, created.body.id, 20_000);
    expect(job).toMatchObject({ status: "failed", error: { type: "bad_request" } });
    expect(job.attempts[0].message).toContain("pelican-quartz-9120");
    // The gateway's hop lines are the API's.
    fake.script("up-primary", { kind: "status", status: 400, echoMessages: true });
    const answer = await fetch(`${api.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "primary", ...chatRequest(PROMPT_ECHOED) }),
    });
    expect(answer.status).toBe(400);
    const hop = await worker.waitForLog(
      (log) => log.job_id === created.body.id && log.fallback_reason === "bad_request",
    );
    expect(hop.detail).toContain("[redacted]");
    await api.waitForLog((log) => log.fallback_reason === "bad_request" && typeof log.detail === "string");
  });

  it("never logs the prompt or the provider API key (worker and API)", async () => {
    for (const proc of [worker, api]) {
      const output = [...proc.stdout, ...proc.stderr];
      expect(output.length).toBeGreaterThan(0);
      for (const secret of [
        PROMPT_OK,
        PROMPT_FAIL,
        "zebra-marmalade",
        "walrus-saffron",
        "pelican-quartz",
        FAKE_KEY_VALUE,
      ]) {
        const leaks = output.filter((line) => line.includes(secret));
        expect(leaks, `${proc.name} logged "${secret}"`).toEqual([]);
      }
    }
  });
});
