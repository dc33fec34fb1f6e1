/**
 * The README's commands, run as a user types them in a shell (sh expands unquoted globs before
 * pnpm sees them: `pnpm -r --filter ./packages/** run build` once failed there with "None of the
 * selected packages has a ./packages/cli script"). The tree is already built, so these are quick.
 */
import { execFile, spawn } from "node:child_process";
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

  it("`npm start` stops its API and worker when npm itself is sent SIGTERM (a supervisor, `docker stop`, `timeout`)", async () => {
    // npm passes the signal to the shell it ran the script in, which ends without passing it on:
    // the services ran on as orphans, holding the port (audit). Only npm is signalled here.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const npm = spawn("npm", ["start"], {
      cwd: root,
      env: { ...process.env, REDIS_URL: inject("redisUrl"), PORT: String(port), METRICS_PORT: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // start.mjs holds npm's output pipe (and waits for its services): the pipe closes once it,
    // and with it the API and the worker, have exited.
    const pipeClosed = new Promise<void>((resolve) => npm.stdout?.once("close", () => resolve()));
    let output = "";
    npm.stdout?.on("data", (chunk) => {
      output += chunk;
    });
    npm.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    const answers = () =>
      fetch(`http://127.0.0.1:${port}/healthz`).then(
        (response) => response.ok,
        () => false,
      );
    try {
      const started = Date.now();
      while (!output.includes("Cascade API on") && Date.now() - started < 120_000) {
        await new Promise((tick) => setTimeout(tick, 200));
      }
      expect(output).toContain("Cascade API on");
      expect(await answers()).toBe(true);
      npm.kill("SIGTERM");
      const signalled = Date.now();
      while ((await answers()) && Date.now() - signalled < 20_000) {
        await new Promise((tick) => setTimeout(tick, 250));
      }
      expect(await answers()).toBe(false);
      const closed = await Promise.race([
        pipeClosed.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 40_000)),
      ]);
      expect(closed, output.slice(-2000)).toBe(true);
      expect(output).toContain("the process that started npm start has gone");
    } finally {
      npm.kill("SIGKILL");
    }
  }, 170_000);
});
