import type { ChatMessage } from "@cascade/shared";
import { describe, expect, it } from "vitest";
import {
  findPrivateImageHost,
  findRefusedImageUrl,
  hasRemoteImageUrl,
  MAX_IMAGE_HOST_NAMES,
} from "./image-url-guard.js";
import { BoundedResolver, type HostResolver } from "./url-guard.js";

const withImages = (...urls: string[]): ChatMessage[] => [
  { role: "system", content: "Describe." },
  {
    role: "user",
    content: [
      { type: "text", text: "What is this?" },
      ...urls.map((url) => ({ type: "image_url" as const, image_url: { url } })),
    ],
  },
];

const guarded = { allowPrivateNetworks: false };

describe("findRefusedImageUrl", () => {
  it("refuses literal private, loopback, link-local, unspecified and metadata hosts in every spelling", () => {
    const refused = [
      "http://169.254.169.254/latest/meta-data/",
      "http://10.0.0.5/a.png",
      "https://192.168.1.1/a.png",
      "http://127.1/a.png",
      "http://2130706433/a.png",
      "http://0x7f.0.0.1/a.png",
      "http://0177.0.0.1/a.png",
      "http://0.0.0.0/a.png",
      "http://[::]/a.png",
      "http://[::1]/a.png",
      "http://[::ffff:10.0.0.1]/a.png",
      "http://[::ffff:a9fe:a9fe]/a.png",
      "http://[fe80::1%25eth0]/a.png",
      "http://[fc00::1]/a.png",
      "http://localhost:8080/a.png",
      "http://LocalHost./a.png",
      "http://api.localhost/a.png",
      "http://metadata.google.internal/computeMetadata/v1/",
      "HTTP://10.0.0.5/a.png",
    ];
    for (const url of refused) {
      const refusal = findRefusedImageUrl(withImages(url), guarded);
      expect(refusal?.param, url).toBe("messages[1].content[1].image_url.url");
      expect(refusal?.message, url).toMatch(/^messages\[1\]\.content\[1\]\.image_url\.url: /);
      expect(refusal?.message, url).toContain("webhooks.allow_private_networks: true allows others");
    }
    expect(findRefusedImageUrl(withImages("http://169.254.169.254/"), guarded)?.message).toMatch(
      /: 169\.254\.169\.254 is a cloud metadata address; image URLs are passed to providers/,
    );
    expect(findRefusedImageUrl(withImages("http://localhost/"), guarded)?.message).toContain(
      'host "localhost" is an internal name',
    );
  });

  it("refuses host parts other parsers read differently, and URLs that do not parse", () => {
    for (const url of [
      "http://example.com\\@127.0.0.1/a.png",
      "http://user:pass@example.com/a.png",
      "http://@example.com/a.png",
      "http://exam\tple.com/a.png",
      "http://example.com /a.png",
    ]) {
      expect(findRefusedImageUrl(withImages(url), guarded)?.message, url).toMatch(/parsers read differently/);
    }
    expect(findRefusedImageUrl(withImages("http://[::1/a.png"), guarded)?.message).toMatch(/not a valid URL/);
  });

  it("passes public hosts, data: URLs and everything when private networks are allowed", () => {
    const fine = [
      "https://example.com/cat.png",
      "https://example.com/a@b.png?x=@y#@z",
      "https://8.8.8.8/a.png",
      "http://[2606:4700::1111]/a.png",
      "data:image/png;base64,iVBORw0KGgo=",
    ];
    expect(findRefusedImageUrl(withImages(...fine), guarded)).toBeUndefined();
    const allowed = { allowPrivateNetworks: true };
    expect(
      findRefusedImageUrl(withImages("http://169.254.169.254/", "http://a\\@b"), allowed),
    ).toBeUndefined();
  });

  it("names the first refused URL under the door's prefix", () => {
    const refusal = findRefusedImageUrl(
      withImages("https://example.com/a.png", "http://10.1.1.1/b.png", "http://127.0.0.1/c.png"),
      guarded,
      ["request"],
    );
    expect(refusal?.param).toBe("request.messages[1].content[2].image_url.url");
  });

  it("tells requests with image URLs from those without", () => {
    expect(hasRemoteImageUrl(withImages())).toBe(false);
    expect(hasRemoteImageUrl(withImages("data:image/png;base64,AAAA"))).toBe(false);
    expect(hasRemoteImageUrl(withImages("https://example.com/a.png"))).toBe(true);
  });
});

