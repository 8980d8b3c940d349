/**
 * The command bus port: how `start` and `resume` requests reach the workers that drive runs.
 * Adapters: `nats.ts` (a JetStream work queue, for a cluster of workers) and `local.ts` (an
 * in-process queue, for the embedded SQLite mode). Commands are validated with zod on both
 * sides; a message that is malformed or too big is dead-lettered with the reason, never
 * dropped and never retried forever.
 */
import { z } from 'zod';
import { UsageError } from '../errors.js';

/** Default largest encoded command (bytes). NATS itself refuses payloads above 1 MiB. */
export const MAX_COMMAND_BYTES = 256 * 1024;

/**
 * Default ack wait: a dead worker's commands come back this long after its last heartbeat, so
 * its runs resume elsewhere within about 1.5 s; a live worker's commands never lapse, however
 * long their runs take, because the bus heartbeats them (see {@link heartbeatEveryMs}).
 */
export const DEFAULT_ACK_WAIT_MS = 1_500;

/**
 * How often the bus tells the queue a handed-out command is still being worked on: a fifth of
 * the ack wait, so a live worker whose event loop stalls for up to ⅘ of it (1.2 s at the
 * default) still keeps its commands, and a dead one's lapse between ⅘ and 1 ack wait after it died.
 */
export function heartbeatEveryMs(ackWaitMs: number): number {
  return Math.max(10, Math.floor(ackWaitMs / 5));
}

/** Start a run (at most once per run id: a second start of the same id is a duplicate). */
export const StartCommand = z.object({
  type: z.literal('start'),
  runId: z.string().min(1).max(200),
  pipeline: z.string().min(1),
  input: z.unknown(),
  limits: z
    .object({
      budgetUsd: z.number().nonnegative().nullable().optional(),
      maxIterations: z.number().int().positive().nullable().optional(),
      deadlineAt: z.number().nullable().optional(),
      maxInputTokens: z.number().int().positive().nullable().optional(),
      maxOutputTokens: z.number().int().positive().nullable().optional(),
    })
    .optional(),
  /** Where the pipeline module lives, for workers that load it by path. */
  module: z.string().optional(),
});
export type StartCommand = z.infer<typeof StartCommand>;

/** Resume a parked run, optionally raising its limits. */
export const ResumeCommand = z.object({
  type: z.literal('resume'),
  runId: z.string().min(1).max(200),
  budgetUsd: z.number().nonnegative().optional(),
  maxIterations: z.number().int().positive().optional(),
  deadlineAt: z.number().optional(),
  maxInputTokens: z.number().int().positive().optional(),
  maxOutputTokens: z.number().int().positive().optional(),
});
export type ResumeCommand = z.infer<typeof ResumeCommand>;

/** Any command on the bus. */
export const Command = z.discriminatedUnion('type', [StartCommand, ResumeCommand]);
export type Command = z.infer<typeof Command>;

/** What a handler does with the command it was given. Unsettled when it returns: acked. */
export interface CommandControl {
  /** How many times this command has been delivered, 1 the first time. */
  readonly deliveries: number;
  /**
   * Still busy: restarts the redelivery timer. The bus already does this on its own every
   * {@link heartbeatEveryMs} until the command is settled; call it only to beat sooner.
   */
  working(): void;
  /** Done: the command is removed. */
  ack(): Promise<void>;
  /** Not now: deliver again after `delayMs` (until the delivery limit, then dead-lettered). */
  nak(delayMs?: number): void;
  /** Never: move the command to the dead-letter queue with a reason. */
  deadLetter(reason: string): Promise<void>;
  /**
   * Not mine any more (another worker holds the current delivery): settle without acking, so
   * the command is redelivered if that worker dies too.
   */
  release(): void;
}

/** Handles one command. If it throws, the command is nak'ed with a growing delay. */
export type CommandHandler = (cmd: Command, ctl: CommandControl) => Promise<void>;

