import type { EventStreamAppender } from "@cascade/engine";
import type { JobProgress, Keys, RedisClient } from "@cascade/shared";
import { LOCKED_EVENTS_LUA, LOCKED_PROGRESS_LUA } from "./lua/locked-writes.lua.js";

type Command = (...args: Array<string | number>) => Promise<number>;

const COMMANDS = {
  cascadeLockedProgress: { lua: LOCKED_PROGRESS_LUA, keys: 4 },
  cascadeLockedEvents: { lua: LOCKED_EVENTS_LUA, keys: 2 },
} as const;

/**
 * The writes one run of a completion job makes to the job's shared state, each made only while
 * the run holds the job's BullMQ lock (see lua/locked-writes.lua.ts). BullMQ itself refuses a
 * stale run's result, but not these writes: without the check a run that stalled past its lock
 * would overwrite the progress and events of the run that took the job over.
 */
export interface RunLock extends EventStreamAppender {
  /** Set once a write found the lock gone; every later write is refused without a round trip. */
  readonly lost: boolean;
  /** Saves the job's resume point; false (nothing written) when the run no longer holds the lock. */
  saveProgress(progress: JobProgress): Promise<boolean>;
}

export interface RunLocks {
  /**
   * The locked writes of the run holding `token` for `jobId`; `onLost` is called once, on the
   * first write refused for want of the lock (the caller interrupts the run).
   */
  forRun(jobId: string, token: string, onLost: () => void): RunLock;
}

export function createRunLocks(redis: RedisClient, keys: Keys): RunLocks {
  const table = redis as unknown as Record<string, Command>;
  for (const [name, spec] of Object.entries(COMMANDS)) {
    if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: spec.keys, lua: spec.lua });
  }
  const progressCommand = (table.cascadeLockedProgress as Command).bind(redis);
  const eventsCommand = (table.cascadeLockedEvents as Command).bind(redis);

  return {
    forRun(jobId, token, onLost) {
      const lockKey = keys.completionJobLock(jobId);
      let lost = false;
      const refused = () => {
        if (!lost) {
          lost = true;
          onLost();
        }
        return false;
      };
      return {
        get lost() {
          return lost;
        },
        async saveProgress(progress) {
          if (lost) return false;
          const written = await progressCommand(
            lockKey,
            keys.completionJob(jobId),
            keys.completionQueueEvents,
            keys.completionQueueMeta,
            token,
            jobId,
            JSON.stringify(progress),
          );
          return written === 1 ? true : refused();
        },
        async appendEvents(events, maxEvents, retentionSeconds) {
          if (lost) return false;
          if (events.length === 0) return true;
          const args: string[] = [];
          for (const entry of events) args.push(entry.event, entry.data);
          const appended = await eventsCommand(
            lockKey,
            keys.jobEvents(jobId),
            token,
            maxEvents,
            retentionSeconds,
            ...args,
          );
          return appended >= 0 ? true : refused();
        },
        async recentEvents(count) {
          // A read: what any run wrote is there to be read, lock or not.
          const entries = await redis.xrevrange(keys.jobEvents(jobId), "+", "-", "COUNT", count);
          return entries.map(([, fields]) => ({ event: fields[1] ?? "", data: fields[3] ?? "null" }));
        },
      };
    },
  };
}
