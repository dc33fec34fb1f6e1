/**
 * Deliveries in flight per destination (a receiver's origin: scheme, host and port), in one
 * process. A receiver that hangs holds each of its deliveries for the whole timeout: without a
 * bound, a tenant's hanging receiver took every slot of the webhooks queue and every other
 * tenant's deliveries (and the operators' alerts) waited behind its timeouts.
 */
export class DestinationSlots {
  private readonly inFlight = new Map<string, number>();
  private readonly waiters = new Map<string, Array<() => void>>();

  constructor(private readonly perDestination: number) {}

  /**
   * Takes one of the destination's slots, waiting up to `waitMs` for one to be released; false
   * when none was (the caller hands the delivery back to the queue for a while).
   */
  take(destination: string, waitMs: number): Promise<boolean> | true {
    const count = this.inFlight.get(destination) ?? 0;
    if (count < this.perDestination) {
      this.inFlight.set(destination, count + 1);
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const queue = this.waiters.get(destination) ?? [];
      this.waiters.set(destination, queue);
      const grant = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const index = queue.indexOf(grant);
        if (index >= 0) queue.splice(index, 1);
        if (queue.length === 0 && this.waiters.get(destination) === queue) this.waiters.delete(destination);
        resolve(false);
      }, waitMs);
      queue.push(grant);
    });
  }

  /** Gives a slot back: to the first delivery waiting for this destination, if any. */
  release(destination: string): void {
    const queue = this.waiters.get(destination);
    const next = queue?.shift();
    if (queue?.length === 0) this.waiters.delete(destination);
    if (next) {
      next();
      return;
    }
    const count = (this.inFlight.get(destination) ?? 1) - 1;
    if (count > 0) this.inFlight.set(destination, count);
    else this.inFlight.delete(destination);
  }
}

/** A delivery URL's destination: its origin, or the URL itself when it does not parse. */
export function destinationOf(url: string): string {
  return URL.canParse(url) ? new URL(url).origin : url;
}
