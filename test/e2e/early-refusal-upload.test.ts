/**
 * An upload refused before its body is read (a wrong key, a tenant at `max_file_storage_mb`, a
 * path that does not exist) is answered with its status through the official SDK, not a
 * connection error. The SDK streams its multipart body and reads the answer once it has sent it:
 * a server that closed the connection right after its answer, with the body still coming, made
 * the client's next write fail (EPIPE) or its socket reset, and the answer was lost:
 * APIConnectionError, which the SDK retries twice by default (a black-box probe's find, against a
 * separate API process: in one process with the client the race does not show). The server now
 * lingers after such an answer: it reads and drops the rest of the body while it keeps coming at
 * the body rate (16 KiB/s) and for 30 s at most, then closes.
 */
import { connect } from "node:net";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  type CascadeApi,
  killAllCascadeProcesses,
  makeTempDir,
  startApi,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { testRedis } from "../support/redis-clients.js";

let dir: TempDir;
let api: CascadeApi;
let prefix: string;

beforeAll(async () => {
  dir = makeTempDir("cascade-linger-");
  prefix = uniquePrefix("linger");
  api = await startApi({
    env: {
      REDIS_URL: inject("redisUrl"),
      CASCADE_REDIS_PREFIX: prefix,
      CASCADE_CONFIG: dir.write("cascade.json", {
        providers: { sim: { type: "simulated" } },
        models: { fast: { provider: "sim" } },
        routes: { default: { chain: [{ model: "fast" }] } },
        tenants: {
          roomy: { api_keys_env: "ROOMY_KEYS" },
          full: { api_keys_env: "FULL_KEYS", max_file_storage_mb: 1 },
        },
      }),
      ROOMY_KEYS: "roomy-key",
      FULL_KEYS: "full-key",
      LOG_LEVEL: "warn",
    },
  });
  // Tenant "full" holds its whole megabyte already (a file's size entry, as an upload leaves it).
  const redis = testRedis(inject("redisUrl"));
  const future = Math.floor(Date.now() / 1000) + 3600;
  await redis.hset(`{${prefix}}:file-bytes:full`, "file-held", `${1024 * 1024}:${future}`);
  redis.disconnect();
});

afterAll(async () => {
  await killAllCascadeProcesses();
  dir?.cleanup();
});

async function upload(apiKey: string, bytes: number, path = "/v1") {
  const client = new OpenAI({ baseURL: `${api.url}${path}`, apiKey, maxRetries: 0 });
  return client.files
    .create({ file: await toFile(Buffer.alloc(bytes, 0x7a), "big.jsonl"), purpose: "batch" })
    .then(
      () => undefined,
      (error: Error) => error,
    );
}

