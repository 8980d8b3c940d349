/**
 * Replay fidelity: for fast-check-generated event sequences, a live XState actor's states are
 * recorded into a real (SQLite) log; folding that log with today's machine yields exactly the
 * recorded states and the actor's final context. The generated runs together must visit every
 * recordable state of the machine.
 */
import fc from 'fast-check';
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { definePipeline, effect, llm, step } from '../src/machines/pipeline.js';
import type { MachineEvent, NewEnvelope } from '../src/machines/events.js';
import { phaseOf, statusOf, summarize, type RunSnapshot } from '../src/machines/fold.js';
import { foldLog } from '../src/machines/replay.js';
import { prepare } from '../src/runtime/prepare.js';
import { openSqliteStore } from '../src/store/sqlite.js';

const pipeline = definePipeline({
  name: 'fidelity',
  version: '1',
  input: z.object({ q: z.string() }),
  retry: { maxAttempts: 3 },
  steps: [
    llm({
      name: 'ask',
      model: 'claude-haiku-4-5',
      prompt: () => 'q',
      output: z.object({ a: z.string() }),
      maxValidationAttempts: 2,
      maxTokensOnRetry: 2048,
    }),
    effect({ name: 'send', key: () => 'k', run: () => null, maxAttempts: 2 }),
    step({ name: 'done', run: () => 1 }),
  ],
});
const prepared = prepare(pipeline);
const { machine } = prepared;
const TRANSIENT = new Set(['limits', 'validate', 'retry']);

/** Random choices a generated run draws from. */
type Draw = (n: number) => number;

function nextEvent(s: RunSnapshot, draw: Draw, at: number): MachineEvent | null {
  const status = statusOf(s);
  if (status === 'parked')
    return draw(4) === 0
      ? { type: 'KILL', reason: 'k' }
      : { type: 'RESUME', budgetUsd: 10, maxIterations: 100, deadlineAt: null };
  if (status !== 'running') return null;
  if (draw(25) === 0) return { type: 'KILL', reason: 'operator' };
  const where = phaseOf(s);
  if (where === null) return null;
  const { step: st, phase } = where;
  if (phase === 'backoff') return { type: 'TIMER', step: st, at };
  if (st === 'ask') {
    if (phase === 'ready') {
      if (draw(10) === 0) return { type: 'SKIP', step: st, reason: 'not needed' };
      const breaker =
        (['closed', 'closed', 'closed', 'open', 'half_open'] as const)[draw(5)] ?? 'closed';
      return {
        type: 'ATTEMPT',
        step: st,
        attempt: 1,
        at,
        estimate: { inputTokens: 10, maxTokens: 100, usd: draw(6) === 0 ? 5 : 0.001 },
        breaker,
        model: 'claude-haiku-4-5',
      };
    }
    const k = draw(6);
    if (k <= 2) {
      const verdict = (['valid', 'invalid', 'refusal', 'max_tokens'] as const)[draw(4)] ?? 'valid';
      return {
        type: 'MODEL_RESPONSE',
        step: st,
        attempt: 1,
        requestId: 'r',
        model: 'm',
        stopReason: 'end_turn',
        usage: {
          inputTokens: 1,
          outputTokens: 1,
          cacheReadTokens: 0,
          cacheWrite5mTokens: 0,
          cacheWrite1hTokens: 0,
        },
        costUsd: 0.0001,
        verdict,
        ...(verdict === 'valid' ? { output: { a: 'x' } } : {}),
        issues: verdict === 'valid' ? [] : ['a: required'],
        text: null,
        durationMs: 1,
      };
    }
    return {
      type: 'MODEL_ERROR',
      step: st,
      attempt: 1,
      requestId: null,
      model: 'm',
      status: k === 3 ? 400 : 529,
      kind: k === 3 ? 'bad_request' : 'overloaded',
      retryable: k !== 3,
      message: 'x',
      delayMs: 5,
      retryAt: at + 5,
      usage: null,
      costUsd: 0,
      durationMs: 1,
    };
  }
  if (st === 'send') {
    if (phase === 'ready')
      return draw(8) === 0
        ? { type: 'SKIP', step: st, reason: 'no' }
        : { type: 'EFFECT_STARTED', step: st, key: 'k', attempt: 1 };
    return draw(3) === 0
      ? {
          type: 'EFFECT_FAILED',
          step: st,
          key: 'k',
          message: 'boom',
          retryable: draw(2) === 0,
          delayMs: 3,
          retryAt: at + 3,
        }
      : {
          type: 'EFFECT_DONE',
          step: st,
          key: 'k',
          result: { ok: true },
          replayed: draw(2) === 0,
          durationMs: 1,
        };
  }
  return draw(5) === 0
    ? { type: 'STEP_FAILED', step: st, message: 'bad' }
    : { type: 'STEP_DONE', step: st, output: { n: draw(100) } };
}

const recordedStates = new Set<string>();

describe('replay fidelity', () => {
  it('folds every generated log to exactly the states a live actor recorded', async () => {
    const store = openSqliteStore(':memory:');
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(), { minLength: 60, maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        async (rolls, maxIterations) => {
          const runId = `f${n++}`;
          let i = 0;
          const draw: Draw = (k) => (rolls[i++ % rolls.length] ?? 0) % k;
          const input = {
            runId,
            input: { q: 'x' },
            limits: { budgetUsd: 1, maxIterations, deadlineAt: null },
            startedAt: 0,
          };
          const actor = createActor(machine, { input }).start();
          const log: NewEnvelope[] = [
            {
              v: 1,
              at: 0,
              event: {
                type: 'run.started',
                pipeline: 'fidelity',
                version: '1',
                machineHash: prepared.hash,
                definition: null,
                module: null,
                input: input.input,
                limits: input.limits,
                forkedFrom: null,
              },
              state: summarize(actor.getSnapshot() as RunSnapshot),
            },
          ];
          for (let at = 1; at < 80; at++) {
            const snap = actor.getSnapshot() as RunSnapshot;
            const ev = nextEvent(snap, draw, at);
            if (ev === null) break;
            actor.send(ev);
            const after = actor.getSnapshot() as RunSnapshot;
            log.push({ v: 1, at, event: ev, state: summarize(after) });
            recordedStates.add(JSON.stringify(after.value));
          }
          await store.log.append(runId, log, 'no_stream');
          const stored = await store.log.read(runId);
          const folded = foldLog(machine, prepared.hash, runId, stored);
          const live = actor.getSnapshot() as RunSnapshot;
          expect(folded.snapshot.value).toEqual(live.value);
          expect(folded.snapshot.context).toEqual(JSON.parse(JSON.stringify(live.context)));
          actor.stop();
        },
      ),
      { numRuns: 300, seed: 42 },
    );
    await store.close();
    // Every recordable (non-transient, atomic) state of the machine was visited by some run.
    const atomic = prepared.graph.nodes.filter(
      (x) => (x.type === 'atomic' || x.type === 'final') && !TRANSIENT.has(x.key),
    );
    const toValue = (id: string): string => {
      const parts = id.split('.').slice(1);
      return JSON.stringify(parts.length === 1 ? parts[0] : { [parts[0] as string]: parts[1] });
    };
    const missing = atomic.map((x) => toValue(x.id)).filter((v) => !recordedStates.has(v));
    expect(missing).toEqual([]);
    // 300 runs: about 5 s on a loaded 2-core machine, past vitest's 5 s default.
  }, 60_000);
});
