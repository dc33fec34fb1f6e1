/** Backoff of the contract: base 500 ms, doubling, full jitter, capped at 30 s, never under Retry-After. */
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;

export function backoffDelayMs(
  retryNumber: number,
  retryAfterMs: number | undefined,
  random: () => number,
): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, retryNumber - 1));
  const jittered = Math.floor(random() * ceiling);
  return Math.max(jittered, retryAfterMs ?? 0);
}
