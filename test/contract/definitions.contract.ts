/**
 * The definitions part of the store contract (issue 14): machine graphs stored once per
 * machine hash, the first write winning, and runs whose `run.started` leaves the graph out
 * still finding it through `definitionOf`.
 */
import { expect, it } from 'vitest';
import type { RunStarted } from '../../src/machines/events.js';
import { definitionOf, recordDefinition } from '../../src/store/definitions.js';
import type { Store } from '../../src/store/types.js';
import { started } from '../helpers/envelopes.js';

let n = 0;
/** A fresh hex hash (as machine hashes are) per test, so adapters sharing a store never collide. */
const hash = (): string =>
  `${Date.now().toString(16)}${(n++).toString(16).padStart(4, '0')}`.padStart(16, '0');

const graph = (label: string) => ({
  id: 'run',
  nodes: [{ id: 'run.a', key: 'a', parent: 'run', type: 'compound', initial: null, tags: [] }],
  edges: [],
  label,
});

/** Registers the definitions tests inside a store contract `describe`. */
export function describeDefinitions(store: () => Store, rid: () => string): void {
  it('stores a machine graph once per hash: the first write wins, an unknown hash is undefined', async () => {
    const h = hash();
    expect(await store().definitions.get(h)).toBeUndefined();
    await store().definitions.put(h, graph('first'));
    await store().definitions.put(h, graph('second'));
    expect(await store().definitions.get(h)).toEqual(graph('first'));
    // Racing writers of one hash all succeed and one value stays.
    const racing = hash();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => store().definitions.put(racing, graph(`r${i}`))),
    );
    expect((await store().definitions.get(racing)) as { label: string }).toMatchObject({
      label: expect.stringMatching(/^r\d$/) as unknown,
    });
  });

  it('finds the graph of a run whose run.started carries none, and the inline one of an old log', async () => {
    const h = hash();
    const lean = rid();
    const s = started('defs');
    const event: RunStarted = { ...(s.event as RunStarted), machineHash: h, definition: null };
    await recordDefinition(store(), h, graph('stored'));
    await store().log.append(lean, [{ ...s, event }], 'no_stream');
    const [first] = await store().log.read(lean);
    if (first?.event.type !== 'run.started') throw new Error('no run.started read back');
    expect(first.event.definition).toBeNull();
    expect(await definitionOf(store(), first.event)).toEqual(graph('stored'));
    // A log from before definitions were stored apart keeps its own graph.
    const old = rid();
    await store().log.append(
      old,
      [{ ...s, event: { ...event, machineHash: hash(), definition: graph('inline') } }],
      'no_stream',
    );
    const [oldFirst] = await store().log.read(old);
    if (oldFirst?.event.type !== 'run.started') throw new Error('no run.started read back');
    expect(await definitionOf(store(), oldFirst.event)).toEqual(graph('inline'));
  });
}
