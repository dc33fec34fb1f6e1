import { afterEach, describe, expect, it, vi } from "vitest";
import { type Admission, holdsJobsAhead, PREFETCH_MIN_SLOTS, SlotGate, startPrefetch } from "./slot-gate.js";

describe("SlotGate", () => {
  it("admits up to its slots, then gives freed slots to held jobs in order; closing hands the rest back", async () => {
    const gate = new SlotGate(2);
    expect(gate.enter()).toBe("admitted");
    expect(gate.enter()).toBe("admitted");
    const order: string[] = [];
    const hold = (name: string) =>
      void (gate.enter() as Promise<Admission>).then((admission) => order.push(`${name} ${admission}`));
    hold("third");
    hold("fourth");
    hold("fifth");
    expect(gate.held).toBe(3);
    gate.leave();
    gate.leave();
    await Promise.resolve();
    expect(order).toEqual(["third admitted", "fourth admitted"]);
    gate.close();
    await Promise.resolve();
    expect(order).toEqual(["third admitted", "fourth admitted", "fifth handed_back"]);
    expect(await gate.enter()).toBe("handed_back");
    expect(gate.takeEnded()).toBe(2);
    expect(gate.takeEnded()).toBe(0);
  });

  it("lets a held job whose run is interrupted go at once, without a slot", async () => {
    const gate = new SlotGate(1);
    expect(gate.enter()).toBe("admitted");
    const cancelled = new AbortController();
    const held = gate.enter(cancelled.signal);
    const next = gate.enter();
    cancelled.abort();
    expect(await held).toBe("interrupted");
    expect(gate.held).toBe(1);
    // The slot goes to the job behind it, not to the interrupted one.
    gate.leave();
    expect(await next).toBe("admitted");
    const aborted = new AbortController();
    aborted.abort();
    expect(await gate.enter(aborted.signal)).toBe("interrupted");
  });

  it("hands held jobs back without closing, and says how long the first has been held", async () => {
    let now = 1_000;
    const gate = new SlotGate(1, () => now);
    expect(gate.heldForMs()).toBe(0);
    gate.enter();
    const held = gate.enter();
    now += 300;
    expect(gate.heldForMs()).toBe(300);
    expect(gate.handBack()).toBe(1);
    expect(await held).toBe("handed_back");
    gate.leave();
    expect(gate.enter()).toBe("admitted");
  });
});

describe("holdsJobsAhead", () => {
  it("is true only from PREFETCH_MIN_SLOTS slots with a prefetch window", () => {
    expect(holdsJobsAhead(PREFETCH_MIN_SLOTS, 1000)).toBe(true);
    expect(holdsJobsAhead(PREFETCH_MIN_SLOTS - 1, 1000)).toBe(false);
    expect(holdsJobsAhead(2000, 0)).toBe(false);
  });
});

describe("startPrefetch", () => {
  afterEach(() => vi.useRealTimers());

  function driven(slots: number, windowMs: number) {
    vi.useFakeTimers();
    const gate = new SlotGate(slots);
    const set: number[] = [];
    const stop = startPrefetch(gate, windowMs, (concurrency) => set.push(concurrency));
    const window = (ended: number) => {
      for (let i = 0; i < ended; i++) {
        gate.enter();
        gate.leave();
      }
      vi.advanceTimersByTime(windowMs);
    };
    return { gate, set, stop, window };
  }

  it("raises the concurrency by the runs ended per window (at most a quarter of the slots) and lowers it without flapping", () => {
    const { set, stop, window } = driven(100, 50);
    window(0);
    expect(set).toEqual([]);
    for (let i = 0; i < 40; i++) window(200);
    expect(set.at(-1)).toBe(125);
    const raised = set.length;
    // A window or two with fewer ends does not lower it.
    window(100);
    window(150);
    expect(set).toHaveLength(raised);
    // A worker whose jobs stop finishing claims none ahead after a while.
    for (let i = 0; i < 60; i++) window(0);
    expect(set.at(-1)).toBe(100);
    stop();
    window(500);
    expect(set.at(-1)).toBe(100);
  });

  it("hands every held job back and claims none ahead once a job has been held five windows", async () => {
    const { gate, set, window } = driven(100, 50);
    for (let i = 0; i < 20; i++) window(40);
    expect(set.at(-1)).toBe(125);
    // The slots stop turning over: 100 running, 2 held.
    for (let i = 0; i < 100; i++) gate.enter();
    const held = [gate.enter(), gate.enter()];
    for (let i = 0; i < 5; i++) window(0);
    expect(gate.held).toBe(2);
    window(0);
    expect(await Promise.all(held)).toEqual(["handed_back", "handed_back"]);
    expect(set.at(-1)).toBe(100);
  });

  it("does not judge held jobs on a tick that comes late (a stalled event loop), and counts only jobs that ended", async () => {
    vi.useFakeTimers();
    const gate = new SlotGate(100);
    const set: number[] = [];
    startPrefetch(gate, 50, (concurrency) => set.push(concurrency));
    // Jobs put off to the delayed set free their slots but raise nothing.
    for (let i = 0; i < 20; i++) {
      for (let j = 0; j < 40; j++) {
        gate.enter();
        gate.leave(false);
      }
      vi.advanceTimersByTime(50);
    }
    expect(set).toEqual([]);
    for (let i = 0; i < 20; i++) {
      for (let j = 0; j < 40; j++) {
        gate.enter();
        gate.leave();
      }
      vi.advanceTimersByTime(50);
    }
    expect(set.at(-1)).toBe(125);
    for (let i = 0; i < 100; i++) gate.enter();
    const held = gate.enter();
    // The loop stalls for a second: the first tick after it sees a job held 1 s, and lets it be.
    vi.setSystemTime(Date.now() + 1_000);
    vi.advanceTimersToNextTimer();
    expect(gate.held).toBe(1);
    gate.leave();
    expect(await held).toBe("admitted");
  });

  it("claims nothing ahead when turned off or below 100 slots", () => {
    vi.useFakeTimers();
    startPrefetch(new SlotGate(100), 0, () => {});
    expect(vi.getTimerCount()).toBe(0);
    const { set, window } = driven(99, 50);
    expect(vi.getTimerCount()).toBe(0);
    for (let i = 0; i < 10; i++) window(500);
    expect(set).toEqual([]);
  });
});
