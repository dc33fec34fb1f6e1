/**
 * The contract's startup rule, for the real API and worker processes: a missing or invalid config,
 * an unreachable Redis, a Redis whose maxmemory-policy is not noeviction, or an invalid environment
 * makes the process exit non-zero with exactly ONE line on stderr that says what is wrong and how
 * to fix it (no stack trace). Where Redis forbids reading the policy, the process starts with a
 * loud warning instead.
 */

import type { AddressInfo, Socket } from "node:net";
import { createServer } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { startFakeOpenAI } from "../support/fake-openai.js";
import {
  type CascadeKind,
  killAllCascadeProcesses,
  makeTempDir,
  spawnCascade,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
  uniquePrefix,
} from "../support/processes.js";
import { type SpawnedRedis, spawnRedisServer } from "../support/redis-server.js";
import { FAKE_KEY_VALUE, fakeConfig, redisCommand } from "./helpers.js";

const KINDS: CascadeKind[] = ["api", "worker"];
const STACK_FRAME = /^\s+at .+/;

let dir: TempDir;
let validConfig: string;
let evictingRedis: SpawnedRedis;
/** A Redis with a password, for REDIS_URL's wrong one. */
let lockedRedis: SpawnedRedis;
/** Accepts connections and never answers (a frozen Redis, or another service on its port). */
let silent: { url: string; close(): void };
let baseEnv: Record<string, string | undefined>;

