/**
 * The code under measurement, loaded the way production runs it: the built `dist/` of the
 * workspace packages (the worker process runs `node dist/main.js`), plus the third-party modules
 * resolved from packages/worker, so the bench and the worker share one bullmq/ioredis/pino
 * instance. The repo root cannot import them by name: pnpm does not hoist package dependencies.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export const repoRoot = join(import.meta.dirname, "..", "..");

const requireFromWorker = createRequire(join(repoRoot, "packages", "worker", "package.json"));

export type SharedModule = typeof import("../../packages/shared/dist/index.js");
export type WorkerModule = typeof import("../../packages/worker/dist/index.js");
export type EngineModule = typeof import("../../packages/engine/dist/index.js");
export type BullmqModule = typeof import("../../packages/worker/node_modules/bullmq/dist/esm/index.js");
export type {
  Processor,
  Queue,
  Worker,
  WorkerOptions,
} from "../../packages/worker/node_modules/bullmq/dist/esm/index.js";
export type PinoModule = typeof import("../../packages/worker/node_modules/pino/pino.js");

export interface BenchModules {
  shared: SharedModule;
  worker: WorkerModule;
  engine: EngineModule;
  bullmq: BullmqModule;
  pino: PinoModule;
  versions: { bullmq: string; ioredis: string; pino: string; zod: string };
}

/**
 * `tsc -b packages/worker` (which builds packages/shared and packages/engine through its project
 * references): a
 * no-op taking a fraction of a second when dist is current, and it keeps a stale dist from
 * being measured in place of the source beside it.
 */
export function buildPackages(): void {
  const tsc = join(repoRoot, "node_modules", "typescript", "bin", "tsc");
  const result = spawnSync(process.execPath, [tsc, "-b", join(repoRoot, "packages", "worker")], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  if (result.status !== 0) {
    throw new Error(
      `building packages/shared and packages/worker failed (tsc -b exit ${result.status ?? result.signal}); fix the errors above, or pass --no-build to measure the dist as it is`,
    );
  }
}

function packageVersion(name: string): string {
  return (requireFromWorker(`${name}/package.json`) as { version: string }).version;
}

export async function loadModules(): Promise<BenchModules> {
  const sharedEntry = join(repoRoot, "packages", "shared", "dist", "index.js");
  const workerEntry = join(repoRoot, "packages", "worker", "dist", "index.js");
  const engineEntry = join(repoRoot, "packages", "engine", "dist", "index.js");
  for (const entry of [sharedEntry, workerEntry, engineEntry]) {
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`pnpm -r build\` first`);
  }
  const shared = (await import(pathToFileURL(sharedEntry).href)) as SharedModule;
  const worker = (await import(pathToFileURL(workerEntry).href)) as WorkerModule;
  const engine = (await import(pathToFileURL(engineEntry).href)) as EngineModule;
  return {
    shared,
    worker,
    engine,
    bullmq: requireFromWorker("bullmq") as BullmqModule,
    pino: requireFromWorker("pino") as PinoModule,
    versions: {
      bullmq: packageVersion("bullmq"),
      ioredis: packageVersion("ioredis"),
      pino: packageVersion("pino"),
      zod: packageVersion("zod"),
    },
  };
}
