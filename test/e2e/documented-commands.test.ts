/**
 * The README's commands, run as a user types them in a shell (sh expands unquoted globs before
 * pnpm sees them: `pnpm -r --filter ./packages/** run build` once failed there with "None of the
 * selected packages has a ./packages/cli script"). The tree is already built, so these are quick.
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const run = promisify(execFile);

describe("commands the README shows", () => {
  for (const command of ["pnpm build", "pnpm typecheck"]) {
    it(`\`${command}\` works from a shell`, async () => {
      const { stdout, stderr } = await run("sh", ["-c", command], { cwd: root, timeout: 240_000 }).catch(
        (error: { stdout?: string; stderr?: string; code?: number }) => {
          throw new Error(`${command} exited ${error.code}: ${error.stderr ?? ""}${error.stdout ?? ""}`);
        },
      );
      expect(`${stdout}${stderr}`).not.toMatch(/ERR_PNPM|error TS/);
    }, 250_000);
  }
});

describe("commands the docs show, and npm start's own errors", () => {
  it("`npx pino-pretty` (docs/operations.md) reads a JSON log line in the repo", async () => {
    const line = JSON.stringify({ level: 30, time: 1764000000000, msg: "hello from the log" });
    const { stdout } = await run("sh", ["-c", `echo '${line}' | npx --no-install pino-pretty`], {
      cwd: root,
      timeout: 60_000,
    });
    expect(stdout).toContain("hello from the log");
  }, 70_000);

  it("`npm start` with a REDIS_URL that is no URL says which setting and how to fix it, and exits 1", async () => {
    const failed = await run(process.execPath, [join(root, "scripts", "start.mjs")], {
      cwd: root,
      env: { ...process.env, REDIS_URL: "bogus" },
      timeout: 60_000,
    }).then(
      () => undefined,
      (error: { stderr?: string; code?: number }) => error,
    );
    expect(failed?.code).toBe(1);
    const lines = (failed?.stderr ?? "").trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/REDIS_URL/);
    expect(lines[0]).toMatch(/redis:\/\/|unset REDIS_URL/);
  }, 70_000);
});
