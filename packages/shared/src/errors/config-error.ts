/** A startup problem with the config or environment; its message is the one line a person reads. */
export class ConfigError extends Error {
  readonly code = "config_error";
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
