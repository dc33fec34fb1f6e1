import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { jsonDuplicateKey, yamlDuplicateKey } from "./duplicate-keys.js";

/** The first key written twice in `text`, parsed as readYaml parses a config. */
const duplicateIn = (text: string) => {
  const [document] = parseAllDocuments(text, { merge: true, uniqueKeys: false }) as unknown[];
  return yamlDuplicateKey(document as Parameters<typeof yamlDuplicateKey>[0], text);
};

describe("jsonDuplicateKey", () => {
  it("finds a key written twice in one object, at any depth, and says where", () => {
    expect(jsonDuplicateKey('{"a": 1, "a": 2}')).toMatchObject({ key: "a", line: 1, column: 10 });
    const nested = '{\n  "models": {\n    "m1": {"provider": "sim"},\n    "m1": {}\n  }\n}';
    expect(jsonDuplicateKey(nested)).toMatchObject({ key: "m1", line: 4, column: 5 });
  });

  it("compares keys as JSON.parse reads them (escapes decoded)", () => {
    expect(jsonDuplicateKey('{"a": 1, "\\u0061": 2}')).toMatchObject({ key: "a" });
  });

  it("finds none where equal keys sit in different objects, or a key's text is a value", () => {
    expect(jsonDuplicateKey('{"a": {"b": 1}, "c": {"b": 2}, "d": ["a", {"a": 1}]}')).toBeUndefined();
    expect(jsonDuplicateKey('{"a": "a", "b": "\\"a\\": {"a"", "c": ["}", "{"]}')).toBeUndefined();
    expect(jsonDuplicateKey('[{"a": 1}, {"a": 2}]')).toBeUndefined();
  });

  it("reads a large object in one pass (50,000 keys)", () => {
    const entries = Array.from({ length: 50_000 }, (_, index) => `"tenant${index}": {"weight": 1}`);
    expect(jsonDuplicateKey(`{"tenants": {${entries.join(", ")}}}`)).toBeUndefined();
    expect(jsonDuplicateKey(`{"tenants": {${entries.join(", ")}, "tenant7": {}}}`)).toMatchObject({
      key: "tenant7",
    });
  });
});

describe("yamlDuplicateKey", () => {
  it("finds a key written twice in a block or flow map, and says where", () => {
    expect(duplicateIn("a: 1\nb:\n  c: 2\n  c: 3\n")).toMatchObject({
      key: "c",
      line: 4,
      column: 3,
    });
    expect(duplicateIn("a: {x: 1, x: 2}\n")).toMatchObject({ key: "x", line: 1 });
  });

  it("finds none for equal keys in different maps, merge keys once, or 1 beside '1'", () => {
    const merged = "defaults: &d {weight: 1}\ntenants:\n  a: {<<: *d, keys_env: [A]}\n  b: {<<: *d}\n";
    expect(duplicateIn(merged)).toBeUndefined();
    expect(duplicateIn("1: a\n'1': b\n")).toBeUndefined();
  });
});
