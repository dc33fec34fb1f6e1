import { describe, expect, it } from "vitest";
import { jsonDepthExceeds, MAX_JSON_DEPTH } from "./json-depth.js";

function nested(depth: number): unknown {
  let value: unknown = "leaf";
  for (let level = 0; level < depth; level++) value = level % 2 ? [value] : { a: value };
  return value;
}

describe("jsonDepthExceeds", () => {
  it("counts objects and arrays, not scalars", () => {
    expect(jsonDepthExceeds("text", 0)).toBe(false);
    expect(jsonDepthExceeds({}, 0)).toBe(true);
    expect(jsonDepthExceeds({}, 1)).toBe(false);
    expect(jsonDepthExceeds({ a: [1, { b: null }] }, 2)).toBe(true);
    expect(jsonDepthExceeds({ a: [1, { b: null }] }, 3)).toBe(false);
  });

  it("finds the deepest branch whichever it is", () => {
    const value = { shallow: 1, deep: nested(MAX_JSON_DEPTH), list: [nested(3)] };
    expect(jsonDepthExceeds(value, MAX_JSON_DEPTH)).toBe(true);
    expect(jsonDepthExceeds(value, MAX_JSON_DEPTH + 1)).toBe(false);
  });

  it("handles nesting far past what a recursive walk survives", () => {
    const deep = JSON.parse(`${'{"a":'.repeat(200_000)}1${"}".repeat(200_000)}`);
    expect(jsonDepthExceeds(deep, MAX_JSON_DEPTH)).toBe(true);
    expect(jsonDepthExceeds(deep, 200_000)).toBe(false);
  });
});
