/**
 * Tenant acme's resources for the isolation fuzzer: a finished job (with a distinctive metadata
 * value and a webhook that died), a file and the batch run from it (with its output file), each
 * carrying markers that must never appear in an answer to anyone else.
 */
import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import type { FuzzStack } from "./fuzz-stack.js";
import { unsettled } from "./settle.js";

/** A request to one of acme's resources (or to a tenant route in general). */
export interface Target {
  method: string;
  path: string;
  body?: string;
  /** Names one of acme's resources: anyone else must get a 404 (not a 409 that admits it exists). */
  owned: boolean;
  /** Needs an admin key (acme is the only admin). */
  admin?: boolean;
  headers?: Record<string, string>;
}

export interface TenantFixture {
  /** Strings only acme's own answers may contain: ids, metadata, file content. */
  markers: string[];
  targets: Target[];
  jobId: string;
  fileId: string;
  fileContent: string;
  batchId: string;
  deliveryId: string;
  /** A job acme created with an Idempotency-Key, the key and the body it was sent with. */
  idempotentJobId: string;
  idempotencyKey: string;
  idempotentBody: string;
}

export async function createAcmeResources(fuzz: FuzzStack): Promise<TenantFixture> {
  const acme = fuzz.authorization({ kind: "tenant", tenant: "acme" });
  const json = { ...acme, "content-type": "application/json" };
  const marker = `acme-secret-${randomBytes(8).toString("hex")}`;

  const job = await fuzz.send({
    method: "POST",
    path: "/v1/jobs",
    headers: json,
    body: JSON.stringify({
      request: { messages: [{ role: "user", content: marker }] },
      route: "strict",
      metadata: { marker },
      webhook: { url: fuzz.webhookUrls[0] },
    }),
  });
  expect(job.status, job.text).toBe(202);
  const jobId: string = job.json.id;
  fuzz.remember({ kind: "job", id: jobId, tenant: "acme" });

  // Idempotency-Keys are scoped to the tenant: globex sending acme's key and body gets a job of
  // its own, never a replay of acme's.
  const idempotencyKey = `shared-${marker}`;
  const idempotentBody = JSON.stringify({ request: { messages: [{ role: "user", content: "same" }] } });
  const idempotent = await fuzz.send({
    method: "POST",
    path: "/v1/jobs",
    headers: { ...json, "idempotency-key": idempotencyKey },
    body: idempotentBody,
  });
  expect(idempotent.status, idempotent.text).toBe(202);
  fuzz.remember({ kind: "job", id: idempotent.json.id, tenant: "acme" });

  const fileContent = `${JSON.stringify({
    custom_id: marker,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "fast", messages: [{ role: "user", content: marker }], max_tokens: 8 },
  })}\n`;
  const boundary = `fuzz${randomBytes(6).toString("hex")}`;
  const upload = await fuzz.send({
    method: "POST",
    path: "/v1/files",
    headers: { ...acme, "content-type": `multipart/form-data; boundary=${boundary}` },
    body:
      `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="acme.jsonl"\r\n\r\n${fileContent}\r\n` +
      `--${boundary}--\r\n`,
  });
  expect(upload.status, upload.text).toBe(200);
  const fileId: string = upload.json.id;

  const batch = await fuzz.send({
    method: "POST",
    path: "/v1/batches",
    headers: json,
    body: JSON.stringify({
      input_file_id: fileId,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    }),
  });
  expect(batch.status, batch.text).toBe(200);
  const batchId: string = batch.json.id;
  fuzz.remember({ kind: "batch", id: batchId, tenant: "acme" });

  expect(await unsettled(fuzz, "job", 15_000)).toEqual([]);
  expect(await unsettled(fuzz, "batch", 15_000)).toEqual([]);
  const finished = await fuzz.send({ method: "GET", path: `/v1/batches/${batchId}`, headers: acme });
  const outputFileId: string = finished.json.output_file_id;
  expect(outputFileId, finished.text).toBeTruthy();

  // The sink answers 500 and max_attempts is 1: the job's webhook dies at its first delivery.
  let deliveryId: string | undefined;
  for (let tries = 0; tries < 50 && !deliveryId; tries++) {
    const dead = await fuzz.send({
      method: "GET",
      path: "/v1/webhook-deliveries?status=dead",
      headers: acme,
    });
    deliveryId = dead.json?.data?.find((delivery: { job_id: string }) => delivery.job_id === jobId)?.id;
    if (!deliveryId) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(deliveryId, "acme's webhook delivery never went dead").toBeTruthy();

  const owned = (method: string, path: string, body?: string): Target => ({
    method,
    path,
    owned: true,
    ...(body ? { body } : {}),
  });
  const anyTenant = (
    method: string,
    path: string,
    body?: string,
    admin = false,
    headers?: Record<string, string>,
  ): Target => ({
    method,
    path,
    owned: false,
    ...(body ? { body } : {}),
    ...(admin ? { admin } : {}),
    ...(headers ? { headers } : {}),
  });
  const targets: Target[] = [
    owned("GET", `/v1/jobs/${jobId}`),
    owned("GET", `/v1/jobs/${jobId}/events`),
    owned("DELETE", `/v1/jobs/${jobId}`),
    owned("GET", `/v1/files/${fileId}`),
    owned("GET", `/v1/files/${fileId}/content`),
    owned("GET", `/v1/files/${outputFileId}/content`),
    owned("DELETE", `/v1/files/${fileId}`),
    owned("GET", `/v1/batches/${batchId}`),
    owned("POST", `/v1/batches/${batchId}/cancel`),
    owned("POST", `/v1/webhook-deliveries/${deliveryId}/retry`),
    owned(
      "POST",
      "/v1/batches",
      JSON.stringify({ input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" }),
    ),
    anyTenant("GET", "/v1/files"),
    anyTenant("GET", "/v1/batches"),
    anyTenant("GET", "/v1/webhook-deliveries?status=dead"),
    anyTenant("GET", "/v1/usage"),
    anyTenant("GET", "/v1/providers"),
    anyTenant(
      "POST",
      "/v1/jobs",
      JSON.stringify({ request: { messages: [{ role: "user", content: "hi" }] } }),
    ),
    anyTenant("POST", "/v1/jobs", idempotentBody, false, { "idempotency-key": idempotencyKey }),
    anyTenant("GET", "/metrics", undefined, true),
    anyTenant("POST", "/v1/providers/sim/breaker", JSON.stringify({ state: "auto" }), true),
  ];
  return {
    markers: [marker, jobId, idempotent.json.id, fileId, outputFileId, batchId, deliveryId as string],
    targets,
    jobId,
    fileId,
    fileContent,
    batchId,
    deliveryId: deliveryId as string,
    idempotentJobId: idempotent.json.id,
    idempotencyKey,
    idempotentBody,
  };
}
