import { describe, expect, it } from "vitest";
import { quoteOf } from "./simulated.js";

/** What the simulated reply quoted before quoteOf: the whole prompt collapsed, then cut. */
const byRegExp = (text: string) => text.replace(/\s+/g, " ").slice(0, 120);

describe("the simulated provider's quote of the prompt", () => {
  it("collapses whitespace runs and cuts at 120 characters, as a regular expression's replace did", () => {
    const cases = [
      "",
      "   ",
      "tell me about fallbacks",
      "  leading and trailing  ",
      "tabs\tand\nnew\r\nlines",
      `${"word ".repeat(30)}end`,
      `${"x".repeat(119)}   y`,
      `${"x".repeat(120)}   y`,
      `${"x".repeat(121)}`,
      `${"a ".repeat(59)}b${" ".repeat(500)}c`,
      // Code points JavaScript's \s matches, and some it does not (U+180E, U+200B, U+0085).
      "a\u00a0b\u1680c\u2000d\u200ae\u2028f\u2029g\u202fh\u205fi\u3000j\ufeffk\u180el\u200bm\u0085n",
      "emoji 🚀  and  déjà vu",
    ];
    for (const text of cases) expect(quoteOf(text)).toBe(byRegExp(text));
  });

  it("agrees with the regular expression where whitespace runs and surrogate pairs cross the prefix's end", () => {
    for (let lead = 470; lead <= 482; lead += 1) {
      for (const crossing of [" \t\n ", "\u00a0\u3000", "🚀🚀", "a b"]) {
        const text = `${"w ".repeat(lead >> 1)}${lead % 2 ? "w" : ""}${crossing.repeat(4)}tail ${"z".repeat(300)}`;
        expect(quoteOf(text)).toBe(byRegExp(text));
        const sparse = `${" ".repeat(lead)}${crossing}${"q ".repeat(200)}`;
        expect(quoteOf(sparse)).toBe(byRegExp(sparse));
      }
    }
  });

  it("reads a bounded prefix of a long prompt, and all of one that is mostly spaces", () => {
    const text = `${"x".repeat(100)} ${"y".repeat(1_000_000)}`;
    expect(quoteOf(text)).toBe(byRegExp(text));
    expect(quoteOf("z".repeat(500))).toBe("z".repeat(120));
    // Mostly spaces: the prefix collapses to less than the quote, and the whole prompt is read.
    const sparse = `${"a ".repeat(50)}${" ".repeat(1_000)}${"b ".repeat(100)}`;
    expect(quoteOf(sparse)).toBe(byRegExp(sparse));
  });

  it("agrees with the regular expression on random text", () => {
    const alphabet = [
      "a",
      "é",
      " ",
      "\t",
      "\n",
      "\u00a0",
      "\u2003",
      "\u3000",
      "\ufeff",
      "\u180e",
      "🚀",
      "xyz",
    ];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let round = 0; round < 2000; round += 1) {
      let text = "";
      const length = Math.floor(random() * 1200);
      for (let index = 0; index < length; index += 1)
        text += alphabet[Math.floor(random() * alphabet.length)];
      expect(quoteOf(text)).toBe(byRegExp(text));
    }
  });
});
