import { isRedisRefusal, type Logger } from "@cascade/shared";
import { Worker } from "bullmq";

/** How long a worker waits before fetching again after Redis refused the fetch (OOM, READONLY, …). */
export const REFUSED_FETCH_WAIT_MS = 1000;
/** One "worker error" line per distinct message per this window; the rest are counted in the next. */
const ERROR_LOG_WINDOW_MS = 10_000;

/**
 * A BullMQ Worker that waits when Redis refuses its fetch of the next job for now (out of memory
 * at maxmemory, a failover's READONLY, a dataset loading). BullMQ waits `runRetryDelay` after a
 * lost connection, but fetches again at once after any other error: a worker started while Redis
 * was at maxmemory spun a core, emitting an error per try (~6,000 a second).
 */
export class PatientWorker<DataType, ResultType> extends Worker<DataType, ResultType> {
  protected override async moveToActive(token: string, name?: string) {
    try {
      return await super.moveToActive(token, name);
    } catch (error) {
      if (isRedisRefusal(error) && !this.closing) await this.delay(REFUSED_FETCH_WAIT_MS);
      throw error;
    }
  }
}

/**
 * Logs a worker's `error` events, each distinct message at most once per ten seconds; how many
 * more came is in its next line. A Redis refusing every command, or a flapping connection, would
 * otherwise write a line per try.
 */
export function errorEventLogger(logger: Logger, message: string): (error: Error) => void {
  const seen = new Map<string, { at: number; more: number }>();
  return (error) => {
    const key = error.message.slice(0, 200);
    const now = Date.now();
    const last = seen.get(key);
    if (last && now - last.at < ERROR_LOG_WINDOW_MS) {
      last.more += 1;
      return;
    }
    if (seen.size > 100) seen.clear();
    seen.set(key, { at: now, more: 0 });
    logger.error({ err: error, ...(last?.more ? { repeated: last.more } : {}) }, message);
  };
}
