/**
 * bull-board at /admin/queues: its page, assets and JSON API answer an admin tenant's key only
 * (as a bearer header, or as the password of HTTP Basic auth for a browser), and an operator can
 * list, retry and remove Cascade's jobs through it.
 */
import { createRequire } from "node:module";
import { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { registerQueueBoard } from "../../packages/api/src/admin/queue-board.js";
import { type Stack, startStack } from "../support/cascade-stack.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: {
    ops: { api_keys_env: "OPS_KEYS", admin: true },
    acme: { api_keys_env: "ACME_KEYS" },
  },
};

const OPS = "Bearer ops-secret-key";
const ACME = "Bearer acme-secret-key";
const basic = (password: string) => `Basic ${Buffer.from(`operator:${password}`).toString("base64")}`;

describe("the queue board", () => {
  let stack: Stack;
  let jobId = "";

  beforeAll(async () => {
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      env: { OPS_KEYS: "ops-secret-key", ACME_KEYS: "acme-secret-key" },
    });
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "hi" }] } },
      headers: { authorization: ACME },
    });
    expect(created.status).toBe(202);
    jobId = created.body.id;
    const done = await stack.request("GET", `/v1/jobs/${jobId}?wait=10`, {
      headers: { authorization: ACME },
    });
    expect(done.body.status).toBe("succeeded");
  });
  afterAll(() => stack?.close());

  const get = (path: string, authorization?: string) =>
    fetch(`${stack.url}${path}`, { headers: authorization ? { authorization } : {} });

  it("lists its routes as admin routes open to Basic auth", () => {
    const board = stack.app.routeTable().filter((route) => route.url.startsWith("/admin/queues"));
    expect(board.length).toBeGreaterThan(20);
    for (const route of board) expect(route.access, `${route.method} ${route.url}`).toBe("admin");
  });

  it("asks a browser for a key: 401 with a Basic challenge, without one or with a wrong one", async () => {
    for (const authorization of [undefined, "Bearer not-a-key", basic("not-a-key"), basic("")]) {
      for (const path of ["/admin/queues", "/admin/queues/api/queues"]) {
        const response = await get(path, authorization);
        expect(response.status, `${path} ${authorization}`).toBe(401);
        expect(response.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
        expect(((await response.json()) as { error: { type: string } }).error.type).toBe(
          "authentication_error",
        );
      }
    }
  });

  it("refuses a tenant that is not an admin", async () => {
    const bearer = await get("/admin/queues/api/queues", ACME);
    expect(bearer.status).toBe(403);
    // Through Basic auth it is a 401 again, so the browser asks for another key.
    const browser = await get("/admin/queues", basic("acme-secret-key"));
    expect(browser.status).toBe(401);
    expect(browser.headers.get("www-authenticate")).toMatch(/^Basic/);
  });

  it("serves the page and its assets to an admin, by bearer or Basic auth", async () => {
    for (const authorization of [OPS, basic("ops-secret-key")]) {
      const page = await get("/admin/queues", authorization);
      expect(page.status).toBe(200);
      expect(page.headers.get("content-type")).toMatch(/text\/html/);
      expect(page.headers.get("x-frame-options")).toBe("DENY");
      const html = await page.text();
      expect(html).toMatch(/<base href="\/admin\/queues\/?"/);
      const script = /src="(static\/js\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script, "the page loads scripts from the board's static path").toBeDefined();
      const asset = `/admin/queues/${script}`;
      expect((await get(asset, authorization)).status).toBe(200);
      expect((await get(asset)).status).toBe(401);
    }
  });

  it("lists the completions queue with the job, and retries and removes it", async () => {
    const listed = await get("/admin/queues/api/queues?activeQueue=completions&status=completed", OPS);
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as {
      queues: Array<{ name: string; jobs: Array<{ id: string }> }>;
    };
    expect(body.queues.map((queue) => queue.name).sort()).toEqual(["completions", "webhooks"]);
    const completions = body.queues.find((queue) => queue.name === "completions");
    expect(completions?.jobs.map((job) => job.id)).toContain(jobId);

    const put = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${stack.url}/admin/queues/api/queues/completions${path}`, {
        method: "PUT",
        headers: { authorization: OPS, ...headers },
      });
    expect((await put(`/${jobId}/retry`, { authorization: ACME })).status).toBe(403);
    // A forged cross-site request carries the browser's credentials but not the board's origin.
    const forged = await put(`/${jobId}/retry`, { "sec-fetch-site": "cross-site" });
    expect(forged.status).toBe(403);
    const foreignOrigin = await put(`/${jobId}/retry`, { origin: "https://evil.example" });
    expect(foreignOrigin.status).toBe(403);

    expect((await put(`/${jobId}/retry`, { "sec-fetch-site": "same-origin" })).status).toBe(204);
    // The worker runs it again; it ends completed a second time.
    for (let tries = 0; tries < 100; tries += 1) {
      const job = await get(`/admin/queues/api/queues/completions/${jobId}`, OPS);
      const state = ((await job.json()) as { status?: string }).status;
      if (state === "completed") break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const again = (await (await get(`/admin/queues/api/queues/completions/${jobId}`, OPS)).json()) as {
      status: string;
    };
    expect(again.status).toBe("completed");

    expect((await put(`/${jobId}/clean`)).status).toBe(204);
    const gone = await get(`/admin/queues/api/queues/completions/${jobId}`, OPS);
    expect(gone.status).toBe(404);
  });

  it("answers an action the job's state refuses (promote a job that is not delayed) with 409, not a 500", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { request: { messages: [{ role: "user", content: "promote me" }] } },
      headers: { authorization: ACME },
    });
    expect(created.status).toBe(202);
    const done = await stack.request("GET", `/v1/jobs/${created.body.id}?wait=10`, {
      headers: { authorization: ACME },
    });
    expect(done.body.status).toBe("succeeded");
    const promoted = await fetch(
      `${stack.url}/admin/queues/api/queues/completions/${created.body.id}/promote`,
      {
        method: "PUT",
        headers: { authorization: OPS },
      },
    );
    const text = await promoted.text();
    expect(promoted.status, text).toBe(409);
    expect(text).toContain("is not in the delayed state");
    expect(text).not.toContain("is not a function");
  });

  it("adds and edits no job data from the board: jobs come in through /v1/jobs", async () => {
    const added = await fetch(`${stack.url}/admin/queues/api/queues/completions/add`, {
      method: "POST",
      headers: { authorization: OPS, "content-type": "application/json" },
      body: JSON.stringify({ name: "completion", data: { tenant: "acme" }, options: {} }),
    });
    expect(added.status).toBe(403);
  });

  it("answers a framework refusal (a body of an unsupported type) in the API's error shape", async () => {
    const paused = await fetch(`${stack.url}/admin/queues/api/queues/completions/pause`, {
      method: "PUT",
      headers: { authorization: OPS, "content-type": "text/plain" },
      body: "pause",
    });
    expect(paused.status).toBe(415);
    const body = (await paused.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: "unsupported_media_type_error", code: null, param: null });
    expect(typeof body.error.message).toBe("string");
  });
});

describe("the queue board while Redis is away", () => {
  it("answers 503 with Retry-After in the API's error shape, not bull-board's 500", async () => {
    // A queue on a connection that cannot reach Redis: its commands fail as during an outage.
    const connection = new Redis({
      port: 1,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    connection.on("error", () => {});
    const queue = new Queue("completions", { connection });
    queue.on("error", () => {});
    // Fastify as the API package has it (the repo root does not depend on it).
    const fastify = createRequire(new URL("../../packages/api/package.json", import.meta.url))("fastify");
    const app: FastifyInstance = fastify();
    registerQueueBoard(app, { queues: [queue] });
    try {
      const answer = await app.inject({ method: "GET", url: "/admin/queues/api/queues" });
      expect(answer.statusCode, answer.body).toBe(503);
      expect(answer.headers["retry-after"]).toMatch(/^\d+$/);
      expect(answer.json().error).toMatchObject({ type: "service_unavailable_error" });
    } finally {
      await app.close();
      await queue.close().catch(() => {});
      connection.disconnect();
    }
  });
});
