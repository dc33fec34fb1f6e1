/**
 * Real work through the API for the secrets test, touching every path a secret could leak
 * through: auth (good keys, bad keys, another tenant's), fallbacks past an upstream 500 and 401,
 * signed webhooks (delivered, dead, retried), a streamed job over SSE, an Idempotency-Key, a
 * batch with its files, and admin calls. Asserts only that the work happened as intended.
 */
import { expect } from "vitest";
import { findFreePort } from "../support/redis-server.js";
import type { WebhookSink } from "../support/webhook-sink.js";

interface Workload {
  api: { url: string };
  sink: WebhookSink;
  secrets: Record<string, string>;
}

// biome-ignore lint/suspicious/noExplicitAny: the workload reads whatever JSON the API answered.
type Json = any;

export async function runSecretWorkload({ api, sink, secrets }: Workload): Promise<void> {
  const acme = `Bearer ${secrets["acme API key"]}`;
  const acmeSecond = `Bearer ${secrets["acme second API key"]}`;
  const globex = `Bearer ${secrets["globex API key"]}`;
  const call = async (method: string, path: string, authorization?: string, body?: unknown, headers = {}) => {
    const response = await fetch(`${api.url}${path}`, {
      method,
      headers: {
        ...(authorization !== undefined ? { authorization } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let json: Json;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: response.status, json, text };
  };
  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline)
        throw new Error(`secret workload: ${what} did not happen within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const terminal = async (id: string, authorization: string) => {
    let job: Json;
    await waitFor(`job ${id} ending`, async () => {
      job = (await call("GET", `/v1/jobs/${id}?wait=5`, authorization)).json;
      return ["succeeded", "failed", "cancelled"].includes(job?.status);
    });
    return job;
  };
  const message = (content: string) => ({ messages: [{ role: "user", content }], max_tokens: 16 });

  // Falls back past the upstream 500 and the 401 of the refused key; the webhook is delivered.
  const succeeded = await call("POST", "/v1/jobs", acme, {
    request: message("first"),
    webhook: { url: sink.url },
    metadata: { case: "fallback" },
  });
  expect(succeeded.status, succeeded.text).toBe(202);
  const first = await terminal(succeeded.json.id, acme);
  expect(first.status).toBe("succeeded");
  const reasons = first.attempts.map((attempt: Json) => attempt.reason);
  expect(reasons).toContain("server_error");
  expect(reasons).toContain("auth_error");

  // Every hop fails; the webhook goes to a port nothing listens on, dies, and is retried.
  const closedPort = await findFreePort();
  const doomed = await call("POST", "/v1/jobs", acme, {
    request: message("second"),
    route: "doomed",
    webhook: { url: `http://127.0.0.1:${closedPort}/gone` },
  });
  expect((await terminal(doomed.json.id, acme)).status).toBe("failed");
  let deliveryId = "";
  await waitFor("a dead delivery", async () => {
    const dead = await call("GET", "/v1/webhook-deliveries?status=dead", acme);
    deliveryId = dead.json?.data?.find((delivery: Json) => delivery.job_id === doomed.json.id)?.id ?? "";
    return deliveryId !== "";
  });
  expect((await call("POST", `/v1/webhook-deliveries/${deliveryId}/retry`, acme)).status).toBe(202);

  // Streamed, read over SSE to the end, by the other tenant.
  const streamed = await call("POST", "/v1/jobs", globex, {
    request: { ...message("third"), stream: true },
    webhook: { url: sink.url },
  });
  expect(streamed.status, streamed.text).toBe(202);
  const events = await fetch(`${api.url}/v1/jobs/${streamed.json.id}/events`, {
    headers: { authorization: globex },
    signal: AbortSignal.timeout(20_000),
  });
  expect(await events.text()).toContain("event: done");

  // The same request twice under one Idempotency-Key; then the key with another body (422).
  const idempotent = { request: message("fourth") };
  const once = await call("POST", "/v1/jobs", acmeSecond, idempotent, { "idempotency-key": "secrets-1" });
  const twice = await call("POST", "/v1/jobs", acmeSecond, idempotent, { "idempotency-key": "secrets-1" });
  expect(twice.json.id).toBe(once.json.id);
  const changed = { request: message("changed") };
  expect(
    (await call("POST", "/v1/jobs", acmeSecond, changed, { "idempotency-key": "secrets-1" })).status,
  ).toBe(422);

  // Bad keys, near misses of good ones, and another tenant's job.
  for (const authorization of [
    `${acme}x`,
    `Basic ${secrets["acme API key"]}`,
    secrets["acme API key"] as string,
    "Bearer",
    undefined,
  ]) {
    expect((await call("GET", `/v1/jobs/${succeeded.json.id}`, authorization)).status).toBe(401);
  }
  expect((await call("GET", `/v1/jobs/${succeeded.json.id}`, globex)).status).toBe(404);
  expect((await call("GET", "/metrics", globex)).status).toBe(403);

  // A batch: upload, create, run to completion, read the output.
  const form = new FormData();
  form.append("purpose", "batch");
  const line = (id: string) =>
    JSON.stringify({
      custom_id: id,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "default", ...message(id) },
    });
  form.append("file", new Blob([`${line("one")}\n${line("two")}\n`]), "input.jsonl");
  const file = await fetch(`${api.url}/v1/files`, {
    method: "POST",
    headers: { authorization: acme },
    body: form,
  });
  const fileId = ((await file.json()) as Json).id;
  const batch = await call("POST", "/v1/batches", acme, {
    input_file_id: fileId,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  expect(batch.status, batch.text).toBe(200);
  let outputFileId = "";
  await waitFor("the batch completing", async () => {
    const current = (await call("GET", `/v1/batches/${batch.json.id}`, acme)).json;
    outputFileId = current?.output_file_id ?? "";
    return current?.status === "completed";
  });
  expect((await call("GET", `/v1/files/${outputFileId}/content`, acme)).text).toContain('"custom_id":"one"');

  // Admin and read-only calls.
  expect((await call("GET", "/metrics", acme)).status).toBe(200);
  expect((await call("POST", "/v1/providers/up/breaker", acme, { state: "closed" })).status).toBe(200);
  expect((await call("POST", "/v1/providers/up/breaker", acme, { state: "auto" })).status).toBe(200);
  expect((await call("GET", "/v1/providers", globex)).status).toBe(200);
  expect((await call("GET", "/v1/usage", acme)).status).toBe(200);

  // The signed deliveries (the fallback job's and the streamed job's) reached the sink.
  await sink.waitForRequests(2, 20_000);
}
