import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { parseConfigFile } from "./load.js";

/**
 * Every ```yaml block in the user docs that has a `providers:` key is a complete config: it must
 * pass the real schema, and its provider types must be ones the worker can build. The docs then
 * cannot drift from the code without this test failing.
 */
const repoRoot = new URL("../../../../", import.meta.url);
const DOCS = ["docs/providers.md", "docs/configuration.md"] as const;

interface Snippet {
  /** `docs/providers.md:123`: the line of the opening fence, for the failure message. */
  where: string;
  text: string;
}

function yamlBlocks(path: string): Snippet[] {
  const markdown = readFileSync(new URL(path, repoRoot), "utf8");
  const snippets: Snippet[] = [];
  const fence = /^```ya?ml[^\n]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (const match of markdown.matchAll(fence)) {
    const line = markdown.slice(0, match.index).split("\n").length;
    snippets.push({ where: `${path}:${line}`, text: match[1] ?? "" });
  }
  return snippets;
}

/** The `case "<type>":` labels of the worker's provider registry: the types it can build. */
function registryTypes(): Set<string> {
  const source = readFileSync(new URL("packages/engine/src/providers/registry.ts", repoRoot), "utf8");
  return new Set([...source.matchAll(/case "([a-z][a-z0-9-]*)":/g)].map((match) => match[1] ?? ""));
}

const configSnippets = DOCS.flatMap((path) => yamlBlocks(path)).filter((snippet) =>
  snippet.text.includes("providers:"),
);
const supportedTypes = registryTypes();

describe("config snippets in the docs", () => {
  it("finds the snippets and the registry's provider types", () => {
    for (const path of DOCS) {
      expect(
        configSnippets.some((snippet) => snippet.where.startsWith(`${path}:`)),
        `${path} has no yaml block with providers:`,
      ).toBe(true);
    }
    // One per provider section of docs/providers.md, at least.
    const providerPage = configSnippets.filter((snippet) => snippet.where.startsWith("docs/providers.md:"));
    expect(providerPage.length).toBeGreaterThanOrEqual(14);
    expect([...supportedTypes]).toEqual(
      expect.arrayContaining(["anthropic", "gemini", "openai", "simulated"]),
    );
  });

  it.each(configSnippets.map((snippet) => [snippet.where, snippet] as const))(
    "%s is a valid config for a worker that exists",
    (where, snippet) => {
      const raw = parseYaml(snippet.text) as unknown;
      const config = parseConfigFile(raw, where);
      for (const [id, provider] of Object.entries(config.providers)) {
        expect(supportedTypes.has(provider.type), `${where}: providers.${id}.type "${provider.type}"`).toBe(
          true,
        );
        if (provider.base_url) {
          expect(
            provider.base_url,
            `${where}: providers.${id}.base_url must not include the endpoint Cascade appends`,
          ).not.toMatch(/\/(chat\/completions|messages)\/?$|:generateContent$/);
        }
      }
    },
  );
});
