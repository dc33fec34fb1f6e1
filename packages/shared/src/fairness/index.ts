export * from "./fair-share-numbers.js";
export * from "./fair-tags.js";
export * from "./oldest-waiting.js";
export * from "./tenant-slots.js";
