import { Queue } from "bullmq";
import type { Logger } from "../logger.js";
import { bullConnection } from "./bull-connection.js";
import type { RedisClient } from "./connection.js";

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
