import { type ConnectionOptions, Queue } from "bullmq";
import type { Logger } from "../logger.js";
import type { RedisClient } from "./connection.js";

/**
 * One of our connections as BullMQ's `connection` option (Queue, Worker, QueueEvents). The cast:
 * BullMQ types it with the ioredis it was compiled against; ours is the same ioredis major at
 * runtime, but TypeScript sees two distinct declarations.
 */
export function bullConnection(connection: RedisClient): ConnectionOptions {
  return connection as unknown as ConnectionOptions;
}

/**
 * A BullMQ queue on one of our connections, whose errors go to the JSON log.
 *
 * - The listener: a Queue re-emits its connection's errors, and an EventEmitter with no `error`
 *   listener makes BullMQ print raw multi-line dumps to stderr during every Redis outage.
 */
export function createQueue<Data = unknown, Result = unknown>(
  name: string,
  options: { connection: RedisClient; prefix: string; logger: Logger },
): Queue<Data, Result> {
  const queue = new Queue<Data, Result>(name, {
    connection: bullConnection(options.connection),
    prefix: options.prefix,
  });
  queue.on("error", (error: Error) =>
    options.logger.warn({ err: error.message, queue: name }, "redis connection error; retrying"),
  );
  return queue;
}
