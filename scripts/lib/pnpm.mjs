// Finding pnpm and keeping node_modules in step with the lockfile, shared by start.mjs and test.mjs.
import { existsSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { capture, run } from "./process.mjs";

const PNPM_VERSION = "12.4.2";

let cachedCommand;

/**
 * The pnpm to call, as [command, ...leadingArgs]: a global pnpm 12.x if there is one, else a pinned
 * pnpm through npx (corepack is unreliable on some machines, npx is always beside node).
 */
export function pnpmCommand() {
  if (cachedCommand) return cachedCommand;
  const globalVersion = capture("pnpm", ["--version"]);
  cachedCommand = globalVersion?.startsWith("12.") ? ["pnpm"] : ["npx", "--yes", `pnpm@${PNPM_VERSION}`];
  return cachedCommand;
}

/** Runs pnpm with inherited stdio in `cwd`; resolves to the exit code. */
export function runPnpm(args, cwd) {
  const [command, ...leading] = pnpmCommand();
  return run(command, [...leading, ...args], { cwd });
}

/**
 * True when node_modules is missing or older than the lockfile. pnpm rewrites
 * node_modules/.pnpm/lock.yaml on every install, so its mtime says when deps were last synced.
 */
export function dependenciesAreStale(root) {
  const installed = join(root, "node_modules", ".pnpm", "lock.yaml");
  if (!existsSync(installed)) return true;
  return statSync(installed).mtimeMs < statSync(join(root, "pnpm-lock.yaml")).mtimeMs;
}

/** Installs dependencies when they are missing or stale; exits the process if the install fails. */
export async function ensureDependencies(root) {
  if (!dependenciesAreStale(root)) return;
  console.log("Installing dependencies (pnpm install --frozen-lockfile)...");
  const code = await runPnpm(["install", "--frozen-lockfile"], root);
  if (code !== 0) {
    console.error(`pnpm install failed (exit ${code}); fix the error above and run again.`);
    process.exit(code);
  }
  // "Already up to date" may leave the marker untouched; without this we would reinstall every run.
  const marker = join(root, "node_modules", ".pnpm", "lock.yaml");
  if (existsSync(marker)) utimesSync(marker, new Date(), new Date());
}

/** Builds every workspace package (tsc -b); exits the process if the build fails. */
export async function buildPackages(root) {
  const code = await runPnpm(["-r", "build"], root);
  if (code !== 0) {
    console.error(`Build failed (pnpm -r build, exit ${code}); fix the errors above and run again.`);
    process.exit(code);
  }
}
