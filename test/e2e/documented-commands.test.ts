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
