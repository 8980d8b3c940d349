/**
 * The hash chain of a run's log: every envelope carries, in `prev`, the hash of the envelope
 * before it, so an event edited or forged after it was written is named by seq (`verify`).
 * Pure: hashing only, no I/O.
 *
 * A writer keeps the head of the chain: `prev` of seq 1 is {@link GENESIS}; after that it is
 * `envelopeHash(last.prev, last)` of the last envelope ({@link nextPrev}), which also starts a
 * chain on a log written before `prev` existed. {@link link} sets `prev` on a batch.
 */
import { hash } from 'node:crypto';
import { canonicalJson, canonicalJsonAt, quote } from './canonicalJson.js';
import { canonicalWriter } from './canonicalSchema.js';
import { MachineEvent, RunStarted, StateSummary, type NewEnvelope } from './events.js';

export { canonicalJson } from './canonicalJson.js';

/** The `prev` of the first event of a run. */
export const GENESIS = '0'.repeat(64);

/** What the chain covers of an envelope (its `prev` is passed beside it). */
export interface Chainable {
  seq: number;
  at: number;
  event: unknown;
  state: unknown;
  prev?: string | undefined;
}

/**
 * The sha256 (hex) of an envelope at `env.seq` whose `prev` is `prevHash`: a canonical JSON of
 * `{ seq, at, event, state, prev }`, event and state normalised by their schemas first (defaults
 * filled, unknown keys dropped) so the writer's envelope and the stored one hash alike.
 * @example const prev = envelopeHash(last.prev, last); // what the envelope after `last` carries
 */
export function envelopeHash(prevHash: string | undefined, env: Chainable): string {
  return hashOf(prevHash, env.seq, env.at, parseEvent(env.event), StateSummary.parse(env.state));
}

function hashOf(
  prevHash: string | undefined,
  seq: number,
  at: number,
  event: unknown,
  state: unknown,
): string {
  const body =
    prevHash !== undefined ? { seq, at, event, state, prev: prevHash } : { seq, at, event, state };
  return hash('sha256', canonicalJson(body), 'hex');
}

const writeStarted = canonicalWriter(RunStarted);
const writeMachineEvent = canonicalWriter(MachineEvent);
const writeState = canonicalWriter(StateSummary);

/**
 * {@link envelopeHash} of an envelope the runtime built itself, normalised without the schema
 * check: for every valid envelope the same hash (test/chainNormalise.unit.test.ts compares
 * them over generated events of every type), for ≈ a tenth of the CPU. The check is the
 * store's (`validateAppends`, on in tests) and every read's. The canonical JSON of
 * `{ seq, at, event, state, prev }` is written here with its keys in their sorted order, event
 * and state by their schemas' writers (`canonicalSchema.ts`: no normalised copy).
 */
function builtHash(prevHash: string, seq: number, env: NewEnvelope): string {
  const event =
    env.event.type === 'run.started' ? writeStarted(env.event, 1) : writeMachineEvent(env.event, 1);
  let body = field('{', '"at"', canonicalJsonAt(env.at, 1));
  body = field(body, '"event"', event);
  body = field(body, '"prev"', quote(prevHash));
  body = field(body, '"seq"', canonicalJsonAt(seq, 1));
  body = field(body, '"state"', writeState(env.state, 1));
  return hash('sha256', `${body}}`, 'hex');
}

/** `body` (an object's JSON so far, without its `}`) and the key's part unless JSON leaves it out. */
function field(body: string, key: string, part: string | undefined): string {
  if (part === undefined) return body;
  return body.length === 1 ? `${body}${key}:${part}` : `${body},${key}:${part}`;
}

/**
 * `RunEvent.parse`, with the union's branch picked by `type` (the same result: `run.started` is
 * the only type RunStarted accepts and the only one MachineEvent refuses), so the common case
 * does not first fail against RunStarted and build its issues.
 */
function parseEvent(event: unknown): unknown {
  const type = (event as { type?: unknown } | null)?.type;
  return type === 'run.started' ? RunStarted.parse(event) : MachineEvent.parse(event);
}

/** The `prev` the envelope after `last` must carry ({@link GENESIS} for an empty log). */
export function nextPrev(last: Chainable | undefined): string {
  return last === undefined ? GENESIS : envelopeHash(last.prev, last);
}

/** `envs` with `prev` set, to be appended at `firstSeq` after an envelope whose {@link nextPrev} is `head`. */
export function link(envs: readonly NewEnvelope[], head: string, firstSeq: number): NewEnvelope[] {
  return chain(envs, head, firstSeq).envs;
}

/** {@link link}, and the head after the batch (the `prev` of the envelope that follows it). */
export function chain(
  envs: readonly NewEnvelope[],
  head: string,
  firstSeq: number,
): { envs: NewEnvelope[]; head: string } {
  let prev = head;
  const linked = envs.map((e, i) => {
    const chained = { ...e, prev };
    prev = builtHash(prev, firstSeq + i, chained);
    return chained;
  });
  return { envs: linked, head: prev };
}

/** The verdict of {@link checkChain}. */
export type ChainCheck = { ok: true } | { ok: false; seq: number; reason: string };

/**
 * Checks the chain of a run's envelopes (in seq order): consecutive seqs, seq 1 chained to
 * {@link GENESIS}, and each `prev` equal to the hash of the envelope before it. A log with no
 * `prev` at all (written before the chain) passes; one that stops carrying `prev` after it began
 * does not. Names the first seq that breaks.
 */
export function checkChain(envelopes: readonly Chainable[]): ChainCheck {
  let startedAt: number | null = null;
  let before: Chainable | undefined;
  for (const env of envelopes) {
    if (before !== undefined && env.seq !== before.seq + 1) {
      const missing = env.seq > before.seq;
      return fail(
        missing ? before.seq + 1 : env.seq,
        `seq ${env.seq} follows seq ${before.seq}: ${missing ? `event ${before.seq + 1} is missing` : 'out of order'}`,
      );
    }
    if (env.prev === undefined) {
      if (startedAt !== null)
        return fail(
          env.seq,
          `seq ${env.seq} has no prev hash although the chain began at seq ${startedAt} — event ${env.seq} was written or edited outside plumbline`,
        );
    } else {
      startedAt ??= env.seq;
      if (before !== undefined && env.prev !== envelopeHash(before.prev, before))
        return fail(
          env.seq,
          `seq ${env.seq}: prev hash does not match seq ${before.seq} — event ${before.seq} or ${env.seq} was edited`,
        );
      if (before === undefined && env.seq === 1 && env.prev !== GENESIS)
        return fail(1, 'seq 1: prev hash is not the genesis hash — event 1 was edited');
    }
    before = env;
  }
  return { ok: true };
}

function fail(seq: number, reason: string): ChainCheck {
  return { ok: false, seq, reason };
}
