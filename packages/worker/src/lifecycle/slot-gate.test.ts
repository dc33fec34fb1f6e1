import { afterEach, describe, expect, it, vi } from "vitest";
import { SlotGate, startPrefetch } from "./slot-gate.js";

describe("SlotGate", () => {
  it("admits up to its slots, then hands freed slots to waiting jobs in order; closing turns the rest away", async () => {
    const gate = new SlotGate(2);
    expect(gate.enter()).toBe(true);
    expect(gate.enter()).toBe(true);
    const order: string[] = [];
    const third = gate.enter();
    const fourth = gate.enter();
    const fifth = gate.enter();
    expect(gate.held).toBe(3);
    void (third as Promise<boolean>).then((admitted) => order.push(`third ${admitted}`));
    void (fourth as Promise<boolean>).then((admitted) => order.push(`fourth ${admitted}`));
    void (fifth as Promise<boolean>).then((admitted) => order.push(`fifth ${admitted}`));
    gate.leave();
    gate.leave();
    await Promise.resolve();
    expect(order).toEqual(["third true", "fourth true"]);
    gate.close();
    await Promise.resolve();
    expect(order).toEqual(["third true", "fourth true", "fifth false"]);
    expect(await gate.enter()).toBe(false);
    expect(gate.takeEnded()).toBe(2);
    expect(gate.takeEnded()).toBe(0);
  });
});

describe("startPrefetch", () => {
  afterEach(() => vi.useRealTimers());

  it("raises the concurrency by the runs ended per window (at most a quarter of the slots) and lowers it without flapping", () => {
    vi.useFakeTimers();
    const gate = new SlotGate(100);
    const set: number[] = [];
    const stop = startPrefetch(gate, 50, (concurrency) => set.push(concurrency));
    const window = (ended: number) => {
      for (let i = 0; i < ended; i++) gate.leave();
      vi.advanceTimersByTime(50);
    };
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

  it("claims nothing ahead when turned off or when a quarter of the slots is under one", () => {
    vi.useFakeTimers();
    const set: number[] = [];
    for (const [slots, windowMs] of [
      [100, 0],
      [3, 50],
    ] as const) {
      const gate = new SlotGate(slots);
      startPrefetch(gate, windowMs, (concurrency) => set.push(concurrency));
      for (let i = 0; i < 10; i++) {
        for (let j = 0; j < 50; j++) gate.leave();
        vi.advanceTimersByTime(50);
      }
    }
    expect(set).toEqual([]);
  });
});
