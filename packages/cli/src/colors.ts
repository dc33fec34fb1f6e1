import { styleText } from "node:util";

/**
 * Colour through Node's `util.styleText`. Whether to colour is decided here, once per stream, by
 * `colorEnabled`: styleText's own check (Node 20.20) lets FORCE_COLOR override NO_COLOR, needs a
 * real stream object, and skips the check for a list of formats, so it is switched off.
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

type Style = "bold" | "dim" | "red" | "green" | "yellow" | "cyan";

/**
 * Colour only on a terminal, never when NO_COLOR is set (https://no-color.org) or TERM is dumb;
 * FORCE_COLOR (not "0") turns it on anyway, but NO_COLOR still wins.
 */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return Boolean(stream.isTTY) && env.TERM !== "dumb";
}

export function createColors(enabled: boolean): Colors {
  // Empty text stays empty: styleText would still wrap it in escapes.
  const paint = (style: Style) => (text: string) =>
    enabled && text ? styleText(style, text, { validateStream: false }) : text;
  return {
    enabled,
    bold: paint("bold"),
    dim: paint("dim"),
    red: paint("red"),
    green: paint("green"),
    yellow: paint("yellow"),
    cyan: paint("cyan"),
  };
}

export function colorsFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Colors {
  return createColors(colorEnabled(stream, env));
}

/** Moves to the start of the line and clears it (styleText only styles text; this erases). */
export const CLEAR_LINE = "\r\u001b[2K";
