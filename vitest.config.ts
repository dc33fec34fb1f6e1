import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

/**
 * Files that run alone, after the rest (docs/testing.md, "Parallel files"): the chaos runs and the
 * fairness proofs measure time and ratios that CPU taken by other files would bend, and
 * fair-enqueue counts the commands the whole Redis ran (INFO commandstats).
 */
const ALONE = [
  "test/chaos/**/*.test.ts",
  "test/e2e/fairness-*.test.ts",
  "test/e2e/cluster-failover.test.ts",
  "packages/api/src/jobs/fair-enqueue.test.ts",
];

/**
 * Files at once in the parallel group. Most files wait on real time (timers, windows, processes
 * starting), not on the CPU, so three at a time suit CI's two cores (measured: 11.5 min against
 * 27 one at a time); CASCADE_TEST_WORKERS sets another count.
 */
function parallelWorkers(): number {
  const setting = process.env.CASCADE_TEST_WORKERS;
  if (setting === undefined || setting === "") return Math.max(3, availableParallelism());
  const count = Number(setting);
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`CASCADE_TEST_WORKERS must be a whole number ≥ 1 (got "${setting}")`);
  }
  return count;
}

const shared = { testTimeout: 30_000, hookTimeout: 60_000, pool: "forks" } as const;

export default defineConfig({
  test: {
    // One Redis (or Redis Cluster) for the run, started once for both groups.
    globalSetup: ["test/support/global-setup.ts"],
    projects: [
      {
        test: {
          ...shared,
          name: "parallel",
          include: ["packages/*/src/**/*.test.ts", "test/**/*.test.ts"],
          exclude: [...ALONE, "**/node_modules/**"],
          maxWorkers: parallelWorkers(),
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: "alone",
          include: ALONE,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
