/** Waiters let through before the array drops them (when they are at least half of it). */
const COMPACT_AFTER = 1024;

/**
 * Work that may wait, let through a few at a time: one slice per turn of the event loop, so the
 * I/O that arrives meanwhile (other calls' answers, which free slots) is read between slices
 * instead of after all of it (ADR 0026).
 */
export class YieldLane {
  private readonly queue: Array<() => void> = [];
  private head = 0;
  private scheduled = false;

  constructor(private readonly perTurn: number) {
    if (!Number.isInteger(perTurn) || perTurn < 1) throw new RangeError("perTurn must be a positive integer");
  }

  /** Resolves in the order asked, at most `perTurn` per turn (in a check phase, after the poll). */
  turn(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.queue.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.drain);
      }
    });
  }

  private readonly drain = (): void => {
    const end = Math.min(this.queue.length, this.head + this.perTurn);
    while (this.head < end) (this.queue[this.head++] as () => void)();
    if (this.head < this.queue.length) {
      // A backlog that never empties (a saturated worker) must not keep every waiter let through.
      if (this.head >= COMPACT_AFTER && this.head * 2 >= this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      setImmediate(this.drain);
      return;
    }
    this.queue.length = 0;
    this.head = 0;
    this.scheduled = false;
  };
}
