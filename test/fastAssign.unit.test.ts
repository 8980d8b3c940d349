/**
 * plumbline's `assign` (a spread copy of the context) gives the very snapshots XState's own
 * `assign` gives: function and object forms, params, several assigns in one transition, and
 * eventless transitions reading the assigned context.
 */
import { assign as xstateAssign, initialTransition, setup, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { assign as fastAssign } from '../src/machines/fastAssign.js';

type Ctx = Record<string, unknown> & { n: number; log: string[]; last: unknown };
type Ev = { type: 'ADD'; by: number } | { type: 'RESET' };

function machineWith(assign: typeof xstateAssign) {
  const fields = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, i]));
  return setup({
    types: { context: {} as Ctx, events: {} as Ev },
    actions: {
      add: assign(({ context, event }, p: { note: string }) => ({
        n: context.n + (event.type === 'ADD' ? event.by : 0),
        log: [...context.log, p.note],
        last: event,
      })),
      mark: assign(({ context }) => ({ f3: `n=${context.n}` })),
      clear: assign({ n: 0, log: () => [] }),
    },
    guards: { big: ({ context }) => context.n >= 5 },
  }).createMachine({
    context: () => ({ n: 0, log: [], last: null, ...fields }),
    initial: 'low',
    entry: [{ type: 'add', params: { note: 'entry' } }],
    on: { RESET: { target: '.low', actions: 'clear' } },
    states: {
      low: {
        on: {
          ADD: { target: 'check', actions: [{ type: 'add', params: { note: 'add' } }, 'mark'] },
        },
      },
      check: { always: [{ guard: 'big', target: 'high' }, { target: 'low' }] },
      high: { entry: 'mark', on: { ADD: { actions: { type: 'add', params: { note: 'more' } } } } },
    },
  });
}

describe('fastAssign', () => {
  it("folds a sequence of events to XState's own snapshots", () => {
    const theirs = machineWith(xstateAssign);
    const ours = machineWith(fastAssign);
    let a = initialTransition(theirs)[0];
    let b = initialTransition(ours)[0];
    expect(b.context).toEqual(a.context);
    const events: Ev[] = [
      { type: 'ADD', by: 2 },
      { type: 'ADD', by: 4 },
      { type: 'ADD', by: 1 },
      { type: 'RESET' },
      { type: 'ADD', by: 9 },
    ];
    for (const e of events) {
      a = transition(theirs, a, e)[0];
      b = transition(ours, b, e)[0];
      expect(b.value).toEqual(a.value);
      expect(b.context).toEqual(a.context);
      expect(Object.keys(b.context)).toEqual(Object.keys(a.context));
      expect([...b.tags]).toEqual([...a.tags]);
      expect(b.status).toBe(a.status);
    }
    expect(b.value).toBe('high');
    expect(b.context.log).toEqual(['add']);
  });
});