describe("an upload refused before its body is read", () => {
  it.each([100_000, 20_000_000])("%i bytes: the SDK gets the 401, the 400 and the 404", async (bytes) => {
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(await upload("not-a-key", bytes)).toBeInstanceOf(OpenAI.AuthenticationError);
      const full = await upload("full-key", bytes);
      expect(full).toBeInstanceOf(OpenAI.BadRequestError);
      expect((full as InstanceType<typeof OpenAI.APIError>).code).toBe("storage_limit_exceeded");
      expect(await upload("roomy-key", bytes, "/v2")).toBeInstanceOf(OpenAI.NotFoundError);
    }
    // The API still takes uploads.
    expect(await upload("roomy-key", 1_000)).toBeUndefined();
  });

  it("a request pipelined behind a refused body on that connection is not run (RFC 9112 §9.6)", async () => {
    const { hostname, port } = new URL(api.url);
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
    let received = "";
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
    });
    socket.on("error", () => {});
    await new Promise((resolve) => socket.on("connect", resolve));
    const body = "x".repeat(200_000);
    socket.write(
      `POST /v1/files HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer wrong\r\n` +
        `Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 1000)}`,
    );
    while (!received.includes("\r\n\r\n")) await new Promise((r) => setTimeout(r, 20));
    // The rest of the refused body, then a request with a good key on the same connection.
    const job = JSON.stringify({ request: { messages: [{ role: "user", content: "pipelined" }] } });
    const key = `pipelined-${Date.now()}`;
    socket.write(
      `${body.slice(1000)}POST /v1/jobs HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer roomy-key\r\n` +
        `Idempotency-Key: ${key}\r\nContent-Type: application/json\r\nContent-Length: ${job.length}\r\n\r\n${job}`,
    );
    // Time for the API to have run it, were it run (the client keeps its half open: no close comes).
    await new Promise((r) => setTimeout(r, 1_000));
    socket.destroy();
    // One answer: the 401. The pipelined job was not taken: its key makes a new job now, not a replay.
    expect(received.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(received.split("\r\n")[0]).toBe("HTTP/1.1 401 Unauthorized");
    const again = await fetch(`${api.url}/v1/jobs`, {
      method: "POST",
      headers: {
        authorization: "Bearer roomy-key",
        "idempotency-key": key,
        "content-type": "application/json",
      },
      body: job,
    });
    expect(again.status).toBe(202);
  });

  it("a lingering upload does not hold the API's shutdown (SIGTERM exits at once, not after 30 s)", async () => {
    const own = await startApi({
      name: "api (shutdown)",
      env: {
        REDIS_URL: inject("redisUrl"),
        CASCADE_REDIS_PREFIX: uniquePrefix("lingerstop"),
        CASCADE_CONFIG: dir.write("stop.json", {
          providers: { sim: { type: "simulated" } },
          models: { fast: { provider: "sim" } },
          routes: { default: { chain: [{ model: "fast" }] } },
          tenants: { roomy: { api_keys_env: "ROOMY_KEYS" } },
        }),
        ROOMY_KEYS: "roomy-key",
        LOG_LEVEL: "warn",
      },
    });
    const { hostname, port } = new URL(own.url);
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
    socket.on("error", () => {});
    await new Promise((resolve) => socket.on("connect", resolve));
    socket.write(
      `POST /v1/files HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer wrong\r\n` +
        "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 50000000\r\n\r\n--xyz\r\n",
    );
    // Faster than the body rate: the connection lingers for its 30 s.
    const upload = setInterval(() => socket.writable && socket.write(Buffer.alloc(8_192, 0x20)), 100);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const stoppedAt = Date.now();
      own.kill("SIGTERM");
      const status = await own.waitForExit(20_000);
      expect(status.code).toBe(0);
      expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    } finally {
      clearInterval(upload);
      socket.destroy();
    }
  });

  it("a client trickling the rest of a refused body is cut off (it cannot hold the connection)", async () => {
    const { hostname, port } = new URL(api.url);
    // Half-open allowed: the client goes on sending after the server's FIN, as a trickler would.
    const socket = connect({ port: Number(port), host: hostname, allowHalfOpen: true });
    let received = "";
    let closedAt: number | undefined;
    socket.on("data", (chunk) => {
      received += chunk.toString("utf8");
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      closedAt = Date.now();
    });
    await new Promise((resolve) => socket.on("connect", resolve));
    const sentAt = Date.now();
    socket.write(
      `POST /v1/files HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer wrong\r\n` +
        "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 10000000\r\n\r\n--xyz\r\n",
    );
    const drip = setInterval(() => socket.writable && socket.write(" "), 100);
    while (closedAt === undefined && Date.now() - sentAt < 10_000)
      await new Promise((r) => setTimeout(r, 100));
    clearInterval(drip);
    socket.destroy();
    expect(received.split("\r\n")[0]).toBe("HTTP/1.1 401 Unauthorized");
    expect(received.toLowerCase()).toContain("connection: close");
    // Read from for the linger's grace (1 s), then cut for falling behind the body rate (not
    // after the hour of the request timeout).
    expect((closedAt ?? Number.POSITIVE_INFINITY) - sentAt).toBeGreaterThan(900);
    expect((closedAt ?? Number.POSITIVE_INFINITY) - sentAt).toBeLessThan(5_000);
  });
});
