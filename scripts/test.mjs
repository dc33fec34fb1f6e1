// `npm test`: install what is missing, build (tests spawn the built dist/main.js processes), run
// vitest, and end with one line "N passed, M failed[, K skipped]". Extra arguments go to vitest.
// Node built-ins only: this runs before dependencies are installed.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { buildPackages, ensureDependencies } from "./lib/pnpm.mjs";
import { isDockerEngineReachable, isOnPath } from "./lib/process.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const resultsFile = join(root, ".vitest-results.json");

async function main() {
  // Fail before a long install and build when the tests could not get a Redis anyway
  // (test/support/redis-server.ts uses REDIS_URL, else redis-server, else Docker).
  if (!process.env.REDIS_URL && !isOnPath("redis-server") && !isDockerEngineReachable()) {
    console.error(
      "Tests need Redis: install redis-server (sudo apt-get install redis-server, or brew install redis), start Docker, or set REDIS_URL",
    );
    process.exit(1);
  }
  await ensureDependencies(root);
  await buildPackages(root);

  rmSync(resultsFile, { force: true }); // a stale report must never pass for this run's
  const exitCode = await runVitest(process.argv.slice(2));
  const summary = readSummary();
  if (!summary) {
    console.error(`vitest wrote no ${resultsFile} (exit ${exitCode})`);
    console.log(`FAILED (vitest wrote no report, exit ${exitCode})`);
    console.log("0 passed, 1 failed");
    process.exit(exitCode || 1);
  }
  if (exitCode !== 0 && summary.failed === 0) {
    // A failed global setup or an unhandled error fails the run without failing a test; the
    // summary must not read as a success then.
    console.error(
      `vitest exited ${exitCode} with no failed test: see the errors above (global setup, unhandled errors).`,
    );
    summary.failed = 1;
    summary.failedNames.push(
      `(vitest exited ${exitCode} with no failed test: global setup or an unhandled error)`,
    );
  }
  // The names again at the end, where a log's tail shows them (the console reporter printed them
  // far above, among the passing files).
  for (const name of summary.failedNames) console.log(`FAILED ${name}`);
  const skipped = summary.skipped ? `, ${summary.skipped} skipped` : "";
  console.log(`${summary.passed} passed, ${summary.failed} failed${skipped}`);
  process.exit(exitCode);
}

/** Runs vitest with both the console and the JSON reporter; resolves to its exit code. */
function runVitest(extraArgs) {
  const vitest = join(root, "node_modules", "vitest", "vitest.mjs");
  const args = [
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${resultsFile}`,
    ...extraArgs,
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, ...args], { cwd: root, stdio: "inherit" });
    // Ctrl+C reaches vitest directly (same process group); stay alive to report what it finished.
    const ignore = () => {};
    process.on("SIGINT", ignore);
    child.on("exit", (code, signal) => {
      process.off("SIGINT", ignore);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

/**
 * Counts from vitest's Jest-style JSON. A file that failed outside any test (an import error, a
 * failing beforeAll) has no failed test to count, so it counts as one failure itself.
 */
function readSummary() {
  if (!existsSync(resultsFile)) return undefined;
  const report = JSON.parse(readFileSync(resultsFile, "utf8"));
  const failedOutsideTests = report.testResults.filter(
    (file) => file.status === "failed" && !file.assertionResults.some((test) => test.status === "failed"),
  ).length;
  const failedNames = [];
  for (const file of report.testResults) {
    const path = relative(root, file.name);
    const failedTests = file.assertionResults.filter((test) => test.status === "failed");
    for (const test of failedTests) failedNames.push(`${path} > ${test.fullName}`);
    if (file.status === "failed" && failedTests.length === 0) failedNames.push(`${path} (outside any test)`);
  }
  return {
    failedNames,
    passed: report.numPassedTests,
    failed: report.numFailedTests + failedOutsideTests,
    skipped: report.numPendingTests + report.numTodoTests,
  };
}

main().catch((error) => {
  console.error(`npm test failed: ${error.message}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
