/**
 * Other ways to write a path: percent-encoded letters and digits (`/%761/jobs`), encoded
 * slashes, dot segments, doubled and trailing slashes. A router may read some of them as the
 * same route, so whatever decides access must read them the same way too.
 */
import fc from "fast-check";

export type SpellingStep =
  /** Percent-encode the `at`-th character that is not a slash. */
  | { kind: "encode"; at: number; lowerHex: boolean }
  /** Percent-encode the `at`-th slash after the first. */
  | { kind: "encode-slash"; at: number; lowerHex: boolean }
  /** Insert `/.` or `/x/..` before the `at`-th slash (a dot segment a URL parser would remove). */
  | { kind: "dot-segment"; at: number; parent: boolean }
  /** Double the `at`-th slash. */
  | { kind: "double-slash"; at: number }
  | { kind: "suffix"; text: "/" | "/." | ";" | ";x=1" | "%20" | "%00" | "#" | "?" };

export const spellingStepArbitrary: fc.Arbitrary<SpellingStep> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("encode" as const), at: fc.nat(), lowerHex: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("encode-slash" as const),
      at: fc.nat(),
      lowerHex: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("dot-segment" as const), at: fc.nat(), parent: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("double-slash" as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("suffix" as const),
      text: fc.constantFrom(
        "/" as const,
        "/." as const,
        ";" as const,
        ";x=1" as const,
        "%20" as const,
        "%00" as const,
        "#" as const,
        "?" as const,
      ),
    }),
  },
);

/** Up to four steps; none at all (the canonical spelling) is one of the cases. */
export const spellingArbitrary = fc.array(spellingStepArbitrary, { maxLength: 4 });

function hex(char: string, lowerHex: boolean): string {
  const code = Buffer.from(char, "utf8").toString("hex").replace(/(..)/g, "%$1");
  return lowerHex ? code.toLowerCase() : code.toUpperCase();
}

/** Positions in `path` of characters matching `test`. */
function positions(path: string, test: (char: string, index: number) => boolean): number[] {
  const found: number[] = [];
  for (let index = 0; index < path.length; index++) if (test(path[index] as string, index)) found.push(index);
  return found;
}

function applyStep(path: string, step: SpellingStep): string {
  if (step.kind === "suffix") return path + step.text;
  const candidates =
    step.kind === "encode"
      ? positions(path, (char) => char !== "/" && char !== "%")
      : step.kind === "encode-slash"
        ? positions(path, (char, index) => char === "/" && index > 0)
        : positions(path, (char) => char === "/");
  if (candidates.length === 0) return path;
  const index = candidates[step.at % candidates.length] as number;
  const before = path.slice(0, index);
  const char = path[index] as string;
  const after = path.slice(index + 1);
  switch (step.kind) {
    case "encode":
    case "encode-slash":
      return before + hex(char, step.lowerHex) + after;
    case "dot-segment":
      return `${before}${step.parent ? "/x/.." : "/."}${char}${after}`;
    case "double-slash":
      return `${before}//${after}`;
  }
}

/** `path` (no query) spelled with `steps`, applied in order. */
export function spell(path: string, steps: readonly SpellingStep[]): string {
  return steps.reduce(applyStep, path);
}
