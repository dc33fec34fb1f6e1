import type { LookupAddress } from "node:dns";
import { describe, expect, it } from "vitest";
import {
  assertOutboundUrl,
  BoundedResolver,
  createGuardedLookup,
  type HostResolver,
  LookupsBusyError,
  parseOutboundUrl,
  resolvePublicAddresses,
  UrlRejectedError,
} from "./url-guard.js";

const answers =
  (table: Record<string, string[]>): HostResolver =>
  async (hostname) => {
    const addresses = table[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };

const resolve = answers({
  "hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
  "mixed.example.com": ["93.184.215.14", "10.0.0.7"],
  "internal.example.com": ["192.168.0.10"],
  "mapped.example.com": ["::ffff:127.0.0.1"],
  "empty.example.com": [],
});
const guard = { allowPrivateNetworks: false, resolve };

async function rejection(url: string): Promise<UrlRejectedError> {
  const error = await assertOutboundUrl(url, guard).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, url).toBeInstanceOf(UrlRejectedError);
  return error as UrlRejectedError;
}

describe("assertOutboundUrl", () => {
  it("accepts a host whose every address is public", async () => {
    const url = await assertOutboundUrl("https://hooks.example.com/cascade?x=1", guard);
    expect(url.hostname).toBe("hooks.example.com");
  });

  it("refuses schemes other than http(s) and credentials in the URL", async () => {
    expect((await rejection("ftp://hooks.example.com/")).reason).toBe("invalid_url");
    expect((await rejection("file:///etc/passwd")).reason).toBe("invalid_url");
    expect((await rejection("https://user:secret@hooks.example.com/")).message).toMatch(/credentials/);
    expect((await rejection("not a url")).reason).toBe("invalid_url");
  });

  it("refuses IP literals in blocked ranges, whatever their spelling", async () => {
    for (const url of [
      "http://127.0.0.1/",
      "http://2130706433/",
      "http://0177.0.0.1/",
      "http://0x7f000001/",
      "http://0x7f.1/",
      "http://127.1/",
      "http://[::1]/",
      "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:7f00:1]/",
      "http://[64:ff9b::a00:1]/",
      "http://169.254.169.254/latest/meta-data/",
      "http://[fd00:ec2::254]/",
      "http://10.0.0.1/",
      "http://0.0.0.0/",
      "http://[::]/",
    ]) {
      const error = await rejection(url);
      expect(error.reason, url).toBe("blocked_address");
    }
  });

  it("refuses internal names before asking DNS", async () => {
    for (const url of [
      "http://localhost/",
      "http://LOCALHOST./",
      "http://api.localhost/",
      "http://metadata.google.internal/computeMetadata/v1/",
    ]) {
      expect((await rejection(url)).reason, url).toBe("blocked_host");
    }
  });

  it("refuses a host when ANY of its addresses is blocked, and hosts that do not resolve", async () => {
    const mixed = (await rejection("https://mixed.example.com/")).message;
    expect(mixed).toMatch(/"mixed\.example\.com" resolves to a private address/);
    expect(mixed).not.toContain("10.0.0.7");
    expect((await rejection("https://internal.example.com/")).reason).toBe("blocked_address");
    expect((await rejection("https://mapped.example.com/")).message).toMatch(/loopback/);
    expect((await rejection("http://0.0.0.0/")).message).toMatch(/^0\.0\.0\.0 is an unspecified address;/);
    expect((await rejection("https://nowhere.example.com/")).message).toMatch(
      /does not resolve \(ENOTFOUND\)/,
    );
    expect((await rejection("https://empty.example.com/")).reason).toBe("unresolvable");
  });

  it("gives up on a slow resolver after the timeout", async () => {
    const slow: HostResolver = () => new Promise(() => {});
    const error = await assertOutboundUrl("https://slow.example.com/", {
      allowPrivateNetworks: false,
      resolve: slow,
      resolveTimeoutMs: 50,
    }).catch((caught: unknown) => caught);
    expect((error as UrlRejectedError).message).toMatch(/did not resolve within 50 ms/);
  });

  it("allows private addresses when allow_private_networks is set, but still not credentials", async () => {
    await expect(
      assertOutboundUrl("http://127.0.0.1:9/", { allowPrivateNetworks: true }),
    ).resolves.toBeInstanceOf(URL);
    expect(() => parseOutboundUrl("http://a:b@127.0.0.1/", { allowPrivateNetworks: true })).toThrow(
      /credentials/,
    );
  });
});

