/**
 * API_REPLICA_ACKS: a write request's answer goes out once Redis replicas hold what it wrote
 * (plugins/replica-wait.ts, ADR 0027). Against real servers: a redis-server with a replica of its
 * own (`--replicaof`), and a Redis Cluster (3 masters, a replica each) where the WAIT must reach
 * the master of the deployment's slot. A replica is paused with SIGSTOP to hold its
 * acknowledgements back.
 */
import { buildApp, type CascadeApp } from "@cascade/api";
import { checkRedis, createKeys, createRedis, loadConfig, type RedisClient } from "@cascade/shared";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniquePrefix } from "../support/cascade-stack.js";
import { hasRedisCli, type SpawnedCluster, spawnRedisCluster } from "../support/redis-cluster.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";

const WAIT_MS = 600;
const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: 0 } } },
  models: { fast: { provider: "sim" } },
  routes: { default: { chain: [{ model: "fast" }] } },
  tenants: {
    acme: { api_keys_env: "ACME_KEYS" },
    ops: { api_keys_env: "OPS_KEYS", admin: true },
  },
};
const acme = { authorization: "Bearer acme-key" };
const job = { request: { messages: [{ role: "user", content: "Hello" }], max_tokens: 5 } };

// biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answered.
type Answer = { status: number; body: any; ms: number };

interface Api {
  app: CascadeApp;
  url: string;
  prefix: string;
  redis: RedisClient;
  post(path: string, body: unknown): Promise<Answer>;
  get(path: string): Promise<Answer>;
  close(): Promise<void>;
}

async function startApi(redisUrl: string, cluster: boolean, env: Record<string, string>): Promise<Api> {
  const prefix = uniquePrefix("replicas");
  const loaded = loadConfig(
    { REDIS_URL: redisUrl, CASCADE_REDIS_PREFIX: prefix, ACME_KEYS: "acme-key", OPS_KEYS: "ops-key", ...env },
    { raw: config },
  );
  const redis = createRedis(redisUrl, {
    cluster,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 2000,
  });
  const app = buildApp({
    config: loaded,
    redis,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" }),
  });
  await app.ready();
  await app.app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const call = async (method: string, path: string, body?: unknown, headers = acme) => {
    const started = performance.now();
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const ms = performance.now() - started;
    return { status: response.status, body: text.startsWith("{") ? JSON.parse(text) : text, ms };
  };
  return {
    app,
    url,
    prefix,
    redis,
    post: (path, body) => call("POST", path, body),
    get: (path) => call("GET", path),
    close: async () => {
      await app.close();
      redis.disconnect();
    },
  };
}

/** Calls of WAIT the server has run (INFO commandstats). */
async function waitCalls(server: Redis): Promise<number> {
  const stats = await server.info("commandstats");
  return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}

async function replicaWaitsShort(api: Api): Promise<number> {
  const response = await fetch(`${api.url}/metrics`, { headers: { authorization: "Bearer ops-key" } });
  const page = await response.text();
  return Number(/cascade_replica_waits_total\{outcome="short"\} (\d+)/.exec(page)?.[1] ?? 0);
}

