import type { ApiClient } from "./api-client.js";
import type { GlobalOptionValues } from "./cli-args.js";
import type { Colors } from "./colors.js";

export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** What every command gets: the API client, the two output streams and their colours. */
export interface Context {
  client: ApiClient;
  stdout: Output;
  stderr: Output;
  colors: Colors;
  errorColors: Colors;
  env: NodeJS.ProcessEnv;
  /** What the command line gave as --url and --api-key (to print a resume command). */
  globalOptions: GlobalOptionValues;
}
