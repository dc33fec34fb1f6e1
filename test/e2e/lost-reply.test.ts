/**
 * A worker whose Redis connection drops after BullMQ stored a job's result but before the reply
 * came back: the job is completed in Redis with that very result, yet the worker never hears
 * so (its resend, or BullMQ's retry, finds the job no longer active and throws). BullMQ emits
 * no `completed` then, so the run's request would be counted nowhere (usage rows, metrics, the
 * dashboard) though the job shows succeeded. The worker reads the job on such a refusal and counts
 * it whole when it ended with this run's result.
 *
 * Real processes: an API and a worker, the worker reaching its own redis-server through a TCP
 * proxy that passes everything, except that it cuts the worker's connection right after relaying
 * the first command that finishes the chosen job (its keys name the job and the completed set),
 * dropping the reply.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";
import { chatRequest, http, postJob, sleep, waitForTerminal } from "./helpers.js";

const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 50 } } },
  models: { echo: { provider: "sim", price: { input_per_mtok: 1000, output_per_mtok: 1000 } } },
  routes: { default: { chain: [{ model: "echo" }] } },
};

/** A proxy to `port` that cuts a connection once, right after relaying a command holding `marks`. */
function startCuttingProxy(
  port: number,
): Promise<{ port: number; arm(marks: string[]): void; cuts(): number; close(): void }> {
  let marks: string[] | undefined;
  let cut = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    let dropNextReply = false;
    client.on("data", (chunk: Buffer) => {
      if (marks?.every((mark) => chunk.includes(mark))) {
        marks = undefined;
        dropNextReply = true;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (dropNextReply) {
        // Redis has run the command; its reply never reaches the worker.
        cut += 1;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : 0,
        arm: (next) => {
          marks = next;
        },
        cuts: () => cut,
        close: () => {
          for (const socket of sockets) socket.destroy();
          server.close();
        },
      });
    });
  });
}

let redis: SpawnedRedis;
let proxy: Awaited<ReturnType<typeof startCuttingProxy>>;
let dir: TempDir;
let api: CascadeApi;
let env: Record<string, string>;

beforeAll(async () => {
  redis = await spawnRedisServer();
  proxy = await startCuttingProxy(Number(new URL(redis.url).port));
  dir = makeTempDir();
  env = {
    CASCADE_REDIS_PREFIX: uniquePrefix("lostreply"),
    CASCADE_CONFIG: dir.write("cascade.json", JSON.stringify(config)),
    WORKER_CONCURRENCY: "2",
    LOG_LEVEL: "info",
  };
  api = await startApi({ env: { ...env, REDIS_URL: redis.url } });
}, 60_000);

afterAll(async () => {
  await stopAllCascadeProcesses();
  proxy?.close();
  await redis?.stop();
  dir?.cleanup();
});

describe("a job whose completion reply was lost", () => {
  it("is counted once, whole, by the worker that ran it", async () => {
    const created = await postJob(api.url, { request: chatRequest("lost reply") });
    expect(created.status).toBe(202);
    const jobId: string = created.body.id;
    // No worker until the proxy knows the job: it is the first the worker takes.
    proxy.arm([jobId, "completed"]);
    await startWorker({ env: { ...env, REDIS_URL: `redis://127.0.0.1:${proxy.port}` } });

    const job = await waitForTerminal(api.url, jobId, 40_000);
    expect(job.status).toBe("succeeded");
    expect(job.cost_usd).toBeGreaterThan(0);
    expect(proxy.cuts()).toBe(1);

    // The worker's counts are written every 200 ms; BullMQ's own retry of the finish may wait.
    const deadline = Date.now() + 30_000;
    let row: { requests: number; succeeded: number; cost_usd: number } | undefined;
    while (Date.now() < deadline) {
      row = (await http(api.url, "GET", "/v1/usage")).body.routes?.default;
      if (row && row.requests > 0) break;
      await sleep(200);
    }
    await sleep(1_000);
    row = (await http(api.url, "GET", "/v1/usage")).body.routes?.default;
    expect(row).toMatchObject({ requests: 1, succeeded: 1 });
    expect(row?.cost_usd).toBeCloseTo(job.cost_usd, 9);
  }, 90_000);
});
