import { describe, expect, it } from "vitest";
import { prototypeKeyError, prototypeKeyPath } from "./prototype-keys.js";

describe("prototypeKeyPath", () => {
  it("names the first prototype key, as secure-json-parse finds them", () => {
    expect(prototypeKeyPath(JSON.parse('{"a":1,"__proto__":{}}'))).toBe("__proto__");
    expect(prototypeKeyPath(JSON.parse('{"a":[{"b":{"constructor":{"prototype":1}}}]}'))).toBe(
      "a[0].b.constructor",
    );
    expect(prototypeKeyPath(JSON.parse('{"constructor":"x","b":{"constructor":{}}}'))).toBeUndefined();
    expect(prototypeKeyPath({ a: [1, "two", null] })).toBeUndefined();
  });
});

describe("prototypeKeyError", () => {
  it("is a 400 naming the key for valid JSON, nothing for invalid JSON", () => {
    expect(prototypeKeyError('{"x":{"__proto__":1}}')).toMatchObject({
      statusCode: 400,
      param: "x.__proto__",
    });
    expect(prototypeKeyError('{"__proto__":')).toBeUndefined();
  });

  it("answers a key nested past the depth limit with the depth error, quickly", () => {
    const depth = 200_000;
    const text = `${"[".repeat(depth)}{"__proto__":1}${"]".repeat(depth)}`;
    const started = Date.now();
    const error = prototypeKeyError(text);
    expect(error?.message).toMatch(/nest at most 100 levels/);
    expect(error?.param).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
