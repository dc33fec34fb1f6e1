/**
 * Everything stored under a key pattern, read with the command each type needs, as raw bytes:
 * for tests that must prove something is NOT in Redis (a secret, a prompt), whatever the value's
 * encoding (JSON, msgpack, a stream entry). One node: SCAN on a cluster would need every master.
 */
import type { Redis } from "ioredis";

export interface DumpedKey {
  key: string;
  type: string;
  /** Every field, member, element and value of the key (hash fields and stream field names too). */
  values: Buffer[];
}

/** SCANs `pattern` (a Redis glob; mind that `[` is special) and reads every key it finds. */
export async function dumpKeys(redis: Redis, pattern: string): Promise<DumpedKey[]> {
  const keys = new Set<string>();
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    for (const key of batch) keys.add(key);
  } while (cursor !== "0");
  const dumped: DumpedKey[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    dumped.push({ key, type, values: await readValues(redis, key, type) });
  }
  return dumped;
}

async function readValues(redis: Redis, key: string, type: string): Promise<Buffer[]> {
  switch (type) {
    case "string":
      return [(await redis.getBuffer(key)) ?? Buffer.alloc(0)];
    case "hash":
      return Object.entries(await redis.hgetallBuffer(key)).flatMap(([field, value]) => [
        Buffer.from(field),
        value,
      ]);
    case "list":
      return redis.lrangeBuffer(key, 0, -1);
    case "set":
      return redis.smembersBuffer(key);
    case "zset":
      return redis.zrangeBuffer(key, 0, "-1");
    case "stream":
      return (await redis.xrangeBuffer(key, "-", "+")).flatMap(([id, fields]) => [id, ...fields]);
    case "none":
      // Expired or deleted between SCAN and TYPE.
      return [];
    default:
      throw new Error(`dumpKeys: key ${key} has type ${type}, which this helper cannot read yet`);
  }
}
