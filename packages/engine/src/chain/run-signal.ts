import { getMaxListeners, setMaxListeners } from "node:events";
import { type InterruptionKind, JobInterruption } from "./interruption.js";

/**
 * Listeners one run's signal may gather before Node warns of a leak: its calls share the signal
 * (a provider's listener may stay until the call's request is collected), so a run with many
 * retries and fallbacks legitimately holds more than Node's default of 10. Raised from the
 * RAISE_AFTER_CALLS-th call on (most runs make one call: no need to pay for it on every job).
 */
const RUN_SIGNAL_MAX_LISTENERS = 200;
const RAISE_AFTER_CALLS = 3;

/**
 * One run's abort signal, shared by the run's upstream calls (docs/decisions/0023): a call is
 * made with the run's own signal instead of a controller of its own plus a listener on the run's
 * (two AbortSignals and an EventTarget listener per hop were ~10% of the worker's CPU per job).
 *
 * - `interrupt` (cancel, lock loss, shutdown) aborts the current signal with a JobInterruption,
 *   once; every later signal of the run starts aborted with it.
 * - `abortCall` (a call's own timeout) aborts the current signal, and so the call in flight, with
 *   the call's reason, and at once gives the run a fresh signal: the chain goes on (a retry, a
 *   fallback) on the fresh one, and an interruption after that still reaches it.
 *
 * Readers must read `signal` when they need it, not keep it across a call (ChainContext reads it
 * through a getter).
 */
export class RunSignal {
  private controller = new AbortController();
  private interruption: JobInterruption | undefined;
  /** Calls made on the current signal. */
  private calls = 0;
  /** Calls the run has made, and how many of them its last saved progress knows of. */
  private made = 0;
  private madeAtSave = 0;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The signal for the next call (counted, so a run of many calls gets room for their listeners). */
  forCall(): AbortSignal {
    const signal = this.controller.signal;
    this.calls += 1;
    this.made += 1;
    // Raised, never lowered (undici's fetch raises a signal it is given to 1,500 already).
    if (this.calls === RAISE_AFTER_CALLS && getMaxListeners(signal) < RUN_SIGNAL_MAX_LISTENERS)
      setMaxListeners(RUN_SIGNAL_MAX_LISTENERS, signal);
    return signal;
  }

  /** The run's progress was saved: the calls made so far are in it (their attempts and cost). */
  saved(): void {
    this.madeAtSave = this.made;
  }

  /**
   * Calls made since the progress was last saved (or since the run began): a run that starts
   * again from its saved progress would forget them, their cost included.
   */
  get callsSinceSave(): number {
    return this.made - this.madeAtSave;
  }

  /** Interrupts the run (its current call included), once; later interruptions change nothing. */
  interrupt(kind: InterruptionKind): void {
    if (this.interruption) return;
    this.interruption = new JobInterruption(kind);
    this.controller.abort(this.interruption);
  }

  /**
   * Aborts the call made with `signal` for its own `reason` (a timeout), leaving the run going on
   * a fresh signal. Nothing happens when `signal` is no longer current or already aborted (the
   * run was interrupted first: the interruption wins).
   */
  abortCall(signal: AbortSignal, reason: unknown): void {
    if (signal !== this.controller.signal || signal.aborted) return;
    const aborted = this.controller;
    this.controller = new AbortController();
    this.calls = 0;
    aborted.abort(reason);
  }
}
