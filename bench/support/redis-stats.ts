/**
 * Server-side counters around a measured interval: commands by name (scripts' inner calls
 * included, as Redis counts them) and the server's CPU time. Meaningful only on a Redis nobody
 * else is using, such as the private one the benches spawn.
 */
import type { SharedModule } from "./modules.js";

type RedisClient = ReturnType<SharedModule["createRedis"]>;

export interface RedisSnapshot {
  cpuSeconds: number;
  commands: Map<string, number>;
  totalCommands: number;
  netInputBytes: number;
  netOutputBytes: number;
}

export interface RedisDelta {
  cpuSeconds: number;
  /** Commands Redis processed, counting each script as one plus every command it ran. */
  commands: number;
  byCommand: Record<string, number>;
  /** Bytes clients sent to Redis and received from it. */
  netInputBytes: number;
  netOutputBytes: number;
}

function field(info: string, name: string): number {
  const match = new RegExp(`^${name}:([0-9.]+)`, "m").exec(info);
  return match ? Number(match[1]) : 0;
}

export async function snapshotRedis(redis: RedisClient): Promise<RedisSnapshot> {
  const info = (await redis.info("cpu", "stats", "commandstats")) as string;
  const commands = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    commands.set(match[1] as string, Number(match[2]));
  }
  return {
    cpuSeconds: field(info, "used_cpu_user") + field(info, "used_cpu_sys"),
    commands,
    totalCommands: field(info, "total_commands_processed"),
    netInputBytes: field(info, "total_net_input_bytes"),
    netOutputBytes: field(info, "total_net_output_bytes"),
  };
}

export function redisDelta(before: RedisSnapshot, after: RedisSnapshot): RedisDelta {
  const byCommand: Record<string, number> = {};
  for (const [name, calls] of after.commands) {
    const delta = calls - (before.commands.get(name) ?? 0);
    if (delta > 0) byCommand[name] = delta;
  }
  const sorted = Object.fromEntries(Object.entries(byCommand).sort((a, b) => b[1] - a[1]));
  return {
    cpuSeconds: after.cpuSeconds - before.cpuSeconds,
    commands: after.totalCommands - before.totalCommands,
    byCommand: sorted,
    netInputBytes: after.netInputBytes - before.netInputBytes,
    netOutputBytes: after.netOutputBytes - before.netOutputBytes,
  };
}

/** Deletes every key starting with `prefix` (SCAN + UNLINK): what obliterate leaves behind. */
export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<number> {
  let cursor = "0";
  let deleted = 0;
  const pattern = `${prefix.replace(/[*?[\]\\]/g, "\\$&")}*`;
  do {
    const [next, keys] = (await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000)) as [string, string[]];
    cursor = next;
    if (keys.length) deleted += (await redis.unlink(...keys)) as number;
  } while (cursor !== "0");
  return deleted;
}
