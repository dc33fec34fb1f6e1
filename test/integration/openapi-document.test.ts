/**
 * The OpenAPI document at GET /docs (/docs/json) describes the endpoints as they answer: POST
 * /v1/jobs's 202 (and a replay's 200), the retry endpoints' 202, DELETE's 200/202/409, the public
 * probes with no bearer key, GET /metrics, and POST /v1/files's multipart body. Every operation
 * documented only `200 Default Response`, /healthz and /readyz fell under the global bearer
 * requirement, /metrics was hidden and the upload had no request body. Real API process.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { call } from "../e2e/helpers.js";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";

const ADMIN = "sk-audit-openapi-admin-4a1b";
let dir: TempDir;
let api: CascadeApi;
// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is read as JSON.
let doc: any;

beforeAll(async () => {
  dir = makeTempDir();
  const config = {
    providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
    models: { m: { provider: "sim" } },
    routes: { default: { chain: [{ model: "m" }] } },
    tenants: { ops: { api_keys_env: "OPENAPI_OPS_KEYS", admin: true } },
  };
  api = await startApi({
    env: {
      REDIS_URL: inject("redisUrl"),
      CASCADE_REDIS_PREFIX: uniquePrefix("openapi"),
      CASCADE_CONFIG: dir.write("cascade.json", config),
      OPENAPI_OPS_KEYS: ADMIN,
    },
  });
  const answer = await call(api.url, "GET", "/docs/json");
  expect(answer.status).toBe(200);
  doc = answer.body;
  expect(doc.openapi).toMatch(/^3\./);
});

afterAll(async () => {
  await stopAllCascadeProcesses();
  dir?.cleanup();
});

/** The security requirements in force for an operation (its own, else the document's). */
function effectiveSecurity(path: string, method: string): unknown[] {
  const operation = doc.paths?.[path]?.[method];
  expect(operation, `${method.toUpperCase()} ${path} in the document`).toBeDefined();
  return operation.security ?? doc.security ?? [];
}

describe("GET /docs (OpenAPI) describes the real endpoints", () => {
  it("documents POST /v1/jobs's 202, the status it answers", async () => {
    const created = await call(api.url, "POST", "/v1/jobs", ADMIN, {
      request: { messages: [{ role: "user", content: "hi" }], max_tokens: 5 },
    });
    expect(created.status).toBe(202);
    const responses = Object.keys(doc.paths["/v1/jobs"].post.responses ?? {});
    // It was ["200"] only.
    expect(responses, "POST /v1/jobs documented responses").toContain("202");
  });

  it("documents POST /v1/webhook-deliveries/{id}/retry's 202 (contract: → 202 with the delivery)", () => {
    const responses = Object.keys(doc.paths["/v1/webhook-deliveries/{id}/retry"].post.responses ?? {});
    expect(responses, "POST /v1/webhook-deliveries/{id}/retry documented responses").toContain("202");
  });

  it("does not document the public probes as needing a bearer key", async () => {
    for (const path of ["/healthz", "/readyz"]) {
      expect((await call(api.url, "GET", path)).status, `${path} without a key`).toBe(200);
      // It was the global [{ bearer: [] }].
      expect(effectiveSecurity(path, "get"), `security of GET ${path}`).toEqual([]);
    }
  });

  it("describes GET /metrics", async () => {
    expect((await call(api.url, "GET", "/metrics", ADMIN)).status).toBe(200);
    // It was hidden from the document.
    expect(Object.keys(doc.paths), "paths of the document").toContain("/metrics");
  });

  it("describes the body of POST /v1/files (a multipart upload)", () => {
    const upload = doc.paths["/v1/files"].post;
    // It had no requestBody at all.
    expect(upload.requestBody?.content?.["multipart/form-data"], "POST /v1/files requestBody").toBeDefined();
  });
});
