import { connect, createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { YieldLane } from "./yield-lane.js";

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Queues 40 waiters; the first one through makes a peer send a byte; returns the order seen. */
async function interleaving(lane: YieldLane): Promise<string[]> {
  let peer: Socket | undefined;
  const server = createServer((socket) => {
    peer = socket;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const client = connect(port, "127.0.0.1");
  try {
    await new Promise<void>((resolve) => client.once("connect", resolve));
    while (!peer) await nextTurn();
    const sender = peer;
    const order: string[] = [];
    const data = new Promise<void>((resolve) =>
      client.once("data", () => {
        order.push("io");
        resolve();
      }),
    );
    const all = Array.from({ length: 40 }, (_, i) =>
      lane.turn().then(() => {
        order.push(`lane${i}`);
        if (i === 0) sender.write("x");
      }),
    );
    await Promise.all([...all, data]);
    return order;
  } finally {
    client.destroy();
    peer?.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe("YieldLane", () => {
  it("lets waiters through in order, at most perTurn per turn of the event loop", async () => {
    const lane = new YieldLane(4);
    const through: number[] = [];
    for (let i = 0; i < 10; i++) void lane.turn().then(() => through.push(i));
    expect(through).toEqual([]);
    const seen: number[] = [];
    for (let turn = 0; turn < 4; turn++) {
      await nextTurn();
      seen.push(through.length);
    }
    expect(seen).toEqual([4, 8, 10, 10]);
    expect(through).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("reads I/O between its slices: data sent during the first slice is handled before the last", async () => {
    const order = await interleaving(new YieldLane(2));
    expect(order.indexOf("io")).toBeGreaterThan(order.indexOf("lane0"));
    expect(order.indexOf("io")).toBeLessThan(order.indexOf("lane39"));
    // Without slices (one turn for all), the same data waits for all of them.
    const unsliced = await interleaving(new YieldLane(40));
    expect(unsliced.indexOf("io")).toBeGreaterThan(unsliced.indexOf("lane39"));
  });

  it("keeps only the waiters still waiting when its backlog never empties", async () => {
    const lane = new YieldLane(4);
    const stored = () => (lane as unknown as { queue: unknown[] }).queue.length;
    let through = 0;
    let most = 0;
    // Five new waiters per turn against four let through: the backlog grows by one a turn and
    // never empties, while 20,000 waiters go through.
    for (let turn = 0; turn < 5000; turn++) {
      for (let i = 0; i < 5; i++) void lane.turn().then(() => through++);
      await nextTurn();
      most = Math.max(most, stored());
    }
    expect(through).toBeGreaterThanOrEqual(19_000);
    // At most twice the backlog (≤ 5,000) is kept, not all 25,000 waiters.
    expect(most).toBeLessThanOrEqual(2 * 5000 + 10);
  });

  it("refuses a slice that is not a positive integer", () => {
    expect(() => new YieldLane(0)).toThrow(/perTurn/);
  });

  it("starts again after it has drained", async () => {
    const lane = new YieldLane(1);
    await lane.turn();
    await Promise.all([lane.turn(), lane.turn()]);
  });
});
