/**
 * Steps that wait without holding a process: `wait` parks the run until a named signal arrives
 * (a person's approval, another system's event) or its timeout passes; `sleep` until a time.
 * Both record their wake-up time in the log, so a restart neither loses nor resets them. Pure.
 */
import type { z } from 'zod';
import type { SkipFn, StepContext, UntypedOutputs } from './pipeline.js';

/** What a wait does when its timeout passes first: fail, continue (output null), or go to a step. */
export type OnTimeout = 'fail' | 'continue' | { goto: string };

/** Options of {@link wait}. */
export interface WaitStepOptions<I, Out = UntypedOutputs> {
  name: string;
  /** The signal's name: `plumbline signal <runId> <signal> --data '{…}'`. */
  signal: string;
  /** The payload's schema: a bad payload is refused with the reason, the run keeps waiting. */
  schema: z.ZodType;
  /** Milliseconds to wait from when the run reaches the step (default: forever). */
  timeoutMs?: number;
  /** What happens at the timeout (default `fail`). */
  onTimeout?: OnTimeout;
  skip?: SkipFn<I, Out>;
}

/** Options of {@link sleep}: `forMs` from when the run reaches the step, or `until` a time. */
export interface SleepStepOptions<I, Out = UntypedOutputs> {
  name: string;
  forMs?: number;
  /** The wake-up time (epoch ms), from the context. */
  until?: (ctx: StepContext<I, Out>) => number;
  skip?: SkipFn<I, Out>;
}

/** A wait step. */
export interface WaitStep<I = any> extends WaitStepOptions<I> {
  kind: 'wait';
}
/** A sleep step. */
export interface SleepStep<I = any> extends SleepStepOptions<I> {
  kind: 'sleep';
}

/**
 * Waits for a signal: its payload (validated by `schema`) becomes the step's output, and the
 * signal (who, when, what) an event in the log. A signal sent before the run gets here is kept.
 * @example wait({ name: 'approval', signal: 'approve', schema: z.object({ ok: z.boolean(), by: z.string() }), timeoutMs: 86_400_000 })
 */
export function wait<I = any>(options: WaitStepOptions<I>): WaitStep<I> {
  return { ...options, kind: 'wait' };
}

/**
 * Sleeps durably: the wake-up time is in the log, no process is held meanwhile.
 * @example sleep({ name: 'cool-off', forMs: 3_600_000 })
 */
export function sleep<I = any>(options: SleepStepOptions<I>): SleepStep<I> {
  return { ...options, kind: 'sleep' };
}
