/** A failure the CLI explains in one line (`cascade: <message>`) and exits 1 for. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}