describe("findPrivateImageHost", () => {
  const lookups: string[] = [];
  const resolve: HostResolver = async (hostname) => {
    lookups.push(hostname);
    const table: Record<string, string[]> = {
      "cdn.example.com": ["93.184.215.14"],
      "admin.corp.example": ["10.20.30.40"],
      "split.example.com": ["93.184.215.14", "169.254.169.254"],
      "mapped.example.com": ["::ffff:127.0.0.1"],
    };
    const addresses = table[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };

  it("refuses a name that resolves to a non-public address, without telling the address", async () => {
    for (const [host, kind] of [
      ["admin.corp.example", "a private"],
      ["split.example.com", "a cloud metadata"],
      ["mapped.example.com", "a loopback"],
    ]) {
      const refusal = await findPrivateImageHost(withImages(`https://${host}/a.png`), { resolve });
      expect(refusal?.param).toBe("messages[1].content[1].image_url.url");
      expect(refusal?.message).toContain(`host "${host}" resolves to ${kind} address`);
      expect(refusal?.message).not.toMatch(/\d+\.\d+\.\d+\.\d+|::ffff/);
    }
  });

  it("passes public names, names that do not resolve here, and public literals; each name is resolved once", async () => {
    lookups.length = 0;
    const messages = withImages(
      "https://cdn.example.com/a.png",
      "https://cdn.example.com/b.png",
      "https://unknown.example.net/c.png",
      "https://8.8.8.8/d.png",
      "data:image/png;base64,AAAA",
    );
    expect(await findPrivateImageHost(messages, { resolve })).toBeUndefined();
    expect(lookups.sort()).toEqual(["cdn.example.com", "unknown.example.net"]);
  });

  it("refuses, as unchecked, a name whose lookup has not answered in time (never passed on unchecked)", async () => {
    const slow: HostResolver = () => new Promise(() => {});
    const refusal = await findPrivateImageHost(withImages("https://slow.example.com/a.png"), {
      resolve: slow,
      timeoutMs: 20,
    });
    expect(refusal?.unchecked).toBe(true);
    expect(refusal?.param).toBe("messages[1].content[1].image_url.url");
    expect(refusal?.message).toContain('host "slow.example.com" could not be checked within 20 ms');
  });

  it("looks names up one at a time, each to its end, so slow names cannot hold the process's resolver", async () => {
    let running = 0;
    let most = 0;
    const ends: Array<() => void> = [];
    const held: HostResolver = () => {
      running += 1;
      most = Math.max(most, running);
      return new Promise((_resolve, reject) => {
        ends.push(() => {
          running -= 1;
          reject(Object.assign(new Error("getaddrinfo EAI_AGAIN"), { code: "EAI_AGAIN" }));
        });
      });
    };
    const urls = Array.from({ length: MAX_IMAGE_HOST_NAMES }, (_, i) => `https://h${i}.example.net/a.png`);
    const refusal = await findPrivateImageHost(withImages(...urls), {
      resolve: new BoundedResolver(held).lookup,
      timeoutMs: 20,
    });
    expect(refusal?.unchecked).toBe(true);
    // The caller gave up; the lookup it started still holds the one slot until it ends.
    expect(running).toBe(1);
    while (ends.length) {
      ends.shift()?.();
      await new Promise((tick) => setTimeout(tick, 0));
    }
    expect(most).toBe(1);
  });

  it("refuses, as unchecked, a name the process's lookups have no room for, and one whose lookup failed without an answer", async () => {
    // The review: a full queue of lookups (other requests' slow names) answered with an error the
    // guard took for "does not resolve here", and passed a private name with no lookup at all.
    const never: HostResolver = () => new Promise(() => {});
    const full = new BoundedResolver(never, { maxQueued: 1 });
    void full.lookup("slow-1.example.net").catch(() => {});
    void full.lookup("slow-2.example.net").catch(() => {});
    const busy = await findPrivateImageHost(withImages("https://internal.corp.example/a.png"), {
      resolve: full.lookup,
      timeoutMs: 200,
    });
    expect(busy?.unchecked).toBe(true);
    // Each says why: not "within 200 ms" for an answer that came at once (the last audit).
    expect(busy?.message).toContain(
      'host "internal.corp.example" could not be checked: too many lookups of names from requests are waiting',
    );
    const failing: HostResolver = async () => {
      throw Object.assign(new Error("getaddrinfo EAI_AGAIN internal.corp.example"), { code: "EAI_AGAIN" });
    };
    const failed = await findPrivateImageHost(withImages("https://internal.corp.example/a.png"), {
      resolve: failing,
    });
    expect(failed?.unchecked).toBe(true);
    expect(failed?.message).toContain(
      'host "internal.corp.example" could not be checked: its lookup failed (EAI_AGAIN)',
    );
  });

  it(`refuses more than ${MAX_IMAGE_HOST_NAMES} different host names in one request, at the door and before the call`, async () => {
    const urls = Array.from(
      { length: MAX_IMAGE_HOST_NAMES + 1 },
      (_, i) => `https://h${i}.example.net/a.png`,
    );
    // Repeats of a name, and IP literals, are not counted.
    const messages = withImages(
      ...urls.slice(0, MAX_IMAGE_HOST_NAMES),
      urls[0] as string,
      "https://8.8.8.8/x.png",
      urls[MAX_IMAGE_HOST_NAMES] as string,
    );
    const door = findRefusedImageUrl(messages, { allowPrivateNetworks: false });
    expect(door?.param).toBe(`messages[1].content[${MAX_IMAGE_HOST_NAMES + 3}].image_url.url`);
    expect(door?.message).toContain(`more than ${MAX_IMAGE_HOST_NAMES} different hosts`);
    const atCall = await findPrivateImageHost(messages, { resolve });
    expect(atCall?.param).toBe(door?.param);
    expect(
      findRefusedImageUrl(withImages(...urls.slice(0, MAX_IMAGE_HOST_NAMES)), {
        allowPrivateNetworks: false,
      }),
    ).toBeUndefined();
  });

  it("refuses the literal checks first, without DNS", async () => {
    lookups.length = 0;
    const refusal = await findPrivateImageHost(
      withImages("https://cdn.example.com/a.png", "http://[::ffff:169.254.169.254]/"),
      { resolve },
    );
    expect(refusal?.param).toBe("messages[1].content[2].image_url.url");
    expect(lookups).toEqual([]);
  });
});
