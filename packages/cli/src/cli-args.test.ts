import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import { globalOptionValues, parseCommand, splitCommand, UsageError } from "./cli-args.js";
import { colorEnabled, createColors } from "./colors.js";
import { formatDuration, formatPercent, formatUsd, shellQuote } from "./format.js";
import { renderTable } from "./table.js";

describe("command line", () => {
  it("finds the command word past global options and their values", () => {
    expect(splitCommand(["--url", "http://x", "jobs", "get", "id"])).toEqual({
      word: "jobs",
      rest: ["--url", "http://x", "get", "id"],
    });
    expect(splitCommand(["--api-key=k", "providers", "--json"])).toEqual({
      word: "providers",
      rest: ["--api-key=k", "--json"],
    });
    expect(splitCommand(["-h"])).toEqual({ word: undefined, rest: ["-h"] });
    expect(splitCommand(["--", "submit"])).toEqual({ word: undefined, rest: ["--", "submit"] });
  });

  it("reads --url and --api-key before the command's own options are known", () => {
    expect(globalOptionValues(["in.jsonl", "--out", "o", "--url=http://x", "--api-key", "k"])).toEqual({
      url: "http://x",
      apiKey: "k",
    });
    expect(globalOptionValues(["--json", "--url"])).toEqual({ url: undefined, apiKey: undefined });
  });

  it("turns parseArgs errors into one line naming the option", () => {
    const parse = (args: string[]) => () =>
      parseCommand("submit", args, { out: { type: "string" } }, "USAGE");
    expect(parse(["--bogus"])).toThrow(new UsageError("cascade submit: unknown option --bogus", "USAGE"));
    expect(parse(["--out"])).toThrow(/cascade submit: option --out needs a value/);
    expect(parseCommand("x", ["--url", "u", "--out", "o", "in"], { out: { type: "string" } }, "")).toEqual({
      values: { url: "u", out: "o" },
      positionals: ["in"],
    });
  });
});

describe("output", () => {
  it("colours only a terminal, never with NO_COLOR or TERM=dumb; FORCE_COLOR forces it", () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: "1" })).toBe(false);
    expect(colorEnabled({ isTTY: true }, { TERM: "dumb" })).toBe(false);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: "1" })).toBe(true);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: "1", NO_COLOR: "1" })).toBe(false);
    const colors = createColors(true);
    expect(colors.red("x")).toBe("\u001b[31mx\u001b[39m");
    expect(stripVTControlCharacters(colors.bold(colors.red("x")))).toBe("x");
    expect(createColors(false).red("x")).toBe("x");
  });

  it("aligns table columns by visible width", () => {
    const colors = createColors(true);
    const table = renderTable(
      ["A", "BB"],
      [
        [colors.red("long"), "1"],
        ["x", "22"],
      ],
      { align: ["left", "right"] },
    );
    expect(stripVTControlCharacters(table).split("\n")).toEqual(["A     BB", "long   1", "x     22"]);
  });

  it("formats money, durations, rates and shell words", () => {
    expect(formatUsd(0)).toBe("$0");
    expect(formatUsd(0.000408)).toBe("$0.000408");
    expect(formatUsd(12.3456)).toBe("$12.35");
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(4200)).toBe("4.2 s");
    expect(formatDuration(192_000)).toBe("3m 12s");
    expect(formatPercent(null)).toBe("-");
    expect(formatPercent(0.055)).toBe("5.5%");
    expect(formatPercent(1)).toBe("100%");
    expect(shellQuote("/tmp/a.jsonl")).toBe("/tmp/a.jsonl");
    expect(shellQuote("my file's")).toBe(`'my file'\\''s'`);
  });
});
