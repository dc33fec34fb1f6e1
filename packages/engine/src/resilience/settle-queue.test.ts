import { createKeys, systemClock } from "@cascade/shared";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { SettleQueue } from "./settle-queue.js";

const keys = createKeys("settle-queue-test");
const logger = pino({ level: "silent" });

describe("SettleQueue", () => {
  it("sends a refused batch again only when its backoff is over, however many flushes wait", async () => {
    let sends = 0;
    const queue = new SettleQueue(
      async () => {
        sends += 1;
        throw new Error("READONLY You can't write against a read only replica.");
      },
      keys,
      logger,
      systemClock,
    );
    queue.pending.correctBudget("{t}:spend:tenant:a:d", 0.5, 60);
    await Promise.all(Array.from({ length: 20 }, () => queue.flush()));
    expect(sends).toBe(1);
    // The first retry comes 100 ms later: one send, not one per waiting flush.
    await new Promise((resolve) => setTimeout(resolve, 160));
    expect(sends).toBe(2);
    await queue.close(0);
  });

  it("drops a batch the script itself fails on, logging it, and sends the next one", async () => {
    const sent: string[] = [];
    const errors: unknown[] = [];
    const queue = new SettleQueue(
      async (_keys, spec) => {
        sent.push(spec);
        if (sent.length === 1) {
          const error = new Error(
            "ERR user_script:12: Script attempted to access nonexistent global variable",
          );
          error.name = "ReplyError";
          throw error;
        }
      },
      keys,
      { ...logger, error: (...parts: unknown[]) => errors.push(parts) } as never,
      systemClock,
    );
    queue.pending.correctBudget("{t}:spend:tenant:a:d", 0.5, 60);
    await queue.flush();
    queue.pending.correctBudget("{t}:spend:tenant:a:d", 0.25, 60);
    await queue.flush();
    expect(sent).toHaveLength(2);
    expect(JSON.stringify(errors)).toContain("dropped");
    expect(sent[1]).toContain("0.25");
  });

  it("refuses a non-finite amount where it is added, not in Redis", () => {
    const queue = new SettleQueue(async () => {}, keys, logger, systemClock);
    expect(() => queue.pending.correctBudget("{t}:spend", Number.NaN, 60)).toThrow(/not a number/);
    expect(() => queue.pending.recordUsage("{t}:usage", { total: Number.POSITIVE_INFINITY }, 60)).toThrow(
      /not a number/,
    );
  });
});
