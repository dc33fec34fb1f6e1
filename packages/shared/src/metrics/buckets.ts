/**
 * Histogram buckets, in seconds. LLM latencies span three orders of magnitude: a cached or tiny
 * completion answers in ~50 ms, a long one streams for a minute or two (the default hop timeout is
 * 60 s), so the buckets are roughly logarithmic from 50 ms to 120 s. Fewer than 15 buckets each:
 * every bucket is one series per label set.
 */

/** One upstream call (a hop's try), from dispatch to its last byte or its failure. */
export const HOP_DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/** From dispatch to the first streamed token: what a chat user waits before text starts moving. */
export const FIRST_TOKEN_BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30];

/**
 * From a job's creation to its first run: near zero when workers keep up, minutes when a queue
 * backs up, so the range reaches an hour.
 */
export const QUEUE_WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

/**
 * End to end, creation to result: a job may wait in the queue, for limits (the delayed set) and
 * go through several hops, so the range runs past the hop buckets to 10 minutes.
 */
export const REQUEST_DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