async function inSync(replica: Redis): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!/master_link_status:up/.test(await replica.info("replication"))) {
    if (Date.now() > deadline) throw new Error("the replica did not sync with its master in 10 s");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The BullMQ hash of a job, as its key is spelled under the deployment's prefix. */
const jobKey = (prefix: string, id: string) => `${createKeys(prefix).bullPrefix}:completions:${id}`;

describe("API_REPLICA_ACKS on a Redis with a replica", () => {
  let master: SpawnedRedis;
  let replica: SpawnedRedis;
  let masterClient: Redis;
  let replicaClient: Redis;
  let api: Api;
  let plain: Api;

  beforeAll(async () => {
    master = await spawnRedisServer();
    replica = await spawnRedisServer({ extraArgs: ["--replicaof", "127.0.0.1", String(master.port)] });
    masterClient = new Redis(master.url);
    replicaClient = new Redis(replica.url);
    await inSync(replicaClient);
    api = await startApi(master.url, false, {
      API_REPLICA_ACKS: "1",
      API_REPLICA_WAIT_MS: String(WAIT_MS),
    });
    plain = await startApi(master.url, false, {});
  });
  afterAll(async () => {
    replica?.kill("SIGCONT");
    await api?.close();
    await plain?.close();
    masterClient?.disconnect();
    replicaClient?.disconnect();
    await replica?.stop();
    await master?.stop();
  });

  it("warns at startup when the master has fewer replicas connected than API_REPLICA_ACKS", async () => {
    expect((await checkRedis(master.url, { replicaAcks: 1 })).warnings).toEqual([]);
    expect((await checkRedis(master.url, { replicaAcks: 2 })).warnings).toEqual([
      expect.stringMatching(
        /^WARNING: API_REPLICA_ACKS=2 but Redis at redis:\/\/127\.0\.0\.1:\d+ has 1 replica connected: .*lower API_REPLICA_ACKS to 1 or add replicas$/,
      ),
    ]);
    // A seed that is a replica says nothing of its master's count.
    expect((await checkRedis(replica.url, { replicaAcks: 2 })).warnings).toEqual([]);
  });

  it("answers a job once the replica holds it", async () => {
    // Timed is a request after the first (which also loads the scripts).
    expect((await api.post("/v1/jobs", job)).status).toBe(202);
    const before = await waitCalls(masterClient);
    const created = await api.post("/v1/jobs", job);
    expect(created.status).toBe(202);
    expect(created.ms).toBeLessThan(WAIT_MS);
    // Read on the replica right at the answer: the WAIT made it hold the job already.
    expect(await replicaClient.hget(jobKey(api.prefix, created.body.id), "data")).toContain("Hello");
    expect(await waitCalls(masterClient)).toBeGreaterThan(before);
  });

  /** Jobs written on the master under the API's prefix. */
  const jobCount = async () => {
    let count = 0;
    let cursor = "0";
    do {
      const [next, keys] = await masterClient.scan(
        cursor,
        "MATCH",
        jobKey(api.prefix, "job_*"),
        "COUNT",
        1000,
      );
      cursor = next;
      count += keys.filter((key) => !key.includes(":", jobKey(api.prefix, "").length)).length;
    } while (cursor !== "0");
    return count;
  };

  it("requests that come while a WAIT is out share the next one (a group commit)", async () => {
    const before = await waitCalls(masterClient);
    // The replica paused, the first round's WAIT stays out: every request after it joins one round.
    replica.kill("SIGSTOP");
    const jobsBefore = await jobCount();
    const answers = (async () => {
      const first = api.post("/v1/jobs", job);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const rest = Promise.all(Array.from({ length: 59 }, () => api.post("/v1/jobs", job)));
      return [await first, ...(await rest)];
    })();
    // Every request has written its job (and waits for the replica) before it resumes: on a
    // loaded machine a fixed 250 ms let some arrive after, each then its own round (CI saw 34).
    const deadline = Date.now() + 10_000;
    while ((await jobCount()) < jobsBefore + 60 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 50));
    replica.kill("SIGCONT");
    const answered = await answers;
    expect(answered.map((answer) => answer.status)).toEqual(Array(60).fill(202));
    // Against 60 with a WAIT per request.
    expect((await waitCalls(masterClient)) - before).toBeLessThanOrEqual(3);
    const onReplica = await Promise.all(
      answered.map((answer) => replicaClient.exists(jobKey(api.prefix, answer.body.id))),
    );
    expect(onReplica).toEqual(Array(60).fill(1));
  });

  it("holds the answer up to API_REPLICA_WAIT_MS while the replica does not acknowledge, then answers and counts it", async () => {
    const shortBefore = await replicaWaitsShort(api);
    replica.kill("SIGSTOP");
    try {
      const held = api.post("/v1/jobs", job);
      // Reads and the gateway are not held, nor is a deployment without the setting.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const read = await api.get("/healthz");
      expect(read.status).toBe(200);
      expect(read.ms).toBeLessThan(WAIT_MS / 2);
      const gateway = await api.post("/v1/chat/completions", {
        model: "fast",
        messages: [{ role: "user", content: "Hi" }],
      });
      expect(gateway.status).toBe(200);
      expect(gateway.ms).toBeLessThan(WAIT_MS / 2);
      const unheld = await plain.post("/v1/jobs", job);
      expect(unheld.status).toBe(202);
      expect(unheld.ms).toBeLessThan(WAIT_MS / 2);
      const created = await held;
      expect(created.status).toBe(202);
      expect(created.ms).toBeGreaterThanOrEqual(WAIT_MS - 50);
      expect(created.ms).toBeLessThan(WAIT_MS + 300);
      // On the master all along: the answer only waited.
      expect(await masterClient.exists(jobKey(api.prefix, created.body.id))).toBe(1);
      const fetched = await api.get(`/v1/jobs/${created.body.id}`);
      expect(fetched.status).toBe(200);
      expect(fetched.ms).toBeLessThan(WAIT_MS / 2);
    } finally {
      replica.kill("SIGCONT");
    }
    expect(await replicaWaitsShort(api)).toBeGreaterThan(shortBefore);
    await inSync(replicaClient);
    const again = await api.post("/v1/jobs", job);
    expect(again.status).toBe(202);
    expect(again.ms).toBeLessThan(WAIT_MS);
  });

  it("waits API_REPLICA_WAIT_MS at most in all, also behind a round already out", async () => {
    replica.kill("SIGSTOP");
    try {
      const first = api.post("/v1/jobs", job);
      await new Promise((resolve) => setTimeout(resolve, WAIT_MS / 4));
      // Its round goes once the first one's WAIT gives up, and waits only what is left of its own.
      const second = await api.post("/v1/jobs", job);
      expect(second.status).toBe(202);
      // Before: the first round's rest, then a whole WAIT of its own (1.75 × WAIT_MS here).
      expect(second.ms).toBeLessThan(WAIT_MS + 250);
      expect((await first).status).toBe(202);
    } finally {
      replica.kill("SIGCONT");
    }
    await inSync(replicaClient);
  });

  it("holds a cancel the same way, and answers errors at once", async () => {
    const created = await api.post("/v1/jobs", job);
    replica.kill("SIGSTOP");
    try {
      const started = performance.now();
      const cancelled = await fetch(`${api.url}/v1/jobs/${created.body.id}`, {
        method: "DELETE",
        headers: acme,
      });
      expect(cancelled.status).toBe(200);
      expect(performance.now() - started).toBeGreaterThanOrEqual(WAIT_MS - 50);
      const invalid = await api.post("/v1/jobs", { request: { messages: "nope" } });
      expect(invalid.status).toBe(400);
      expect(invalid.ms).toBeLessThan(WAIT_MS / 2);
    } finally {
      replica.kill("SIGCONT");
    }
  });
});

