/**
 * Preloaded (`node --import <this> …`) into a gateway process when the bench profiles: each
 * SIGUSR2 toggles the V8 CPU profiler of the process's main thread, through its own inspector, and
 * a stop writes `$BENCH_PROFILE_DIR/$BENCH_PROFILE_PREFIX-<n>.cpuprofile` (n = 1, 2, …). So a
 * profile covers just the interval the bench brackets with two signals, not start-up or the other
 * runs (`node --cpu-prof` would cover the whole life of the process).
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

const directory = process.env.BENCH_PROFILE_DIR;
const prefix = process.env.BENCH_PROFILE_PREFIX ?? "profile";

if (directory) {
  const session = new Session();
  session.connect();
  let ready;
  let profiling = false;
  let count = 0;
  const toggle = async () => {
    ready ??= session
      .post("Profiler.enable")
      .then(() => session.post("Profiler.setSamplingInterval", { interval: 500 }));
    await ready;
    if (!profiling) {
      profiling = true;
      await session.post("Profiler.start");
      return;
    }
    profiling = false;
    const { profile } = await session.post("Profiler.stop");
    count += 1;
    mkdirSync(directory, { recursive: true });
    const path = join(directory, `${prefix}-${count}.cpuprofile`);
    // Written under a temporary name first, so the bench never reads half a file.
    writeFileSync(`${path}.partial`, JSON.stringify(profile));
    renameSync(`${path}.partial`, path);
  };
  process.on("SIGUSR2", () => {
    toggle().catch((error) => process.stderr.write(`profile-preload: ${error?.stack ?? error}\n`));
  });
}