beforeAll(async () => {
  dir = makeTempDir();
  validConfig = dir.write("valid.json", fakeConfig("http://127.0.0.1:9/v1"));
  baseEnv = {
    REDIS_URL: inject("redisUrl"),
    CASCADE_REDIS_PREFIX: uniquePrefix("startup"),
    CASCADE_CONFIG: validConfig,
    FAKE_KEY: FAKE_KEY_VALUE,
    LOG_LEVEL: "info",
  };
  evictingRedis = await spawnRedisServer();
  lockedRedis = await spawnRedisServer();
  expect(await redisCommand(lockedRedis.url, "CONFIG", "SET", "requirepass", "the-right-password")).toBe(
    "+OK",
  );
  const sockets: Socket[] = [];
  const server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  silent = {
    url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
});

afterEach(() => stopAllCascadeProcesses());

afterAll(async () => {
  await killAllCascadeProcesses();
  await evictingRedis?.stop();
  await lockedRedis?.stop();
  silent?.close();
  dir?.cleanup();
});

/** Runs the process with `env` on top of a valid environment and returns its single stderr line. */
async function startupFailure(kind: CascadeKind, env: Record<string, string | undefined>): Promise<string> {
  const proc = spawnCascade(kind, { name: `${kind} (bad startup)`, env: { ...baseEnv, ...env } });
  const status = await proc.waitForExit(15_000);
  expect(status.signal, proc.describe()).toBeNull();
  expect(status.code, proc.describe()).not.toBe(0);
  const lines = proc.stderr.filter((line) => line.trim() !== "");
  expect(lines, `${kind} must print exactly one line on stderr\n${proc.describe()}`).toHaveLength(1);
  const [line = ""] = lines;
  expect(line).not.toMatch(STACK_FRAME);
  expect(line).not.toMatch(/failed to start: \w*Error/);
  expect([...proc.stdout, ...proc.stderr].filter((text) => STACK_FRAME.test(text))).toEqual([]);
  expect(line.length).toBeLessThan(1000);
  return line;
}

describe("control", () => {
  it("both processes start with the valid base environment", async () => {
    const [api, worker] = await Promise.all([startApi({ env: baseEnv }), startWorker({ env: baseEnv })]);
    expect(api.exitStatus).toBeUndefined();
    expect(worker.exitStatus).toBeUndefined();
  });
});

describe.each(KINDS)("%s exits non-zero with one clear line", (kind) => {
  it("when CASCADE_CONFIG points to a missing file", async () => {
    const missing = `${dir.path}/does-not-exist.yaml`;
    const line = await startupFailure(kind, { CASCADE_CONFIG: missing });
    expect(line).toContain("CASCADE_CONFIG");
    expect(line).toContain(missing);
    expect(line).toMatch(/ENOENT|not found|does not exist|cannot read/i);
  });

  it("when the config has an unknown key (naming its path)", async () => {
    const config = fakeConfig("http://127.0.0.1:9/v1");
    const withTypo = {
      ...config,
      models: { ...config.models, primary: { ...config.models.primary, foo: 1 } },
    };
    const line = await startupFailure(kind, {
      CASCADE_CONFIG: dir.write(`unknown-key-${kind}.json`, withTypo),
    });
    // Either `models.primary.foo` or `models.primary: Unrecognized key: "foo"` names it exactly.
    expect(line).toMatch(/models\.primary(\.foo\b|\b.*\bfoo\b)/);
    expect(line).toMatch(/unknown|unrecognized/i);
  });

  it("when a provider's connections is not a positive whole number (naming providers.<id>.connections)", async () => {
    const config = fakeConfig("http://127.0.0.1:9/v1");
    const zero = { ...config, providers: { fake: { ...config.providers.fake, connections: 0 } } };
    const line = await startupFailure(kind, {
      CASCADE_CONFIG: dir.write(`connections-${kind}.json`, zero),
    });
    expect(line).toContain("providers.fake.connections");
    expect(line).toMatch(/at least 1/);
  });

  it("when a YAML config's chain names an unknown model", async () => {
    const yaml = [
      "providers:",
      "  fake: { type: openai, base_url: http://127.0.0.1:9/v1, api_key_env: FAKE_KEY }",
      "models:",
      "  primary: { provider: fake, name: up-primary }",
      "routes:",
      "  default:",
      "    chain:",
      "      - { model: primary }",
      "      - { model: no-such-model }",
      "",
    ].join("\n");
    const line = await startupFailure(kind, {
      CASCADE_CONFIG: dir.write(`unknown-model-${kind}.yaml`, yaml),
    });
    expect(line).toContain("routes.default.chain.1.model");
    expect(line).toContain("no-such-model");
  });

  it("when a hop's timeout_ms is past what a timer can wait (every call would time out at once)", async () => {
    const yaml = [
      "providers: { sim: { type: simulated } }",
      "models: { a: { provider: sim } }",
      "routes: { default: { chain: [{ model: a, timeout_ms: 3000000000 }] } }",
      "",
    ].join("\n");
    const line = await startupFailure(kind, { CASCADE_CONFIG: dir.write(`huge-timeout-${kind}.yaml`, yaml) });
    expect(line).toContain("routes.default.chain.0.timeout_ms");
    expect(line).toContain("at most 2147483647");
  });

  it("when CASCADE_CONFIG is set but empty (not the demo config in its place)", async () => {
    const line = await startupFailure(kind, { CASCADE_CONFIG: "" });
    expect(line).toContain("CASCADE_CONFIG is set but empty");
  });

  it.each(["redis://127.0.0.1:notaport", "redis://127.0.0.1:99999", "redis://"])(
    "when REDIS_URL is not a URL with a host (%s), without a stack trace",
    async (url) => {
      const line = await startupFailure(kind, { REDIS_URL: url });
      expect(line).toContain("REDIS_URL");
      expect(line).toContain("host:port");
    },
  );

  it("when the config file is empty (only a comment), saying what it needs", async () => {
    const line = await startupFailure(kind, {
      CASCADE_CONFIG: dir.write(`empty-${kind}.yaml`, "# nothing yet\n"),
    });
    expect(line).toContain("empty");
    expect(line).toMatch(/providers.*models/);
    const json = await startupFailure(kind, { CASCADE_CONFIG: dir.write(`empty-${kind}.json`, "") });
    expect(json).toContain("empty");
  });

  it("when the config file is not valid YAML", async () => {
    const line = await startupFailure(kind, {
      CASCADE_CONFIG: dir.write(`broken-${kind}.yaml`, "providers: [unclosed\n  models: {"),
    });
    expect(line).toContain("CASCADE_CONFIG");
  });

  it("when REDIS_URL points at a closed port", async () => {
    const line = await startupFailure(kind, { REDIS_URL: "redis://127.0.0.1:1" });
    expect(line).toContain("REDIS_URL");
    expect(line).toContain("127.0.0.1:1");
  });

  it("when REDIS_URL reaches something that accepts connections and never answers (it hung for ever)", async () => {
    const line = await startupFailure(kind, { REDIS_URL: silent.url });
    expect(line).toContain("REDIS_URL");
    expect(line).toContain(silent.url.replace("redis://", ""));
    expect(line).toMatch(/did not answer/);
  });

  it("not when Redis answers but is still loading its data: that one is waited for", async () => {
    // Loading: INFO says loading:1 (ioredis's ready check waits and asks again), CLIENT is
    // taken, every other command is refused with -LOADING. A process must wait for it, not call it frozen.
    const server = createServer((socket) => {
      socket.on("data", (data: Buffer) => {
        for (const command of data
          .toString("latin1")
          .split(/^\*/m)
          .filter((part) => part.trim() !== "")) {
          // A loading Redis takes CLIENT (ioredis's SETINFO) and INFO, refuses the rest; this one
          // speaks RESP2 only (HELLO unknown, as before Redis 6).
          if (/hello/i.test(command)) socket.write("-ERR unknown command 'hello'\r\n");
          else if (/client/i.test(command)) socket.write("+OK\r\n");
          else if (/info/i.test(command)) {
            const info = "# Persistence\r\nloading:1\r\nloading_eta_seconds:1\r\n";
            socket.write(`$${info.length}\r\n${info}\r\n`);
          } else socket.write("-LOADING Redis is loading the dataset in memory\r\n");
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const proc = spawnCascade(kind, {
        name: `${kind} (Redis loading)`,
        env: { ...baseEnv, REDIS_URL: `redis://127.0.0.1:${(server.address() as AddressInfo).port}` },
      });
      // Past twice the check's 5 s: still waiting, nothing said about a Redis that does not answer.
      const exited = await proc.waitForExit(12_000).then(
        () => true,
        () => false,
      );
      expect(exited, proc.describe()).toBe(false);
      expect(proc.stderr.join("\n")).not.toMatch(/did not answer/);
      proc.kill("SIGKILL");
    } finally {
      server.close();
    }
  }, 30_000);

  it("when REDIS_URL selects a database the Redis does not have", async () => {
    // Redis has 16 by default: ioredis only reports the failed SELECT as an event and would go on
    // in database 0, so jobs would land where REDIS_URL does not say.
    const line = await startupFailure(kind, { REDIS_URL: `${inject("redisUrl")}/99` });
    expect(line).toContain("REDIS_URL");
    expect(line).toContain("99");
  });

  it("when REDIS_URL holds a password the Redis refuses (the fix is the password, not starting Redis)", async () => {
    const wrong = lockedRedis.url.replace("redis://", "redis://:not-the-password@");
    const line = await startupFailure(kind, { REDIS_URL: wrong });
    expect(line).toContain("REDIS_URL");
    expect(line).toMatch(/refused the credentials/);
    expect(line).not.toContain("not-the-password");
  });

  it("when REDIS_URL says rediss:// (TLS) for a Redis that speaks plain RESP: says so, in one line", async () => {
    // A probe's find: a timeout and "start Redis", with Node's warning about an IP address as the
    // TLS server name printed first, while Redis ran, on that port, without TLS.
    const line = await startupFailure(kind, { REDIS_URL: inject("redisUrl").replace(/^redis:/, "rediss:") });
    expect(line).toContain("REDIS_URL");
    expect(line).toMatch(/without TLS/);
    expect(line).toContain("redis://");
  });

  it("when REDIS_URL says rediss:// for a port where no Redis answers either way (an SSH banner): cannot reach, not 'use redis://'", async () => {
    const server = createServer((socket) => {
      socket.on("error", () => {});
      socket.write("SSH-2.0-OpenSSH_9.2\r\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const line = await startupFailure(kind, { REDIS_URL: `rediss://127.0.0.1:${port}` });
      expect(line).toMatch(/Cannot reach Redis/);
      expect(line).not.toMatch(/without TLS/);
    } finally {
      server.close();
    }
  });

  it("when REDIS_URL reaches a server that is not Redis (an HTTP port): says so, not the client library's parser error", async () => {
    const server = createServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () => socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const line = await startupFailure(kind, { REDIS_URL: `redis://127.0.0.1:${port}` });
      expect(line).toMatch(/is not Redis/);
      expect(line).toContain(`127.0.0.1:${port}`);
      expect(line).toContain("REDIS_URL");
      expect(line).not.toMatch(/RESP|report this/i);
    } finally {
      server.close();
    }
  });

  it("when Redis has maxmemory-policy allkeys-lru", async () => {
    expect(await redisCommand(evictingRedis.url, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru")).toBe(
      "+OK",
    );
    const line = await startupFailure(kind, { REDIS_URL: evictingRedis.url });
    expect(line).toContain("noeviction");
    expect(line).toContain("allkeys-lru");
    // The command it gives reaches this Redis, not whatever answers on 6379.
    const { hostname, port } = new URL(evictingRedis.url);
    expect(line).toContain(`redis-cli -h ${hostname} -p ${port} CONFIG SET maxmemory-policy noeviction`);
  });

  it("when LOG_LEVEL is not a pino level", async () => {
    const line = await startupFailure(kind, { LOG_LEVEL: "loud" });
    expect(line).toContain("LOG_LEVEL");
    expect(line).toContain('"loud"');
  });

  it("when WORKER_LOCK_DURATION_MS is not a number", async () => {
    const line = await startupFailure(kind, { WORKER_LOCK_DURATION_MS: "soon" });
    expect(line).toContain("WORKER_LOCK_DURATION_MS");
  });
});

describe("process-specific settings", () => {
  it("worker: WORKER_CONCURRENCY=abc", async () => {
    const line = await startupFailure("worker", { WORKER_CONCURRENCY: "abc" });
    expect(line).toContain("WORKER_CONCURRENCY");
    expect(line).toContain("abc");
  });

  it("worker: WORKER_CONCURRENCY=0", async () => {
    const line = await startupFailure("worker", { WORKER_CONCURRENCY: "0" });
    expect(line).toContain("WORKER_CONCURRENCY");
  });

  it("api: PORT=abc", async () => {
    const line = await startupFailure("api", { PORT: "abc" });
    expect(line).toContain("PORT");
  });

  it("worker: METRICS_PORT already in use (naming the setting and the fix)", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = holder.address() as AddressInfo;
      const line = await startupFailure("worker", { METRICS_PORT: String(port), HOST: "127.0.0.1" });
      expect(line).toContain(`METRICS_PORT ${port}`);
      expect(line).toMatch(/already in use/);
    } finally {
      holder.close();
    }
  });

  it("worker: a provider's api_key_env variable is unset (naming the variable)", async () => {
    const line = await startupFailure("worker", { FAKE_KEY: undefined });
    expect(line).toContain("FAKE_KEY");
    expect(line).toContain("providers.fake");
  });
});

describe("an API whose environment lacks a key the gateway needs", () => {
  it("starts with a loud warning naming the setting, for a provider's key and a deployment's own", async () => {
    const config = fakeConfig("http://127.0.0.1:9/v1") as ReturnType<typeof fakeConfig> & {
      models: Record<string, unknown>;
    };
    config.models.pooled = {
      deployments: [
        { id: "east", provider: "fake", name: "up-east" },
        { id: "west", provider: "fake", name: "up-west", api_key_env: "WEST_KEY" },
      ],
    };
    const env = { ...baseEnv, CASCADE_CONFIG: dir.write("pooled.json", config), FAKE_KEY: undefined };
    const api = await startApi({ env });
    const provider = await api.waitForLine(/providers\.fake\.api_key_env/, 5_000);
    expect(provider).toContain("FAKE_KEY");
    const deployment = await api.waitForLine(/models\.pooled\.deployments\.1\.api_key_env/, 5_000);
    expect(deployment).toContain("WEST_KEY");
    expect(api.exitStatus).toBeUndefined();
  });

  it("a gateway call to a deployment whose own key it lacks names the deployment's setting, not the provider's", async () => {
    const fake = await startFakeOpenAI();
    try {
      const config = {
        providers: { p: { type: "openai", base_url: fake.url, api_key_env: "FAKE_KEY" } },
        models: {
          only: { deployments: [{ id: "k2", provider: "p", name: "up-k2", api_key_env: "POOL_KEY_TWO" }] },
        },
      };
      // The provider's key is there; the deployment's own (POOL_KEY_TWO) is not.
      const env = {
        ...baseEnv,
        CASCADE_CONFIG: dir.write("deployment-key.json", config),
        POOL_KEY_TWO: undefined,
      };
      const api = await startApi({ env });
      await api.waitForLine("models.only.deployments.0.api_key_env", 5_000);
      const response = await fetch(`${api.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "only", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(response.status).toBe(502);
      await response.text();
      expect(fake.calls).toHaveLength(0);
      const line = await api.waitForLine(
        (text) => text.includes('"detail"') && text.includes("POOL_KEY_TWO"),
        5_000,
      );
      const detail = JSON.parse(line).detail as string;
      // Was: "environment variable POOL_KEY_TWO (providers.p.api_key_env) is not set on this
      // process": providers.p.api_key_env is FAKE_KEY, and it is set.
      expect(detail).toContain("models.only.deployments.0.api_key_env");
      expect(detail).not.toContain("providers.p.api_key_env");
    } finally {
      await fake.close();
    }
  });
});

describe("a Redis that forbids reading maxmemory-policy", () => {
  it("starts both processes with a loud warning instead of exiting", async () => {
    const restricted = await spawnRedisServer();
    try {
      const acl = ["ACL", "SETUSER", "nocfg", "on", ">nocfg-pass", "~*", "&*", "+@all", "-config"];
      expect(await redisCommand(restricted.url, ...acl)).toBe("+OK");
      const env = { ...baseEnv, REDIS_URL: `redis://nocfg:nocfg-pass@127.0.0.1:${restricted.port}` };
      const [api, worker] = await Promise.all([startApi({ env }), startWorker({ env })]);
      for (const proc of [api, worker]) {
        const warning = await proc.waitForLine(/maxmemory-policy/, 5_000);
        expect(warning).toMatch(/noeviction/);
        expect(warning).not.toContain("nocfg-pass");
        expect(proc.exitStatus).toBeUndefined();
      }
      await stopAllCascadeProcesses();
    } finally {
      await restricted.stop();
    }
  });
});
