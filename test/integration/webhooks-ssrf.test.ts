/**
 * The address guard with `allow_private_networks: false`. Only 127.0.0.1 is ever connected to:
 * a canary HTTP server there counts connections, and every refused URL must leave it at zero.
 * Other addresses (10.0.0.1, 169.254.169.254, a "public" DNS answer) are refused before any
 * connect, and the injected resolvers never hand a public address to the connecting side.
 */
import type { LookupAddress } from "node:dns";
import {
  assertOutboundUrl,
  createGuardedDispatcher,
  type HostResolver,
  UrlRejectedError,
} from "@cascade/engine";
import { sendWebhook } from "@cascade/worker";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Stack, startStack } from "../support/cascade-stack.js";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  webhooks: { allow_private_networks: false, max_attempts: 3, retry_schedule_ms: [100] },
};
const hello = { request: { messages: [{ role: "user", content: "Hello" }], max_tokens: 20 } };

/** A DNS that knows a few made-up names; everything else does not resolve. */
const fakeDns =
  (table: Record<string, string[]>): HostResolver =>
  async (hostname) => {
    const addresses = table[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address): LookupAddress => ({ address, family: address.includes(":") ? 6 : 4 }));
  };

// Checked at enqueue, never connected to: the API does not connect, the worker never sees it.
const PUBLIC_ANSWER = "93.184.215.14";

describe("webhook SSRF guard", () => {
  let stack: Stack;
  let canary: WebhookSink;

  beforeAll(async () => {
    canary = await startWebhookSink();
    stack = await startStack({
      redisUrl: inject("redisUrl"),
      config,
      webhooks: {
        // The API's DNS says rebind.test is public; the worker's (at connect time) says loopback.
        apiResolve: fakeDns({ "rebind.test": [PUBLIC_ANSWER], "internal.test": ["10.1.2.3", "192.168.7.7"] }),
        workerResolve: fakeDns({ "rebind.test": ["127.0.0.1"] }),
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await canary?.close();
  });

  it("refuses loopback, private and metadata URLs at enqueue with a 400 naming webhook.url", async () => {
    const port = canary.port;
    const urls = [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://[::1]:${port}/`,
      `http://[::ffff:127.0.0.1]:${port}/`,
      `http://[::ffff:7f00:1]:${port}/`,
      `http://2130706433:${port}/`,
      `http://0177.0.0.1:${port}/`,
      `http://0x7f.1:${port}/`,
      `http://0x7f000001:${port}/`,
      `http://127.1:${port}/`,
      `http://0.0.0.0:${port}/`,
      `http://[64:ff9b::7f00:1]:${port}/`,
      "http://169.254.169.254/latest/meta-data/",
      "http://metadata.google.internal/computeMetadata/v1/",
      "http://[fd00:ec2::254]/latest/meta-data/",
      "http://10.0.0.1/",
      "http://192.168.0.1/",
      "http://100.64.0.1/",
      "http://internal.test/hook",
      "http://does-not-exist.test/hook",
      "https://user:password@rebind.test/hook",
    ];
    for (const url of urls) {
      const response = await stack.request("POST", "/v1/jobs", { body: { ...hello, webhook: { url } } });
      expect(response.status, url).toBe(400);
      expect(response.body.error.type, url).toBe("invalid_request_error");
      expect(response.body.error.param, url).toBe("webhook.url");
      expect(response.body.error.message, url).toMatch(/^webhook\.url: /);
    }
    const internal = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, webhook: { url: "http://internal.test/hook" } },
    });
    // The class of address, not the address: a tenant must not map internal names through us.
    expect(internal.body.error.message).toMatch(/host "internal\.test" resolves to a private address/);
    expect(internal.body.error.message).not.toContain("10.1.2.3");
    expect(canary.connections).toBe(0);
  });

  it("checks the address again at connect time: a rebinding DNS answer ends the delivery dead", async () => {
    const created = await stack.request("POST", "/v1/jobs", {
      body: { ...hello, webhook: { url: `http://rebind.test:${canary.port}/hook` } },
    });
    expect(created.status).toBe(202);
    const jobId = created.body.id;
    let dead: { attempts: number; last_status: number | null; last_error: string } | undefined;
    for (let index = 0; index < 100 && !dead; index += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const list = await stack.request("GET", "/v1/webhook-deliveries?status=dead");
      // biome-ignore lint/suspicious/noExplicitAny: list items
      dead = list.body.data.find((delivery: any) => delivery.job_id === jobId);
    }
    expect(dead).toMatchObject({ attempts: 1, last_status: null });
    expect(dead?.last_error).toMatch(/refused: host "rebind\.test" resolves to a loopback address/);
    expect(dead?.last_error).not.toContain("127.0.0.1");
    expect(canary.connections).toBe(0);
  });
});

describe("guarded dispatcher", () => {
  let canary: WebhookSink;
  beforeAll(async () => {
    canary = await startWebhookSink();
  });
  afterAll(() => canary?.close());

  it("connects only to the address it checked itself, not the one an earlier check saw", async () => {
    let calls = 0;
    // First answer (the pre-check) public, every later one (the connect) loopback.
    const rebinding: HostResolver = async () => {
      calls += 1;
      return [{ address: calls === 1 ? PUBLIC_ANSWER : "127.0.0.1", family: 4 }];
    };
    const url = `http://rebinding.test:${canary.port}/hook`;
    await expect(
      assertOutboundUrl(url, { allowPrivateNetworks: false, resolve: rebinding }),
    ).resolves.toBeInstanceOf(URL);
    expect(calls).toBe(1);
    const dispatcher = createGuardedDispatcher({ allowPrivateNetworks: false, resolve: rebinding });
    try {
      const result = await sendWebhook({
        url,
        body: "{}",
        headers: { "content-type": "application/json" },
        dispatcher,
        timeoutMs: 2000,
        allowPrivateNetworks: false,
      });
      expect(result).toMatchObject({ delivered: false, permanent: true, httpStatus: undefined });
      expect(result.error).toMatch(/loopback/);
      expect(calls).toBe(2);
      // IP literals skip DNS; the connector checks them itself.
      const literal = await dispatcher
        .request({ origin: `http://127.0.0.1:${canary.port}`, path: "/hook", method: "GET" })
        .catch((error: unknown) => error);
      expect(literal).toBeInstanceOf(UrlRejectedError);
      expect(canary.connections).toBe(0);
    } finally {
      await dispatcher.destroy();
    }
  });

  it("(control) reaches the canary when private networks are allowed, so the count above means something", async () => {
    const dispatcher = createGuardedDispatcher({ allowPrivateNetworks: true });
    try {
      const result = await sendWebhook({
        url: canary.url,
        body: "{}",
        headers: { "content-type": "application/json" },
        dispatcher,
        timeoutMs: 2000,
        allowPrivateNetworks: true,
      });
      expect(result).toMatchObject({ delivered: true, httpStatus: 200 });
      expect(canary.connections).toBe(1);
    } finally {
      await dispatcher.destroy();
    }
  });
});
