import type { ApiClient } from "./api-client.js";
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
  errColors: Colors;
  env: NodeJS.ProcessEnv;
  /** The arguments the CLI was started with (to print a resume command). */
  argv: string[];
}
