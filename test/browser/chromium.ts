/**
 * The Chromium the browser tests drive with playwright-core (no browser download): CHROMIUM_PATH
 * when set (and only it), else Debian's /usr/bin/chromium or a usual name on PATH, provided it
 * starts. Undefined when there is none: the tests skip with NO_CHROMIUM.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

export const NO_CHROMIUM =
  "no Chromium found (set CHROMIUM_PATH, or install Debian's chromium: sudo apt-get install chromium); the dashboard browser tests are skipped";

let found: { path: string | undefined } | undefined;

export function findChromium(): string | undefined {
  found ??= { path: runnable(locate()) };
  return found.path;
}

function locate(): string | undefined {
  // CHROMIUM_PATH, when set, is the only one tried (a path that does not exist skips the test).
  if (process.env.CHROMIUM_PATH !== undefined) {
    return existsSync(process.env.CHROMIUM_PATH) ? process.env.CHROMIUM_PATH : undefined;
  }
  for (const candidate of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    if (existsSync(candidate)) return candidate;
  }
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      const onPath = execFileSync("which", [name], { encoding: "utf8" }).trim();
      if (onPath) return onPath;
    } catch {
      // not on PATH
    }
  }
  return undefined;
}

/** A Chromium that starts (Ubuntu's `chromium` package is a snap stub that may not, in a container). */
function runnable(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    execFileSync(path, ["--headless", "--version"], { stdio: "ignore", timeout: 15_000 });
    return path;
  } catch {
    console.warn(`${path} does not run (${path} --version failed)`);
    return undefined;
  }
}
