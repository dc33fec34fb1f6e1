/**
 * The engine runs inside the API for the gateway, where a queue has no business: loading
 * `@cascade/engine` (and through it `@cascade/shared`) must not load BullMQ. A resolve hook in a
 * child process records every specifier resolved while the engine is imported.
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const run = promisify(execFile);

const HOOKS = `
export async function resolve(specifier, context, next) {
  if (specifier === "bullmq" || specifier.startsWith("bullmq/")) process.stderr.write("LOADED bullmq from " + context.parentURL + "\\n");
  return next(specifier, context);
}`;

const MAIN = `
import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(${JSON.stringify(HOOKS)}));
const engine = await import(${JSON.stringify(`${join(root, "packages/engine/dist/index.js")}`)});
if (typeof engine.runChain !== "function") throw new Error("engine did not load");
console.log("engine loaded");
`;

describe("packages/engine", () => {
  it("loads without loading BullMQ", async () => {
    const { stdout, stderr } = await run(process.execPath, ["--input-type=module", "-e", MAIN], {
      cwd: root,
    });
    expect(stdout).toContain("engine loaded");
    expect(stderr).not.toContain("LOADED bullmq");
  });
});
