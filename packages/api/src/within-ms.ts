/** What `withinMs` rejects with when its time is up first. */
export class NoAnswerInTime extends Error {
  constructor(ms: number) {
    super(`no answer from Redis within ${ms} ms`);
    this.name = "NoAnswerInTime";
  }
}

/**
 * `promise`, or a rejection with NoAnswerInTime after `ms`: a read on a connection that queues
 * while Redis is away, or a reply that may never come. The promise is left to settle on its own
 * (a late rejection is nobody's to handle).
 */
export function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new NoAnswerInTime(ms)), ms);
  });
  promise.catch(() => {});
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
