/**
 * Time Redis spent per command name (INFO commandstats `usec`), between two snapshots. A script
 * call's own usec includes the commands it ran, which are also listed under their own names.
 * Meaningful only on a Redis nobody else is using.
 */
import type { SharedModule } from "./modules.js";

type RedisClient = ReturnType<SharedModule["createRedis"]>;

export type CommandTimes = Map<string, { calls: number; usec: number }>;

export async function snapshotCommandTimes(redis: RedisClient): Promise<CommandTimes> {
  const info = (await redis.info("commandstats")) as string;
  const times: CommandTimes = new Map();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    times.set(match[1] as string, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return times;
}

/** Per command name: calls and µs of Redis time between the snapshots, divided by `per`. */
export function commandTimesDelta(
  before: CommandTimes,
  after: CommandTimes,
  per = 1,
): Array<{ command: string; calls: number; usec: number }> {
  const rows: Array<{ command: string; calls: number; usec: number }> = [];
  for (const [command, now] of after) {
    const then = before.get(command) ?? { calls: 0, usec: 0 };
    const calls = now.calls - then.calls;
    if (calls > 0) rows.push({ command, calls: calls / per, usec: (now.usec - then.usec) / per });
  }
  return rows.sort((a, b) => b.usec - a.usec);
}
