/**
 * A Redis Cluster that asks for a password (every managed cluster does): REDIS_URL carries it, and
 * every connection the API and the worker open must use it, the job event reader's too (a
 * duplicate of the API's cluster client, given node options of its own: they must be merged with
 * the password, not replace it). Without it a `GET /v1/jobs/:id?wait=` would never hear of the
 * job's end and answer after the whole wait with the job still running.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CascadeApi,
  makeTempDir,
  startApi,
  startWorker,
  stopAllCascadeProcesses,
  type TempDir,
} from "../support/processes.js";
import { hasRedisCli, type SpawnedCluster, spawnRedisCluster } from "../support/redis-cluster.js";
import { chatRequest, http, postJob } from "./helpers.js";

const PASSWORD = "cluster-s3cret";
const config = {
  providers: { sim: { type: "simulated", simulate: { latency_ms: [300, 300] } } },
  models: { echo: { provider: "sim" } },
  routes: { default: { chain: [{ model: "echo" }] } },
};

describe.skipIf(!hasRedisCli)("a Redis Cluster with a password", () => {
  let cluster: SpawnedCluster;
  let dir: TempDir;
  let api: CascadeApi;

  beforeAll(async () => {
    cluster = await spawnRedisCluster({ masters: 3, replicasPerMaster: 0 });
    // The cluster bus does not use requirepass: setting it once the cluster is formed is enough.
    for (const node of cluster.nodes) await cluster.command(node, "CONFIG", "SET", "requirepass", PASSWORD);
    dir = makeTempDir();
    const seed = new URL(cluster.url);
    seed.password = PASSWORD;
    const env = {
      REDIS_URL: seed.toString(),
      CASCADE_CONFIG: dir.write("cascade.json", JSON.stringify(config)),
      WORKER_CONCURRENCY: "4",
    };
    [api] = await Promise.all([startApi({ env }), startWorker({ env })]);
  }, 90_000);

  afterAll(async () => {
    await stopAllCascadeProcesses();
    await cluster?.stop();
    dir?.cleanup();
  });

  it("serves ?wait= from the job's events, read through an authenticated reader", async () => {
    for (let round = 0; round < 3; round += 1) {
      const created = await postJob(api.url, { request: chatRequest(`with a password ${round}`) });
      expect(created.status).toBe(202);
      const started = Date.now();
      const waited = await http(api.url, "GET", `/v1/jobs/${created.body.id}?wait=8`);
      expect(waited.status).toBe(200);
      expect(waited.body.status).toBe("succeeded");
      // The job takes ~300 ms; the wait ends with it, not at its 8 s bound.
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });
});
