// Small child-process helpers for the root scripts. Node built-ins only: these run before install.
import { spawn, spawnSync } from "node:child_process";

// npm, npx and pnpm are .cmd shims on Windows and only start through a shell there.
const useShell = process.platform === "win32";

/** Runs a command with inherited stdio and resolves to its exit code (signals count as failure). */
export function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: "inherit", shell: useShell, ...options });
    child.on("error", (error) => {
      console.error(`Could not run ${command}: ${error.message}`);
      resolve(127);
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + signalNumber(signal) : 1)));
  });
}

/** Runs a command quietly; returns its trimmed stdout when it exits 0, else undefined. */
export function capture(command, args, timeoutMs = 20_000) {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    shell: useShell,
    timeout: timeoutMs,
    stdio: ["ignore", "pipe", "ignore"],
  });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** True when `name` is an executable on PATH. */
export function isOnPath(name) {
  const finder = process.platform === "win32" ? "where" : "which";
  return capture(finder, [name]) !== undefined;
}

/** True when a Docker engine answers (the client alone is not enough). */
export function isDockerEngineReachable() {
  return (
    isOnPath("docker") && capture("docker", ["info", "--format", "{{.ServerVersion}}"], 10_000) !== undefined
  );
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal] ?? 0;
}
