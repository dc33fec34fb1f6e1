import { describe, expect, it } from "vitest";
import { parseClusterNodes } from "./redis-cluster.js";

describe("parseClusterNodes", () => {
  it("reads ids, flags and slot ranges, and skips slots being migrated", () => {
    const text = [
      "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected",
      "67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922",
      "e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 12000 [5461->-67ed]",
      "292f 127.0.0.1:30003@40003 master,fail - 1426238318243 1426238316232 3 disconnected",
      "",
    ].join("\n");
    expect(parseClusterNodes(text)).toEqual([
      { id: "07c3", flags: ["slave"], slots: [] },
      { id: "67ed", flags: ["master"], slots: [[5461, 10922]] },
      {
        id: "e7d1",
        flags: ["myself", "master"],
        slots: [
          [0, 5460],
          [12000, 12000],
        ],
      },
      { id: "292f", flags: ["master", "fail"], slots: [] },
    ]);
  });
});
