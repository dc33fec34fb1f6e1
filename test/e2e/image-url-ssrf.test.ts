/**
 * Image URLs a provider fetches itself (openai-type: any OpenAI-compatible endpoint, e.g. a vLLM on
 * the operator's own network) must not be private, loopback, link-local or metadata addresses
 * unless `webhooks.allow_private_networks` (ADR 0007, revision on image URLs). End to end, as
 * separate processes: the API (gateway, jobs, batches) and a worker over a real Redis, the fake
 * OpenAI upstream over real HTTP, which records every image URL it was sent (it never fetches one).
 */
import { lookup } from "node:dns/promises";
import { hostname } from "node:os";
import { blockedAddressReason } from "@cascade/engine";
import OpenAI, { toFile } from "openai";
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
import { FAKE_KEY_VALUE, http, type Json, postJob, waitForTerminal } from "./helpers.js";

function visionConfig(fakeUrl: string, allowPrivateNetworks?: boolean) {
  return {
    providers: { fake: { type: "openai", base_url: fakeUrl, api_key_env: "FAKE_KEY" } },
    models: { seer: { provider: "fake", name: "up-seer", capabilities: ["vision"] } },
    routes: { default: { chain: [{ model: "seer", timeout_ms: 5000 }] } },
    ...(allowPrivateNetworks === undefined
      ? {}
      : { webhooks: { allow_private_networks: allowPrivateNetworks } }),
  };
}

/** A conversation whose image is `messages[1].content[0].image_url.url`. */
function messagesWith(url: string) {
  return [
    { role: "system", content: "Describe images." },
    {
      role: "user",
      content: [
        { type: "image_url", image_url: { url } },
        { type: "text", text: "What is this?" },
      ],
    },
  ];
}

const PARAM = "messages[1].content[0].image_url.url";

/** Every image URL the fake upstream was sent. */
function urlsSentTo(fake: FakeOpenAI): string[] {
  return fake.calls.flatMap((call) =>
    (call.body?.messages ?? []).flatMap((message: Json) =>
      Array.isArray(message.content)
        ? message.content
            .filter((part: Json) => part?.type === "image_url")
            .map((part: Json) => part.image_url.url)
        : [],
    ),
  );
}

const gateway = (api: CascadeApi, url: string) =>
  http(api.url, "POST", "/v1/chat/completions", {
    model: "seer",
    messages: messagesWith(url),
    max_tokens: 20,
  });

/** Literal hosts that reach the operator's own network, in the spellings URL parsers accept. */
const PRIVATE_URLS = [
  "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
  "http://10.0.0.5/admin.png",
  "http://192.168.1.1/cat.png",
  "http://172.16.0.1/cat.png",
  "http://100.64.0.1/cat.png",
  "http://127.0.0.1:8080/cat.png",
  "http://127.1/cat.png",
  "http://2130706433/cat.png",
  "http://0x7f.1/cat.png",
  "http://0177.0.0.1/cat.png",
  "http://0.0.0.0/cat.png",
  "http://[::1]/cat.png",
  "http://[::ffff:127.0.0.1]/cat.png",
  "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
  "http://[fd00:ec2::254]/latest/meta-data/",
  "http://[fe80::1]/cat.png",
  "http://localhost/cat.png",
  "http://LOCALHOST./cat.png",
  "http://images.localhost/cat.png",
  "http://metadata.google.internal/computeMetadata/v1/",
  // Parsers disagree on where these hosts end: a Python client reads 127.0.0.1 in both.
  "http://example.com\\@127.0.0.1/cat.png",
  "http://user:password@example.com/cat.png",
];