describe("createGuardedLookup", () => {
  const lookupWith = (resolver: HostResolver, hostname: string, all: boolean) =>
    new Promise<{ error: Error | null; addresses: LookupAddress[] | string }>((done) => {
      createGuardedLookup(resolver)(hostname, { all }, (error, addresses) =>
        done({ error, addresses: addresses as LookupAddress[] | string }),
      );
    });

  it("hands back only checked addresses, in both lookup shapes", async () => {
    const all = await lookupWith(resolve, "hooks.example.com", true);
    expect(all.error).toBeNull();
    expect(all.addresses).toHaveLength(2);
    const one = await lookupWith(resolve, "hooks.example.com", false);
    expect(one.addresses).toBe("93.184.215.14");
  });

  it("fails the connection when the answer at connect time is blocked", async () => {
    const result = await lookupWith(resolve, "mixed.example.com", true);
    expect(result.error).toBeInstanceOf(UrlRejectedError);
    expect(result.error?.message).toMatch(/private/);
    expect((await lookupWith(resolve, "localhost", true)).error).toBeInstanceOf(UrlRejectedError);
  });
});

describe("BoundedResolver", () => {
  /** A resolver whose lookups end when the test says, counting how many run at once. */
  function heldResolver() {
    const state = { running: 0, most: 0, calls: [] as string[], ends: [] as Array<() => void> };
    const resolve: HostResolver = (host) => {
      state.calls.push(host);
      state.running += 1;
      state.most = Math.max(state.most, state.running);
      return new Promise((done) => {
        state.ends.push(() => {
          state.running -= 1;
          done([{ address: "93.184.215.14", family: 4 }]);
        });
      });
    };
    return { state, resolve };
  }
  const settle = () => new Promise((tick) => setTimeout(tick, 0));

  it("runs one lookup at a time, each to its end though its caller stopped waiting, one per name", async () => {
    const { state, resolve } = heldResolver();
    const bounded = new BoundedResolver(resolve);
    const waited = ["a.example", "b.example", "a.example", "c.example"].map((host) =>
      resolvePublicAddresses(host, bounded.lookup, 5).catch((error: Error) => error.message),
    );
    // Every caller gave up after 5 ms; the first lookup still holds the one slot.
    expect(await Promise.all(waited)).toEqual(
      expect.arrayContaining([expect.stringContaining("did not resolve")]),
    );
    expect(state.calls).toEqual(["a.example"]);
    while (state.ends.length) {
      state.ends.shift()?.();
      await settle();
    }
    expect(state.calls).toEqual(["a.example", "b.example", "c.example"]);
    expect(state.most).toBe(1);
    // Answers are kept: asked again, no lookup.
    expect(await bounded.lookup("b.example")).toEqual([{ address: "93.184.215.14", family: 4 }]);
    expect(state.calls).toHaveLength(3);
  });

  it("refuses at once past the lookups it lets wait", async () => {
    const { state, resolve } = heldResolver();
    const bounded = new BoundedResolver(resolve, { maxQueued: 2 });
    const first = bounded.lookup("a.example");
    const queued = [bounded.lookup("b.example"), bounded.lookup("c.example")];
    await expect(bounded.lookup("d.example")).rejects.toBeInstanceOf(LookupsBusyError);
    while (state.ends.length || state.running) {
      state.ends.shift()?.();
      await settle();
    }
    await Promise.all([first, ...queued]);
    expect(state.calls).toEqual(["a.example", "b.example", "c.example"]);
  });

  it("gives the slot back when a resolver throws, and after holdMs when a lookup never ends", async () => {
    const calls: string[] = [];
    const throwing: HostResolver = (host) => {
      calls.push(host);
      if (host === "throws.example") throw new Error("synchronous");
      if (host === "hangs.example") return new Promise(() => {});
      return Promise.resolve([{ address: "93.184.215.14", family: 4 }]);
    };
    const bounded = new BoundedResolver(throwing, { holdMs: 50 });
    await expect(bounded.lookup("throws.example")).rejects.toThrow("synchronous");
    expect(await bounded.lookup("next.example")).toHaveLength(1);
    void bounded.lookup("hangs.example").catch(() => {});
    // The hung lookup holds the one slot for holdMs, then the next runs.
    expect(await bounded.lookup("after.example")).toHaveLength(1);
    expect(calls).toEqual(["throws.example", "next.example", "hangs.example", "after.example"]);
  });
});
