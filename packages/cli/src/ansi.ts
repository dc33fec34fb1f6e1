/**
 * A tiny ANSI helper. Colour only on a terminal, never when NO_COLOR is set (https://no-color.org)
 * or TERM is dumb; FORCE_COLOR (not "0") turns it on anyway.
 */
export interface Colors {
  enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

const ESC = "\u001b[";
const ANSI_PATTERN = new RegExp(`${ESC.replace("[", "\\[")}[0-9;]*[A-Za-z]`, "g");

export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return Boolean(stream.isTTY) && env.TERM !== "dumb";
}

export function createColors(enabled: boolean): Colors {
  const wrap = (open: number, close: number) => (text: string) =>
    enabled && text ? `${ESC}${open}m${text}${ESC}${close}m` : text;
  return {
    enabled,
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}

export function colorsFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Colors {
  return createColors(colorEnabled(stream, env));
}

/** The text without ANSI escapes (to measure what a terminal shows). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_PATTERN, "");
}

/** Moves to the start of the line and clears it. */
export const CLEAR_LINE = `\r${ESC}2K`;
