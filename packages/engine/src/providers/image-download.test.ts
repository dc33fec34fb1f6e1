import { createServer, type Server } from "node:http";
import type { LanguageModelV3Prompt } from "@ai-sdk/provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createImageInliner } from "./image-download.js";
import { ProviderError } from "./provider-error.js";

describe("image downloads for providers that need bytes", () => {
  let server: Server;
  let origin = "";
  let connections = 0;
  const png = Buffer.from("89504e470d0a1a0a", "hex");

  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url === "/cat.png") response.writeHead(200, { "content-type": "image/png" }).end(png);
      else if (request.url === "/page")
        response.writeHead(200, { "content-type": "text/html" }).end("<html>");
      else if (request.url === "/huge.png")
        response.writeHead(200, { "content-type": "image/png" }).end(Buffer.alloc(4096));
      else response.writeHead(404).end();
    });
    server.on("connection", () => {
      connections += 1;
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    origin = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const prompt = (url: string): LanguageModelV3Prompt => [
    {
      role: "user",
      content: [
        { type: "text", text: "look" },
        { type: "file", mediaType: "image/*", data: new URL(url) },
      ],
    },
  ];
  const signal = new AbortController().signal;

  it("replaces an image URL with its bytes and type", async () => {
    const inliner = createImageInliner({ allowPrivateNetworks: true });
    const [message] = await inliner.inline(prompt(`${origin}/cat.png`), signal);
    expect(message?.content[1]).toMatchObject({ type: "file", mediaType: "image/png" });
    const part = message?.content[1] as { data: Uint8Array } | undefined;
    expect(Buffer.from(part?.data ?? [])).toEqual(png);
  });

  it("refuses non-images, missing files and oversized bodies as provider-specific bad requests", async () => {
    const inliner = createImageInliner({ allowPrivateNetworks: true, maxBytes: 1024 });
    for (const [path, why] of [
      ["/page", /is not an image/],
      ["/missing.png", /HTTP 404/],
      ["/huge.png", /over the 1024-byte limit/],
    ] as const) {
      const error = await inliner.inline(prompt(`${origin}${path}`), signal).catch((caught) => caught);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ reason: "bad_request", providerSpecific: true });
      expect(error.message).toMatch(why);
    }
  });

  it("never connects to a private address unless private networks are allowed", async () => {
    const before = connections;
    const inliner = createImageInliner({ allowPrivateNetworks: false });
    for (const url of [`${origin}/cat.png`, `http://localhost:${new URL(origin).port}/cat.png`]) {
      const error = await inliner.inline(prompt(url), signal).catch((caught) => caught);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error.message).toMatch(/refused/);
    }
    expect(connections).toBe(before);
  });
});