describe("image URLs with allow_private_networks false (the default)", () => {
  let fake: FakeOpenAI;
  let dir: TempDir;
  let api: CascadeApi;

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    fake.setDefault("*", { kind: "ok", content: "a cat" });
    dir = makeTempDir();
    const env = {
      REDIS_URL: inject("redisUrl"),
      CASCADE_REDIS_PREFIX: uniquePrefix("imageguard"),
      CASCADE_CONFIG: dir.write("cascade.json", visionConfig(fake.url)),
      FAKE_KEY: FAKE_KEY_VALUE,
      LOG_LEVEL: "info",
      WORKER_CONCURRENCY: "2",
    };
    [api] = await Promise.all([startApi({ env }), startWorker({ env })]);
  });

  afterAll(async () => {
    await stopAllCascadeProcesses();
    await fake?.close();
    dir?.cleanup();
  });

  it("refuses private image URLs at the gateway with a 400 naming the field; the provider never sees them", async () => {
    for (const url of PRIVATE_URLS) {
      const response = await gateway(api, url);
      expect(response.status, url).toBe(400);
      expect(response.body.error, url).toMatchObject({ type: "invalid_request_error", param: PARAM });
      expect(response.body.error.message, url).toMatch(new RegExp(`^${PARAM.replace(/[.[\]]/g, "\\$&")}: `));
      expect(response.body.error.message, url).toContain("webhooks.allow_private_networks");
    }
    const metadata = await gateway(api, PRIVATE_URLS[0] as string);
    expect(metadata.body.error.message).toMatch(/169\.254\.169\.254 is a cloud metadata address/);
    expect(urlsSentTo(fake)).toEqual([]);
  });

  it("refuses them at POST /v1/jobs with a 400 naming request.messages[…]", async () => {
    for (const url of PRIVATE_URLS) {
      const response = await postJob(api.url, { request: { messages: messagesWith(url), max_tokens: 20 } });
      expect(response.status, url).toBe(400);
      expect(response.body.error, url).toMatchObject({
        type: "invalid_request_error",
        param: `request.${PARAM}`,
      });
    }
    expect(urlsSentTo(fake)).toEqual([]);
  });

  it("refuses a batch whose line carries one, naming the line and body.messages[…]", async () => {
    const openai = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: "none", maxRetries: 0 });
    const line = (customId: string, url: string) =>
      JSON.stringify({
        custom_id: customId,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "seer", messages: messagesWith(url), max_tokens: 20 },
      });
    const text = `${line("ok", "https://example.com/cat.png")}\n${line("bad", "http://10.0.0.5/admin.png")}\n`;
    const file = await openai.files.create({
      file: await toFile(Buffer.from(text), "input.jsonl"),
      purpose: "batch",
    });
    const response = await http(api.url, "POST", "/v1/batches", {
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ type: "invalid_request_error", line: 2 });
    expect(response.body.error.errors.data).toEqual([
      expect.objectContaining({ line: 2, param: `body.${PARAM}` }),
    ]);
    expect(response.body.error.errors.data[0].message).toMatch(
      /^line 2: body\.messages\[1\].*private address/,
    );
  });

  it("passes public and data: image URLs on to the provider, at both doors", async () => {
    const publicUrl = "https://example.com/cat.png";
    const dataUrl = "data:image/png;base64,iVBORw0KGgo=";
    const answer = await gateway(api, publicUrl);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.choices[0].message.content).toBe("a cat");
    expect((await gateway(api, dataUrl)).status).toBe(200);
    const created = await postJob(api.url, {
      request: { messages: messagesWith(publicUrl), max_tokens: 20 },
    });
    expect(created.status).toBe(202);
    const job = await waitForTerminal(api.url, created.body.id, 20_000);
    expect(job.status, JSON.stringify(job)).toBe("succeeded");
    expect(urlsSentTo(fake)).toEqual([publicUrl, dataUrl, publicUrl]);
  });

  it("refuses a name that resolves to a private address before the provider is called", async (context) => {
    // This machine's own name resolves (through /etc/hosts, nearly everywhere) to a loopback or
    // private address; where it does not, there is nothing to show here.
    const name = hostname().toLowerCase();
    const addresses = await lookup(name, { all: true }).catch(() => []);
    if (addresses.length === 0 || !addresses.some((entry) => blockedAddressReason(entry.address)))
      context.skip();
    const url = `http://${name}/cat.png`;
    const before = urlsSentTo(fake).length;

    const response = await gateway(api, url);
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({
      type: "invalid_request_error",
      code: "bad_request",
      param: PARAM,
    });
    expect(response.body.error.message).toMatch(
      new RegExp(`host "${name}" resolves to an? [a-z -]+ address`),
    );
    expect(response.body.error.message).not.toMatch(/\d+\.\d+\.\d+\.\d+/);

    const created = await postJob(api.url, { request: { messages: messagesWith(url), max_tokens: 20 } });
    expect(created.status).toBe(202);
    const job = await waitForTerminal(api.url, created.body.id, 20_000);
    expect(job).toMatchObject({ status: "failed", error: { type: "bad_request" } });
    expect(job.error.message).toContain(`${PARAM}: host "${name}" resolves to`);
    // No upstream call was made: the attempt is skipped (the contract's `error` means one was).
    expect(job.attempts).toEqual([expect.objectContaining({ outcome: "skipped", reason: "bad_request" })]);
    expect(job.attempts[0].http_status).toBeUndefined();
    expect(job.cost_usd).toBe(0);
    expect(urlsSentTo(fake).length).toBe(before);
  });
});

describe("image URLs with allow_private_networks true", () => {
  let fake: FakeOpenAI;
  let dir: TempDir;
  let api: CascadeApi;

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    fake.setDefault("*", { kind: "ok", content: "a router" });
    dir = makeTempDir();
    const env = {
      REDIS_URL: inject("redisUrl"),
      CASCADE_REDIS_PREFIX: uniquePrefix("imageallow"),
      CASCADE_CONFIG: dir.write("cascade.json", visionConfig(fake.url, true)),
      FAKE_KEY: FAKE_KEY_VALUE,
      LOG_LEVEL: "info",
    };
    api = await startApi({ env });
  });

  afterAll(async () => {
    await stopAllCascadeProcesses();
    await fake?.close();
    dir?.cleanup();
  });

  it("passes private image URLs on, as before (local development)", async () => {
    const url = "http://10.0.0.5/admin.png";
    const answer = await gateway(api, url);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const local = await gateway(api, `http://${hostname()}/cat.png`);
    expect(local.status, JSON.stringify(local.body)).toBe(200);
    expect(urlsSentTo(fake)).toEqual([url, `http://${hostname()}/cat.png`]);
    const created = await postJob(api.url, {
      request: { messages: messagesWith("http://169.254.169.254/latest/meta-data/"), max_tokens: 20 },
    });
    expect(created.status).toBe(202);
  });
});
