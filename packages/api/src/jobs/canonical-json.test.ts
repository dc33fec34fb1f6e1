import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json.js";

describe("canonicalJson", () => {
  it("ignores key order at every depth but keeps array order", () => {
    const one = { b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } };
    const two = { a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 };
    expect(canonicalJson(one)).toBe(canonicalJson(two));
    expect(canonicalJson({ list: [1, 2] })).not.toBe(canonicalJson({ list: [2, 1] }));
  });

  it("leaves no room for a key named like an Object.prototype property", () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"polluted":true},"a":1}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
