import { defineConfig } from "vitest/config";

/**
 * Files that run alone, after the rest (docs/testing.md, "Parallel files"): the chaos runs and the
 * fairness proofs measure time and ratios that CPU taken by other files would bend; fair-enqueue
 * counts the commands the whole Redis ran (INFO commandstats); resilience-settle-retry pauses
 * every write of the run's Redis (CLIENT PAUSE), and stream-reader migrates a slot of the run's
 * cluster, which other files' keys could fall in.
 */
const ALONE = [
  "test/chaos/**/*.test.ts",
  "test/e2e/fairness-*.test.ts",
  "test/e2e/cluster-failover.test.ts",
  "packages/api/src/jobs/fair-enqueue.test.ts",
  "test/integration/resilience-settle-retry.test.ts",
  "**/stream-reader.test.ts",
];

/**
 * Files at once in the parallel group. Most files wait on real time (timers, windows, processes
 * starting), not on the CPU, so three at a time suit CI's two cores (measured: `npm test` 12.7 min
 * against 27 one at a time); CASCADE_TEST_WORKERS sets another count (vitest's --maxWorkers does
 * not reach the projects). Three whatever the cores: every file shares the one Redis.
 */
function parallelWorkers(): number {
  const setting = process.env.CASCADE_TEST_WORKERS;
  if (setting === undefined || setting === "") return 3;
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
