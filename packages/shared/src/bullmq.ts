// `@cascade/shared/bullmq`: the parts of shared that load BullMQ at run time (queues, the batch
// sweeper and its processing). Kept out of the main entry so that the engine, which imports
// `@cascade/shared`, never loads BullMQ (test/integration/engine-without-bullmq.test.ts).
export * from "./batches/batch-processing.js";
export * from "./batches/batch-sweeper.js";
export * from "./jobs/job-reader.js";
export * from "./redis/queues.js";
