/**
 * Authentication is decided by the route Fastify matched, never by the URL's text. Every route
 * of the API is tried under many spellings of its path (percent-encoded letters and digits,
 * encoded slashes, dot segments, doubled slashes, trailing slashes, encoded path parameters)
 * with no key, a wrong key, another tenant's key and (for admin routes) a non-admin key: never a
 * 2xx that should not be, never another tenant's object, and no job created without a key.
 */
import { QUEUE_NAMES } from "@cascade/shared";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { spellings } from "../support/path-spellings.js";
import { rawRequest } from "../support/raw-path-request.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: {
    acme: { api_keys_env: "ACME_KEYS" },
    globex: { api_keys_env: "GLOBEX_KEYS" },
    ops: { api_keys_env: "OPS_KEYS", admin: true },
  },
};

const ACME = "Bearer acme-secret-key";
const GLOBEX = "Bearer globex-secret-key";
const OPS = "Bearer ops-secret-key";
/** acme's key as the password of HTTP Basic auth (what a browser sends to the queue board). */
const ACME_BASIC = `Basic ${Buffer.from("operator:acme-secret-key").toString("base64")}`;
/** Written into acme's objects; never in an answer to anyone else. */
const MARKER = "acme-private-marker-7f3a";

describe("authentication by matched route", () => {
  let stack: Stack;
  const ids = { job: "", file: "", batch: "" };

  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      withoutWorker: true,
      env: { ACME_KEYS: "acme-secret-key", GLOBEX_KEYS: "globex-secret-key", OPS_KEYS: "ops-secret-key" },
    });
    const job = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "hi" }] }, metadata: { note: MARKER } },
      headers: { authorization: ACME },
    });
    expect(job.status).toBe(202);
    ids.job = job.body.id;
    const form = new FormData();
    form.append("purpose", "batch");
    const line = {
      custom_id: MARKER,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "fast", messages: [{ role: "user", content: "hi" }] },
    };
    form.append("file", new Blob([`${JSON.stringify(line)}\n`]), `${MARKER}.jsonl`);
    const upload = await fetch(`${stack.url}/v1/files`, {
      method: "POST",
      body: form,
      headers: { authorization: ACME },
    });
    expect(upload.status).toBe(200);
    ids.file = ((await upload.json()) as { id: string }).id;
    const batch = await stack.request("POST", "/v1/batches", {
      body: {
        input_file_id: ids.file,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
        metadata: { note: MARKER },
      },
      headers: { authorization: ACME },
    });
    expect(batch.status).toBe(200);
    ids.batch = batch.body.id;
    // The batch's line is enqueued in the background: wait for it, so job counts stay still.
    for (let tries = 0; tries < 100 && (await countJobs()) < 2; tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await countJobs()).toBe(2);
  });
  afterAll(() => stack?.close());

  /** Every job in the completions queue, whatever its state. */
  async function countJobs(): Promise<number> {
    const queue = new Queue(QUEUE_NAMES.completions, {
      connection: stack.redis as never,
      prefix: `{${stack.config.settings.CASCADE_REDIS_PREFIX}}`,
    });
    const counts = await queue.getJobCounts();
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  }

  /** A concrete path and a body for each route of the table. */
  function concrete(method: string, url: string): { path: string; body?: string; type?: string } {
    const path = url
      .replace("/v1/jobs/:id", `/v1/jobs/${ids.job}`)
      .replace("/v1/files/:id", `/v1/files/${ids.file}`)
      .replace("/v1/batches/:id", `/v1/batches/${ids.batch}`)
      .replace("/v1/webhook-deliveries/:id", "/v1/webhook-deliveries/whd_missing")
      .replace("/v1/providers/:id", "/v1/providers/sim")
      .replace(/:[a-z_]+/g, "x");
    if (method !== "POST") return { path };
    if (url === "/v1/files") {
      const boundary = "----cascade-test";
      const body = [
        `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`,
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{}\n\r\n`,
        `--${boundary}--\r\n`,
      ].join("");
      return { path, body, type: `multipart/form-data; boundary=${boundary}` };
    }
    const bodies: Record<string, unknown> = {
      "/v1/jobs": { request: { messages: [{ role: "user", content: "no key" }] } },
      "/v1/batches": {
        input_file_id: ids.file,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      },
      "/v1/providers/:id/breaker": { state: "open" },
    };
    return { path, body: JSON.stringify(bodies[url] ?? {}), type: "application/json" };
  }

  it("serves the dashboard page (where an admin types a key) to no other site's frame", async () => {
    const page = await fetch(`${stack.url}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    const policy = page.headers.get("content-security-policy") ?? "";
    expect(policy).toContain("frame-ancestors 'none'");
    // Only the page's own files run in it, and it talks only to this API.
    expect(policy).toContain("default-src 'self'");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("declares every route public, tenant or admin, and only probes, docs and the dashboard page are public", () => {
    const table = stack.app.routeTable();
    expect(table.length).toBeGreaterThan(15);
    const publicRoutes = table.filter((route) => route.access === "public").map((route) => route.url);
    for (const url of publicRoutes) expect(url).toMatch(/^\/(healthz|readyz|docs|dashboard)/);
    for (const route of table.filter((entry) => entry.url.startsWith("/v1/"))) {
      expect(route.access, `${route.method} ${route.url}`).not.toBe("public");
    }
    expect(table.find((route) => route.url === "/metrics")?.access).toBe("admin");
    // bull-board's page, assets and API are walked below like every other route.
    const board = table.filter((route) => route.url.startsWith("/admin/queues"));
    expect(board.map((route) => route.url)).toEqual(
      expect.arrayContaining(["/admin/queues/", "/admin/queues/api/queues", "/admin/queues/static/*"]),
    );
    for (const route of board) expect(route.access, `${route.method} ${route.url}`).toBe("admin");
  });

  it("never answers 2xx to a missing, wrong or foreign key, whatever the spelling", async () => {
    const jobsBefore = await countJobs();
    const failures: string[] = [];
    let tried = 0;
    for (const route of stack.app.routeTable()) {
      if (route.access === "public") continue;
      const { path, body, type } = concrete(route.method, route.url);
      const callers: Array<[string, string | undefined]> = [
        ["no key", undefined],
        ["wrong key", "Bearer not-a-key"],
        ["malformed header", "Basic YWNtZTprZXk="],
      ];
      // Another tenant's key on acme's objects (routes with an id), or a non-admin on admin routes.
      if (route.url.includes(":id") && !route.url.startsWith("/v1/providers"))
        callers.push(["globex", GLOBEX]);
      if (route.access === "admin") {
        callers.push(["non-admin acme", ACME], ["non-admin acme (basic)", ACME_BASIC]);
      }
      for (const spelling of spellings(path)) {
        for (const [who, authorization] of callers) {
          const headers: Record<string, string> = {};
          if (authorization) headers.authorization = authorization;
          if (type) headers["content-type"] = type;
          const response = await rawRequest(stack.url, route.method, spelling, {
            headers,
            ...(body !== undefined ? { body } : {}),
            timeoutMs: 1_000,
          });
          tried += 1;
          const label = `${route.method} ${spelling} (${who}) -> ${response.status}`;
          if (response.status >= 200 && response.status < 300) failures.push(label);
          if (response.status >= 500) failures.push(`${label}: ${response.text.slice(0, 200)}`);
          if (response.text.includes(MARKER)) failures.push(`${label} leaked acme's object`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(tried).toBeGreaterThan(500);
    // No job was created by any of those requests.
    expect(await countJobs()).toBe(jobsBefore);
  });

  it("still serves the owner, under the spellings the router accepts", async () => {
    const own = await rawRequest(stack.url, "GET", `/%761/jobs/${ids.job}`, {
      headers: { authorization: ACME },
    });
    expect(own.status).toBe(200);
    expect(JSON.parse(own.text)).toMatchObject({ id: ids.job, metadata: { note: MARKER } });
    const usage = await rawRequest(stack.url, "GET", "/%76%31/usage", { headers: { authorization: ACME } });
    expect(usage.status).toBe(200);
    expect(JSON.parse(usage.text).tenant).toBe("acme");
    const metrics = await rawRequest(stack.url, "GET", "/metrics", { headers: { authorization: OPS } });
    expect(metrics.status).toBe(200);
  });

  it("keeps probes and the API docs public", async () => {
    for (const path of ["/healthz", "/readyz", "/docs", "/docs/json"]) {
      const response = await rawRequest(stack.url, "GET", path);
      expect(response.status, path).toBeLessThan(400);
    }
  });

  it("answers the issue's reproduction with 401", async () => {
    const created = await rawRequest(stack.url, "POST", "/%761/jobs", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ request: { messages: [{ role: "user", content: "x" }] } }),
    });
    expect(created.status).toBe(401);
    expect(JSON.parse(created.text).error.type).toBe("authentication_error");
    const usage = await rawRequest(stack.url, "GET", "/%76%31/usage");
    expect(usage.status).toBe(401);
  });
});
