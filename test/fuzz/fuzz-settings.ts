/**
 * How long the fuzzers run. `npm test` runs them briefly (a few seconds each, so the whole
 * suite stays quick); `pnpm fuzz` sets FUZZ_RUNS to multiply every property's run count, and
 * FUZZ_SEED (with FUZZ_PATH, to skip straight to the shrunk case) replays a failure fast-check
 * reported.
 */
import type { Parameters } from "fast-check";

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number (got "${raw}")`);
  }
  return value;
}

/** The multiplier on every property's run count (FUZZ_RUNS, default 1). */
export const FUZZ_SCALE = positiveNumber("FUZZ_RUNS", 1);

/**
 * FUZZ_PATH replays one shrunk case: what a whole run must reach (every kind of answer) is not
 * asked of it.
 */
export const REPLAYING_ONE_CASE = (process.env.FUZZ_PATH ?? "") !== "";

/** fast-check parameters for a property that runs `baseRuns` times in `npm test`. */
export function fuzzParameters<T>(baseRuns: number): Parameters<T> {
  const seed = process.env.FUZZ_SEED;
  const path = process.env.FUZZ_PATH;
  return {
    numRuns: Math.max(1, Math.round(baseRuns * FUZZ_SCALE)),
    ...(seed !== undefined && seed !== "" ? { seed: Number(seed) } : {}),
    ...(path !== undefined && path !== "" ? { path } : {}),
  };
}

/** A test's timeout: `baseMs` for `npm test`, scaled with the run count for `pnpm fuzz`. */
export function fuzzTimeoutMs(baseMs: number): number {
  return Math.round(baseMs * Math.max(1, FUZZ_SCALE) + 30_000);
}
