import { describe, expect, it } from "vitest";
import { DestinationSlots, destinationOf } from "./destination-slots.js";

describe("DestinationSlots", () => {
  it("gives each destination its share, hands a released slot to a waiter, and times a wait out", async () => {
    const slots = new DestinationSlots(2);
    expect(slots.take("https://a.example", 0)).toBe(true);
    expect(slots.take("https://a.example", 0)).toBe(true);
    // Another destination is not held up by a full one.
    expect(slots.take("https://b.example", 0)).toBe(true);
    const waiting = slots.take("https://a.example", 1000);
    slots.release("https://a.example");
    expect(await waiting).toBe(true);
    expect(await slots.take("https://a.example", 20)).toBe(false);
    slots.release("https://a.example");
    slots.release("https://a.example");
    expect(slots.take("https://a.example", 0)).toBe(true);
  });

  it("names a destination by its origin", () => {
    expect(destinationOf("https://hooks.example.com:8443/a/b?c=1")).toBe("https://hooks.example.com:8443");
    expect(destinationOf("https://hooks.example.com/x")).toBe(destinationOf("https://hooks.example.com/y"));
    expect(destinationOf("not a url")).toBe("not a url");
  });
});
