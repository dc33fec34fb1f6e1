import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createJobEventWriter, type EventStreamAppender, unrestartedHop } from "./job-event-writer.js";

/** An appender that keeps what it was given: each event with the stream lifetime it asked for. */
function recordingAppender() {
  const written: Array<{ event: string; retentionSeconds: number }> = [];
  const appender: EventStreamAppender = {
    async appendEvents(events, _maxEvents, retentionSeconds) {
      for (const entry of events) written.push({ event: entry.event, retentionSeconds });
      return true;
    },
  };
  return { appender, written };
}

describe("a streaming job's event stream", () => {
  it("outlives the job's deadline until its end, then is kept for the retention from there", async () => {
    const { appender, written } = recordingAppender();
    let nowMs = 1_000_000;
    const writer = createJobEventWriter({
      lock: appender,
      jobId: "job_1",
      retentionSeconds: 3600,
      // The job may wait for a limit up to two days before it ends.
      deadlineAt: nowMs + 2 * 86_400_000,
      now: () => nowMs,
      logger: pino({ level: "silent" }),
    });
    writer.status("running");
    writer.delta(0, { content: "Hel" });
    nowMs += 86_400_000;
    writer.attempt({ model: "a", provider: "p", outcome: "success", duration_ms: 5, started_at: 1 });
    await writer.done({ id: "job_1", status: "succeeded" } as never);
    expect(written).toEqual([
      { event: "status", retentionSeconds: 3600 + 2 * 86_400 },
      // The delta, flushed before the attempt, a day later.
      { event: "delta", retentionSeconds: 3600 + 86_400 },
      { event: "attempt", retentionSeconds: 3600 + 86_400 },
      { event: "status", retentionSeconds: 3600 },
      { event: "done", retentionSeconds: 3600 },
    ]);
  });

  it("writes no restart for a hop that showed nothing (log probabilities alone)", async () => {
    const { appender, written } = recordingAppender();
    const writer = createJobEventWriter({
      lock: appender,
      jobId: "job_2",
      retentionSeconds: 60,
      logger: pino({ level: "silent" }),
    });
    writer.delta(0, { logprobs: { content: [], refusal: null } as never });
    writer.restart(0, "content_filter");
    writer.delta(1, { content: "ok" });
    writer.restart(1, "network_error");
    await writer.done({ id: "job_2", status: "succeeded" } as never);
    expect(written.map((entry) => entry.event)).toEqual(["delta", "restart", "status", "done"]);
  });

  it("a resumed run first drops an earlier run's deltas left standing, and only those", () => {
    const event = (name: string, data: unknown) => ({ event: name, data: JSON.stringify(data) });
    // Newest first, as XREVRANGE gives them.
    expect(
      unrestartedHop([event("status", { status: "running" }), event("delta", { hop: 1, content: "Hi" })]),
    ).toBe(1);
    expect(
      unrestartedHop([event("restart", { hop: 1, reason: "timeout" }), event("delta", { hop: 1 })]),
    ).toBe(undefined);
    expect(unrestartedHop([event("status", { status: "queued" }), event("attempt", {})])).toBe(undefined);
    expect(unrestartedHop([])).toBe(undefined);
  });

  it("writes that restart before anything of the resumed run's own", async () => {
    const { appender, written } = recordingAppender();
    const earlier = [{ event: "delta", data: JSON.stringify({ hop: 0, content: "half an ans" }) }];
    const writer = createJobEventWriter({
      lock: { ...appender, recentEvents: async () => earlier },
      jobId: "job_4",
      retentionSeconds: 60,
      resumed: true,
      logger: pino({ level: "silent" }),
    });
    writer.status("running");
    writer.delta(0, { content: "a whole answer" });
    await writer.done({ id: "job_4", status: "succeeded" } as never);
    expect(written.map((entry) => entry.event)).toEqual(["restart", "status", "delta", "status", "done"]);
  });
});
