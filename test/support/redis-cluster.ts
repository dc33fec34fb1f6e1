/**
 * A real Redis Cluster on loopback for tests: N masters with R replicas each, every node a
 * `redis-server --cluster-enabled yes` child (see redis-server.ts), joined by
 * `redis-cli --cluster create`. The whole run uses one when CASCADE_TEST_REDIS=cluster
 * (global-setup.ts); the failover test starts its own small one to kill a master of.
 */
import { execFile, execFileSync } from "node:child_process";
import net from "node:net";
import { promisify } from "node:util";
import { type SpawnedRedis, spawnRedisServer } from "./redis-server.js";

/** Whether redis-server and redis-cli are on PATH (a test's own cluster needs both). */
export const hasRedisCli = (() => {
  try {
    execFileSync("redis-cli", ["--version"], { stdio: "ignore" });
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const run = promisify(execFile);

export interface ClusterNode {
  /** The cluster's id of the node (CLUSTER MYID). */
  id: string;
  port: number;
  url: string;
  server: SpawnedRedis;
}

export interface SpawnedCluster {
  /** A seed URL (the first master at creation): what REDIS_URL is set to. */
  url: string;
  nodes: ClusterNode[];
  /** The node that currently serves `slot` as a master (asks a live node: after a failover it changes). */
  masterOf(slot: number): Promise<ClusterNode>;
  /** The live masters, as the cluster sees them now. */
  masters(): Promise<ClusterNode[]>;
  /** The slot of a key or a hash tag, e.g. `{cascade}` (CLUSTER KEYSLOT). */
  keySlot(key: string): Promise<number>;
  /** Resolves once every live node sees the cluster as ok, with every slot served by a live master. */
  waitUntilHealthy(timeoutMs?: number): Promise<void>;
  /** Runs a command on one node with redis-cli and returns its output. */
  command(node: ClusterNode, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface SpawnClusterOptions {
  masters?: number;
  replicasPerMaster?: number;
  /**
   * cluster-node-timeout: a master unreachable this long is failed and its replica promoted.
   * Redis's default is 15 s; tests want a failover in a second or two.
   */
  nodeTimeoutMs?: number;
}

/** Spawns and joins a cluster; resolves once it is healthy (state ok, replicas in sync). */
export async function spawnRedisCluster(options: SpawnClusterOptions = {}): Promise<SpawnedCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 2_000;
  const extraArgs = [
    ...["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
    ...["--cluster-node-timeout", String(nodeTimeoutMs)],
    // A replica of a master that failed long ago may still be promoted: a test cluster has no
    // older replica to prefer, and losing the whole shard is worse.
    ...["--cluster-replica-validity-factor", "0"],
  ];
  const taken = new Set<number>();
  const servers = await Promise.all(
    Array.from({ length: masters * (1 + replicas) }, async () => {
      // Each node also listens on its port + 10000 (the cluster bus): both must be free, and a
      // port picked free may be taken before redis-server binds it, so try a few.
      for (let attempt = 1; ; attempt += 1) {
        const port = await findClusterPort(taken);
        try {
          return await spawnRedisServer({ port, extraArgs });
        } catch (error) {
          if (attempt >= 5 || !/in use/i.test((error as Error).message)) throw error;
        }
      }
    }),
  );
  const stopAll = async () => void (await Promise.all(servers.map((server) => server.stop())));
  try {
    const nodes: ClusterNode[] = await Promise.all(
      servers.map(async (server) => ({
        id: (await cli(server.port, "CLUSTER", "MYID")).trim(),
        port: server.port,
        url: server.url,
        server,
      })),
    );
    await run(
      "redis-cli",
      [
        "--cluster",
        "create",
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        "--cluster-replicas",
        String(replicas),
        "--cluster-yes",
      ],
      { timeout: 30_000 },
    ).catch((error: Error & { stdout?: string }) => {
      throw new Error(`redis-cli --cluster create failed: ${error.message} ${error.stdout ?? ""}`);
    });
    const cluster = clusterHandle(nodes, stopAll);
    await cluster.waitUntilHealthy(30_000);
    return cluster;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function clusterHandle(nodes: ClusterNode[], stop: () => Promise<void>): SpawnedCluster {
  const alive = () => nodes.filter((node) => node.server.isRunning());
  const anyAlive = () => {
    const node = alive()[0];
    if (!node) throw new Error("no node of the cluster is running");
    return node;
  };
  const command = (node: ClusterNode, ...args: string[]) => cli(node.port, ...args);
  return {
    url: nodes[0]?.url ?? "",
    nodes,
    command,
    stop,
    async keySlot(key) {
      return Number((await command(anyAlive(), "CLUSTER", "KEYSLOT", key)).trim());
    },
    async masters() {
      const table = parseClusterNodes(await command(anyAlive(), "CLUSTER", "NODES"));
      const ids = new Set(
        table
          .filter((entry) => entry.flags.includes("master") && !entry.flags.includes("fail"))
          .map((entry) => entry.id),
      );
      return nodes.filter((node) => ids.has(node.id) && node.server.isRunning());
    },
    async masterOf(slot) {
      const table = parseClusterNodes(await command(anyAlive(), "CLUSTER", "NODES"));
      const owner = table.find(
        (entry) =>
          entry.flags.includes("master") &&
          !entry.flags.includes("fail") &&
          entry.slots.some(([from, to]) => slot >= from && slot <= to),
      );
      const node = nodes.find((candidate) => candidate.id === owner?.id);
      if (!node) throw new Error(`no live master serves slot ${slot}`);
      return node;
    },
    async waitUntilHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let problem = "not checked yet";
      while (Date.now() < deadline) {
        problem = await healthProblem(alive(), command).catch((error: Error) => error.message);
        if (!problem) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`Redis Cluster not healthy within ${timeoutMs} ms: ${problem}`);
    },
  };
}

/** What is not yet right with the live nodes, or "" when all is well. */
async function healthProblem(
  live: ClusterNode[],
  command: (node: ClusterNode, ...args: string[]) => Promise<string>,
): Promise<string> {
  const liveIds = new Set(live.map((node) => node.id));
  for (const node of live) {
    const info = await command(node, "CLUSTER", "INFO");
    if (!/cluster_state:ok/.test(info)) return `node ${node.port}: ${info.match(/cluster_state:\w+/)?.[0]}`;
    const table = parseClusterNodes(await command(node, "CLUSTER", "NODES"));
    const covered = table
      .filter((entry) => entry.flags.includes("master") && liveIds.has(entry.id))
      .flatMap((entry) => entry.slots)
      .reduce((sum, [from, to]) => sum + to - from + 1, 0);
    if (covered !== 16384) return `node ${node.port} sees ${covered} of 16384 slots on live masters`;
    const self = table.find((entry) => entry.flags.includes("myself"));
    if (self?.flags.includes("slave")) {
      const replication = await command(node, "INFO", "replication");
      if (!/master_link_status:up/.test(replication)) return `replica ${node.port} not in sync`;
    }
  }
  return "";
}

interface ClusterNodesEntry {
  id: string;
  flags: string[];
  slots: Array<[number, number]>;
}

/** CLUSTER NODES: `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...` */
export function parseClusterNodes(text: string): ClusterNodesEntry[] {
  return text
    .split("\n")
    .map((line) => line.trim().split(" "))
    .filter((fields) => fields.length >= 8)
    .map((fields) => ({
      id: fields[0] ?? "",
      flags: (fields[2] ?? "").split(","),
      slots: fields
        .slice(8)
        .filter((range) => !range.startsWith("["))
        .map((range) => {
          const [from, to] = range.split("-").map(Number);
          return [from ?? 0, to ?? from ?? 0] as [number, number];
        }),
    }));
}

/** A port below 55536 that is free, with its bus port (+10000), and not picked before. */
async function findClusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    taken.add(port);
    taken.add(port + 10_000);
    if ((await isPortFree(port)) && (await isPortFree(port + 10_000))) return port;
  }
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-p", String(port), ...args], { timeout: 5_000 });
  return stdout;
}
