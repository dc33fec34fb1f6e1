/**
 * Redis's replies that refuse a command for now, with nothing done: out of memory at `maxmemory`
 * (`OOM`), a failed background save stopping writes (`MISCONF`), a replica or a failover
 * (`READONLY`, `MASTERDOWN`), a dataset still loading (`LOADING`), a cluster reconfiguring
 * (`CLUSTERDOWN`, `TRYAGAIN`), a script running past its time limit (`BUSY`). The same command
 * can succeed later; retrying it at once cannot.
 */
const REFUSAL_REPLY = /^(OOM|MISCONF|READONLY|MASTERDOWN|LOADING|CLUSTERDOWN|TRYAGAIN|BUSY) /;

/** Whether a Redis error reply's text is a refusal for now (see REFUSAL_REPLY). */
export function isRefusalReply(message: string): boolean {
  return REFUSAL_REPLY.test(message);
}

/** Whether `error` is Redis refusing a command for now (see REFUSAL_REPLY). */
export function isRedisRefusal(error: unknown): boolean {
  return error instanceof Error && error.name === "ReplyError" && isRefusalReply(error.message);
}
