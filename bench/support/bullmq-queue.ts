/**
 * Queue chores shared by benches that drive their own worker: pre-filling a queue in `addBulk`
 * chunks, and cleaning up after a round (obliterate, delete whatever else lives under the
 * prefix, close the connections).
 */
import type { Queue, SharedModule } from "./modules.js";
import { deleteKeysWithPrefix } from "./redis-stats.js";

type RedisClient = ReturnType<SharedModule["createRedis"]>;
type BulkEntry = Parameters<Queue["addBulk"]>[0][number];

export const ADD_BULK_CHUNK = 1000;

/** Adds `jobs` jobs, `entry(index)` each, in chunks of ADD_BULK_CHUNK. */
export async function addInChunks(
  queue: Queue,
  jobs: number,
  entry: (index: number) => BulkEntry,
): Promise<void> {
  for (let start = 0; start < jobs; start += ADD_BULK_CHUNK) {
    const chunk = Array.from({ length: Math.min(ADD_BULK_CHUNK, jobs - start) }, (_, offset) =>
      entry(start + offset),
    );
    await queue.addBulk(chunk);
  }
}

/** Obliterates the queue, deletes every key left under `prefix`, closes the connections. */
export async function cleanUpQueue(queue: Queue, connections: RedisClient[], prefix: string): Promise<void> {
  const [first] = connections;
  try {
    await queue.obliterate({ force: true });
  } catch (error) {
    console.error(`  (obliterate failed: ${(error as Error).message}; deleting the keys instead)`);
  }
  if (first) await deleteKeysWithPrefix(first, prefix);
  await queue.close();
  for (const connection of connections) await connection.quit().catch(() => connection.disconnect());
}
