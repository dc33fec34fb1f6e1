/**
 * Sends one fuzzed request and checks what must hold for every request, whatever it was:
 * no 5xx; errors in the contract's shape; nothing under /v1 (or /metrics) answered 2xx without a
 * valid (admin) key;
 * whatever was accepted can be read back by its owner (a 202 job, a stored file, a batch).
 */
import { expect } from "vitest";
import type { FuzzRequest } from "./arbitraries/endpoint-requests.js";
import type { FuzzStack, Tenant } from "./fuzz-stack.js";
import type { WireRequest, WireResponse } from "./wire-client.js";

/** The request as it goes on the wire (ids resolved against what exists now). */
export function materialize(fuzz: FuzzStack, request: FuzzRequest): WireRequest {
  const tenant = tenantOf(request);
  const id = request.idKind && request.id ? fuzz.resolveId(request.idKind, request.id, tenant) : "";
  const headers: Record<string, string> = { ...request.headers, ...fuzz.authorization(request.caller) };
  const raw: WireRequest = {
    method: request.method,
    path: request.template.replace(":id", id) + request.query,
    headers,
  };
  const body = request.body;
  if (!body) return raw;
  if (request.contentType !== undefined) headers["content-type"] = request.contentType;
  switch (body.kind) {
    case "json":
      raw.body = JSON.stringify(body.value) ?? "";
      break;
    case "text":
      raw.body = body.text;
      break;
    case "multipart":
      headers["content-type"] = body.upload.contentType;
      raw.body = body.upload.body;
      break;
    case "batch":
      // The chosen file first, so a mutation that set input_file_id to something else wins.
      raw.body = JSON.stringify({
        input_file_id: fuzz.resolveId("file", body.inputFile, tenant),
        ...(body.value as object),
      });
      break;
  }
  return raw;
}

/** One line describing the exchange, for assertion messages (bodies cut short). */
export function describeExchange(request: WireRequest, response?: WireResponse): string {
  const body =
    request.body === undefined ? "" : ` body=${JSON.stringify(String(request.body).slice(0, 400))}`;
  const sent = `${request.method} ${request.path} headers=${JSON.stringify(request.headers)}${body}`;
  if (!response) return sent;
  return `${sent}\n  -> ${response.status} ${response.text.slice(0, 400)}`;
}

function tenantOf(request: FuzzRequest): Tenant | undefined {
  return request.caller.kind === "tenant" ? request.caller.tenant : undefined;
}

/** Sends `request`, checks the invariants, reads back what it created; returns the answer. */
export async function exchange(fuzz: FuzzStack, request: FuzzRequest): Promise<WireResponse> {
  const raw = materialize(fuzz, request);
  const response = await fuzz.send(raw);
  const described = describeExchange(raw, response);
  const outcome = `${raw.method} ${request.template} ${response.status}`;
  fuzz.outcomes.set(outcome, (fuzz.outcomes.get(outcome) ?? 0) + 1);
  expect(response.status, `a 5xx for\n${described}`).toBeLessThan(500);
  if (response.status >= 400 && raw.method !== "HEAD") {
    expect(typeof response.json?.error?.type, `error without {"error": {"type"}} for\n${described}`).toBe(
      "string",
    );
    expect(typeof response.json?.error?.message, `error without a message for\n${described}`).toBe("string");
  }
  const tenant = tenantOf(request);
  const succeeded = response.status >= 200 && response.status < 300;
  if (!tenant && (raw.path.startsWith("/v1") || raw.path.startsWith("/metrics"))) {
    expect(succeeded, `2xx without a valid key for\n${described}`).toBe(false);
  }
  if (tenant !== "acme" && raw.path.startsWith("/metrics")) {
    expect(succeeded, `/metrics answered 2xx without an admin key for\n${described}`).toBe(false);
  }
  if (tenant && request.body?.kind === "multipart" && request.body.upload.expectedContent !== undefined) {
    // The API decodes no body: one sent with a coding other than identity is a 415, whatever it holds.
    const coding = raw.headers?.["content-encoding"];
    if (coding === undefined || coding.toLowerCase() === "identity") {
      expect(response.status, `a valid upload was refused:\n${described}`).toBe(200);
    } else {
      expect(
        response.status,
        `an upload sent with content-encoding ${coding} was not a 415:\n${described}`,
      ).toBe(415);
    }
  }
  if (tenant && response.status < 300) await readBack(fuzz, request, tenant, raw, response, described);
  return response;
}

async function readBack(
  fuzz: FuzzStack,
  request: FuzzRequest,
  tenant: Tenant,
  raw: WireRequest,
  response: WireResponse,
  described: string,
): Promise<void> {
  const auth = fuzz.authorization(request.caller);
  const get = (path: string) => fuzz.send({ method: "GET", path, headers: auth });
  const route = `${raw.method} ${request.template}`;
  if (route === "POST /v1/jobs") {
    const id = response.json?.id;
    expect(id, `an accepted job without an id:\n${described}`).toMatch(/^job_/);
    const read = await get(`/v1/jobs/${id}`);
    expect(read.status, `accepted job ${id} cannot be read back:\n${described}`).toBe(200);
    expect(read.json.id).toBe(id);
    fuzz.remember({ kind: "job", id, tenant });
  } else if (route === "POST /v1/files") {
    const id = response.json?.id;
    const read = await get(`/v1/files/${id}`);
    expect(read.status, `stored file ${id} cannot be read back:\n${described}`).toBe(200);
    expect(read.json.bytes).toBe(response.json.bytes);
    const content = await get(`/v1/files/${id}/content`);
    expect(content.status, `stored file ${id} has no content:\n${described}`).toBe(200);
    expect(Buffer.byteLength(content.text)).toBe(response.json.bytes);
    if (request.body?.kind === "multipart" && request.body.upload.expectedContent !== undefined) {
      expect(content.text, `file ${id} reads back different bytes:\n${described}`).toBe(
        request.body.upload.expectedContent,
      );
    }
    fuzz.remember({ kind: "file", id, tenant });
  } else if (route === "POST /v1/batches") {
    const id = response.json?.id;
    const read = await get(`/v1/batches/${id}`);
    expect(read.status, `created batch ${id} cannot be read back:\n${described}`).toBe(200);
    expect(read.json.input_file_id).toBe(response.json.input_file_id);
    fuzz.remember({ kind: "batch", id, tenant });
  } else if (raw.method === "POST" && request.template.endsWith("/breaker")) {
    // An override outlives the request: put the breaker back so later jobs are not all skipped.
    await fuzz.send({
      method: "POST",
      path: request.template,
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ state: "auto" }),
    });
  }
}

/** The process is still up and still reaches Redis. */
export async function expectStillServing(fuzz: FuzzStack): Promise<void> {
  const health = await fuzz.send({ method: "GET", path: "/healthz" });
  expect(health.status).toBe(200);
  const ready = await fuzz.send({ method: "GET", path: "/readyz" });
  expect(ready.status).toBe(200);
}
