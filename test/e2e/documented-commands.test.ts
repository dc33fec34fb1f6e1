/**
 * The README's commands, run as a user types them in a shell (sh expands unquoted globs before
 * pnpm sees them: `pnpm -r --filter ./packages/** run build` once failed there with "None of the
 * selected packages has a ./packages/cli script"). The tree is already built, so these are quick.
 */
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";

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

  it.each([
    ["unset", undefined],
    // A name is probed at each address it resolves to (Fastify listens on all of them): ::1 may come first.
    ["localhost", "localhost"],
  ])(
    "`npm start` on a PORT another process holds (HOST %s) says so and exits 1, without the banner (it printed it, answered by the other process)",
    async (_label, host) => {
      const other = createServer((_request, response) => response.end("{}"));
      await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
      const port = (other.address() as AddressInfo).port;
      try {
        const failed = await run(process.execPath, [join(root, "scripts", "start.mjs")], {
          cwd: root,
          env: {
            ...process.env,
            REDIS_URL: inject("redisUrl"),
            PORT: String(port),
            METRICS_PORT: "",
            ...(host ? { HOST: host } : {}),
          },
          timeout: 120_000,
        }).then(
          () => undefined,
          (error: { stdout?: string; stderr?: string; code?: number }) => error,
        );
        expect(failed?.code).toBe(1);
        expect(failed?.stderr).toContain(
          `PORT ${port} on ${host ?? "127.0.0.1"} is in use by another process`,
        );
        expect(failed?.stdout ?? "").not.toContain("Cascade API on");
      } finally {
        other.close();
      }
    },
    130_000,
  );
});