/** Options of {@link CommandBus.consume}. */
export interface ConsumeOptions {
  /** Commands handled at once. */
  concurrency: number;
  /** Stops taking commands; `consume` resolves once the handlers in flight have finished. */
  signal: AbortSignal;
  /** Told about a handler that threw (the command is nak'ed) or a bus failure it survived. */
  onError?: (error: unknown, cmd: Command | undefined) => void;
}

/** A dead-lettered command: the original bytes and why they were given up on. */
export interface DeadLetter {
  reason: string;
  /** The subject (NATS) or command type (local) it was sent to. */
  subject: string;
  data: Uint8Array;
  deliveries: number;
  at: number;
}

/** The command bus port. */
export interface CommandBus {
  readonly kind: 'local' | 'nats';
  /** Queues a start; `duplicate` when a start for this run id was already accepted. */
  publishStart(cmd: Omit<StartCommand, 'type'>): Promise<{ duplicate: boolean }>;
  /** Queues a resume. */
  publishResume(cmd: Omit<ResumeCommand, 'type'>): Promise<{ duplicate: boolean }>;
  /** Runs `handler` on commands until `opts.signal` aborts. */
  consume(handler: CommandHandler, opts: ConsumeOptions): Promise<void>;
  /** The dead-letter queue, oldest first (for tests and `plumbline dlq`). */
  deadLetters(): Promise<DeadLetter[]>;
  close(): Promise<void>;
}

const issues = (e: z.ZodError): string =>
  e.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');

/** Validates and encodes a command for sending; a bad one is the caller's mistake. */
export function encodeCommand(cmd: unknown, maxBytes = MAX_COMMAND_BYTES): Uint8Array {
  const r = Command.safeParse(cmd);
  if (!r.success) throw new UsageError(`invalid command: ${issues(r.error)}`);
  const data = new TextEncoder().encode(JSON.stringify(r.data));
  if (data.length > maxBytes) {
    throw new UsageError(
      `command for run ${r.data.runId} is ${data.length} bytes, over the ${maxBytes}-byte limit: pass large inputs by reference (a path or URL)`,
    );
  }
  return data;
}

/** Decodes a received message, or says why it must be dead-lettered. */
export function decodeCommand(
  data: Uint8Array,
  maxBytes = MAX_COMMAND_BYTES,
): { ok: true; cmd: Command } | { ok: false; reason: string } {
  if (data.length > maxBytes)
    return {
      ok: false,
      reason: `command is ${data.length} bytes, over the ${maxBytes}-byte limit`,
    };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    return { ok: false, reason: 'command is not UTF-8 text' };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `command is not JSON: ${(e as Error).message}` };
  }
  const r = Command.safeParse(raw);
  return r.success
    ? { ok: true, cmd: r.data }
    : { ok: false, reason: `invalid command: ${issues(r.error)}` };
}

/** The delay before a failed command is tried again: 1 s, 2 s, 4 s … up to 30 s. */
export function retryDelayMs(deliveries: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, deliveries - 1), 30_000);
}

/**
 * Runs a handler with a control whose first settle wins; acks when the handler returns
 * without settling, naks with {@link retryDelayMs} when it throws.
 */
export async function runHandler(
  handler: CommandHandler,
  cmd: Command,
  ctl: CommandControl,
  onError?: ConsumeOptions['onError'],
): Promise<void> {
  let settled = false;
  const once =
    <A extends unknown[], R>(f: (...a: A) => R, otherwise: R) =>
    (...a: A): R => {
      if (settled) return otherwise;
      settled = true;
      return f(...a);
    };
  const guarded: CommandControl = {
    deliveries: ctl.deliveries,
    working: () => {
      if (!settled) ctl.working();
    },
    ack: once(() => ctl.ack(), Promise.resolve()),
    nak: once((delayMs?: number) => ctl.nak(delayMs), undefined),
    deadLetter: once((reason: string) => ctl.deadLetter(reason), Promise.resolve()),
    release: once(() => ctl.release(), undefined),
  };
  try {
    await handler(cmd, guarded);
  } catch (e) {
    onError?.(e, cmd);
    if (!settled) guarded.nak(retryDelayMs(ctl.deliveries));
    return;
  }
  if (!settled) await guarded.ack();
}
