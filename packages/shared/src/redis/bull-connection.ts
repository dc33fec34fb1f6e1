import type { ConnectionOptions } from "bullmq";
import type { RedisClient } from "./connection.js";

/**
 * One of our connections as BullMQ's `connection` option (Queue, Worker, QueueEvents). The cast:
 * BullMQ types it with the ioredis it was compiled against; ours is the same ioredis major at
 * runtime, but TypeScript sees two distinct declarations.
 */
export function bullConnection(connection: RedisClient): ConnectionOptions {
  return connection as unknown as ConnectionOptions;
}
