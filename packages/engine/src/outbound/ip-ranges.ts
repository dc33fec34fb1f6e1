import { isIPv4, isIPv6 } from "node:net";

/** Why an address may not be connected to, or `undefined` when it is a public unicast address. */
export type BlockedReason =
  | "loopback"
  | "private"
  | "link-local"
  | "cloud metadata"
  | "carrier-grade NAT"
  | "multicast"
  | "unspecified"
  | "broadcast"
  | "reserved"
  | "documentation"
  | "benchmarking"
  | "unique-local"
  | "site-local"
  | "not an IP address";

interface Range4 {
  base: number;
  bits: number;
  reason: BlockedReason;
}

/** Parses a dotted-quad IPv4 address (the only form DNS answers and `net` use) into a uint32. */
export function parseIPv4(address: string): number | undefined {
  if (!isIPv4(address)) return undefined;
  return address.split(".").reduce((value, part) => value * 256 + Number(part), 0);
}

const range4 = (cidr: string, reason: BlockedReason): Range4 => {
  const [base = "", bits = "32"] = cidr.split("/");
  return { base: parseIPv4(base) ?? 0, bits: Number(bits), reason };
};

/**
 * IANA IPv4 special-purpose registry, plus the private and CGNAT ranges: everything that is not
 * ordinary public unicast. https://www.iana.org/assignments/iana-ipv4-special-registry
 * Order matters only for the reason reported (metadata before link-local, broadcast before 240/4).
 */
const BLOCKED_V4: readonly Range4[] = [
  range4("169.254.169.254/32", "cloud metadata"),
  // Azure's WireServer: a public address, but every Azure VM reaches its host agent there.
  range4("168.63.129.16/32", "cloud metadata"),
  range4("255.255.255.255/32", "broadcast"),
  range4("0.0.0.0/8", "unspecified"),
  range4("10.0.0.0/8", "private"),
  range4("100.64.0.0/10", "carrier-grade NAT"),
  range4("127.0.0.0/8", "loopback"),
  range4("169.254.0.0/16", "link-local"),
  range4("172.16.0.0/12", "private"),
  range4("192.0.0.0/24", "reserved"),
  range4("192.0.2.0/24", "documentation"),
  range4("192.88.99.0/24", "reserved"),
  range4("192.168.0.0/16", "private"),
  range4("198.18.0.0/15", "benchmarking"),
  range4("198.51.100.0/24", "documentation"),
  range4("203.0.113.0/24", "documentation"),
  range4("224.0.0.0/4", "multicast"),
  range4("240.0.0.0/4", "reserved"),
];

function blockedReason4(value: number): BlockedReason | undefined {
  for (const range of BLOCKED_V4) {
    const size = 2 ** (32 - range.bits);
    if (Math.floor(value / size) === Math.floor(range.base / size)) return range.reason;
  }
  return undefined;
}

/** Parses any textual IPv6 address (with `::` and an optional dotted-quad tail) into 8 groups. */
export function parseIPv6(address: string): number[] | undefined {
  if (!isIPv6(address)) return undefined;
  let text = address.toLowerCase();
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail?.[1]) {
    const v4 = parseIPv4(tail[1]);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, -tail[1].length)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const headGroups = head ? head.split(":") : [];
  const restGroups = rest ? rest.split(":") : [];
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array(rest === undefined ? 0 : missing).fill("0"), ...restGroups];
  if (groups.length !== 8) return undefined;
  return groups.map((group) => Number.parseInt(group, 16));
}

const v4FromGroups = (high: number, low: number) => high * 65536 + low;

function blockedReason6(groups: number[]): BlockedReason | undefined {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = groups;
  const firstFiveZero = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  if (firstFiveZero && g5 === 0xffff) {
    // IPv4-mapped (::ffff:a.b.c.d): a dual-stack socket connects to the IPv4 address itself.
    return blockedReason4(v4FromGroups(g6, g7));
  }
  if (firstFiveZero && g5 === 0) {
    if (g6 === 0 && g7 === 0) return "unspecified";
    if (g6 === 0 && g7 === 1) return "loopback";
    return "reserved"; // IPv4-compatible ::a.b.c.d, deprecated
  }
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) {
    // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
    return blockedReason4(v4FromGroups(g6, g7));
  }
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return "private"; // local-use NAT64 64:ff9b:1::/48
  if (g0 === 0x2002) return blockedReason4(v4FromGroups(g1, g2)); // 6to4 embeds an IPv4 address
  if (g0 === 0x2001 && g1 === 0x0db8) return "documentation";
  if (g0 === 0x2001 && g1 < 0x0200) return "reserved"; // 2001::/23 IETF protocol assignments, Teredo
  if (g0 === 0x3fff && g1 < 0x1000) return "documentation"; // 3fff::/20
  if ((g0 & 0xfe00) === 0xfc00) return g0 === 0xfd00 && g1 === 0x0ec2 ? "cloud metadata" : "unique-local";
  if ((g0 & 0xffc0) === 0xfe80) return "link-local";
  if ((g0 & 0xffc0) === 0xfec0) return "site-local";
  if ((g0 & 0xff00) === 0xff00) return "multicast";
  // Only 2000::/3 is allocated as global unicast; everything else is reserved.
  if ((g0 & 0xe000) !== 0x2000) return "reserved";
  return undefined;
}

/**
 * Classifies an IP address (as DNS or `net` give it): `undefined` for a public unicast address,
 * otherwise why it must not be connected to. IPv4 embedded in IPv6 (mapped, NAT64, 6to4) is
 * judged by the IPv4 address it reaches.
 */
export function blockedAddressReason(address: string): BlockedReason | undefined {
  const v4 = parseIPv4(address);
  if (v4 !== undefined) return blockedReason4(v4);
  const groups = parseIPv6(address);
  if (groups) return blockedReason6(groups);
  return "not an IP address";
}
