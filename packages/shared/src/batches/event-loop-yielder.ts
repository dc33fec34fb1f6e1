import { performance } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";

/**
 * Lets long loops (validating or enqueueing 50,000 lines) give the event loop a turn once
 * `sliceMs` of work has gone by, so HTTP requests and timers are never held up for longer.
 * Checking is a clock read; yielding is one `setImmediate`, after pending I/O callbacks.
 */
export class EventLoopYielder {
  private sliceStart = performance.now();

  constructor(private readonly sliceMs = 8) {}

  /** True when this slice is used up. */
  due(): boolean {
    return performance.now() - this.sliceStart >= this.sliceMs;
  }

  /** Yields if the slice is used up; cheap enough to call once per line. */
  async maybeYield(): Promise<void> {
    if (this.due()) await this.yield();
  }

  async yield(): Promise<void> {
    await nextTurn();
    this.sliceStart = performance.now();
  }

  /** After awaiting I/O the loop has had its turn: start a new slice. */
  reset(): void {
    this.sliceStart = performance.now();
  }
}
