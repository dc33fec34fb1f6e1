import { JobInterruption, type RunSignal } from "@cascade/engine";
import { describe, expect, it } from "vitest";
import { InFlightRuns } from "./in-flight-runs.js";

function clockAt(start: number) {
  const clock = { time: start, now: () => clock.time };
  return clock;
}

const reasonOf = (run: RunSignal) => (run.signal.reason as JobInterruption).kind;

describe("InFlightRuns", () => {
  it("aborts a held run with the interruption's kind, once", () => {
    const runs = new InFlightRuns(clockAt(0));
    const controller = runs.start("job_1");
    expect(runs.interrupt("job_1", "cancelled")).toBe(true);
    expect(runs.interrupt("job_1", "shutdown")).toBe(true);
    expect(controller.signal.reason).toBeInstanceOf(JobInterruption);
    expect(reasonOf(controller)).toBe("cancelled");
  });

  it("keeps an interruption that arrives before its run starts, for a minute", () => {
    const clock = clockAt(0);
    const runs = new InFlightRuns(clock);
    expect(runs.interrupt("job_early", "cancelled")).toBe(false);
    const early = runs.start("job_early");
    expect(reasonOf(early)).toBe("cancelled");
    runs.end("job_early", early);

    runs.interrupt("job_stale", "cancelled");
    clock.time = 61_000;
    runs.interrupt("job_other", "cancelled");
    expect(runs.start("job_stale").signal.aborted).toBe(false);
  });

  it("keeps no lost lock or shutdown for a job it does not hold: a later run starts clean", () => {
    const runs = new InFlightRuns(clockAt(0));
    const first = runs.start("job_1");
    runs.end("job_1", first);
    // BullMQ's lockRenewalFailed can name a job whose run already ended here.
    expect(runs.interrupt("job_1", "lock_lost")).toBe(false);
    expect(runs.interrupt("job_1", "shutdown")).toBe(false);
    expect(runs.start("job_1").signal.aborted).toBe(false);
  });

  it("interrupts one particular run, not a later run of the same job", () => {
    const runs = new InFlightRuns(clockAt(0));
    const stale = runs.start("job_1");
    const current = runs.start("job_1");
    runs.interruptRun(stale, "lock_lost");
    expect(reasonOf(stale)).toBe("lock_lost");
    expect(current.signal.aborted).toBe(false);
  });

  it("forgets only the run that ended, and interrupts all on shutdown", () => {
    const runs = new InFlightRuns(clockAt(0));
    const first = runs.start("job_1");
    const second = runs.start("job_1");
    runs.end("job_1", first);
    const other = runs.start("job_2");
    expect(runs.size).toBe(2);
    expect(runs.interruptAll("shutdown")).toBe(2);
    expect(first.signal.aborted).toBe(false);
    expect(reasonOf(second)).toBe("shutdown");
    expect(reasonOf(other)).toBe("shutdown");
  });
});
