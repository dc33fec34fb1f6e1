/** Injected time source, so tests and Lua-backed shared state never depend on a worker's wall clock. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export function unixSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}