describe.skipIf(!hasRedisCli)("API_REPLICA_ACKS on a Redis Cluster", () => {
  let cluster: SpawnedCluster;
  let api: Api;

  beforeAll(async () => {
    cluster = await spawnRedisCluster({ masters: 3, replicasPerMaster: 1 });
    api = await startApi(cluster.url, true, { API_REPLICA_ACKS: "1", API_REPLICA_WAIT_MS: String(WAIT_MS) });
  }, 60_000);
  afterAll(async () => {
    await api?.close();
    await cluster?.stop();
  });

  it("waits on the master of the deployment's slot, for that master's replica", async () => {
    // The first request after start-up also pays for the cluster's slots and scripts (CI saw
    // 638 ms on a loaded machine): timed is the next one.
    expect((await api.post("/v1/jobs", job)).status).toBe(202);
    const created = await api.post("/v1/jobs", job);
    expect(created.status).toBe(202);
    expect(created.ms).toBeLessThan(WAIT_MS);
    const slot = await cluster.keySlot(createKeys(api.prefix).bullPrefix);
    const master = await cluster.masterOf(slot);
    const replication = await cluster.command(master, "INFO", "replication");
    const replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(replication)?.[1]);
    const replica = cluster.nodes.find((node) => node.port === replicaPort);
    expect(replica).toBeDefined();
    // Only this master's replica is paused: a WAIT sent to any other master returns at once.
    replica?.server.kill("SIGSTOP");
    try {
      const held = await api.post("/v1/jobs", job);
      expect(held.status).toBe(202);
      expect(held.ms).toBeGreaterThanOrEqual(WAIT_MS - 50);
    } finally {
      replica?.server.kill("SIGCONT");
    }
  }, 30_000);
});
