/**
 * Machine graphs stored once per machine hash. A `run.started` written with `definition: null`
 * refers to the graph stored under its `machineHash`; older logs carry the graph inline. Writers
 * call {@link recordDefinition} before appending `run.started`; readers call
 * {@link definitionOf} instead of reading `started.definition`.
 */
import type { RunStarted } from '../machines/events.js';
import type { DefinitionStore } from './types.js';

/** Per store, the hashes this process has written (or is writing): one put per machine. */
const recorded = new WeakMap<DefinitionStore, Map<string, Promise<void>>>();

/**
 * Graphs by hash, for {@link knownDefinition}. The hash is the graph's content hash, so one
 * table serves every store; bounded, as a process only ever sees a handful of machines.
 */
const known = new Map<string, unknown>();
const KNOWN_MAX = 256;

function remember(hash: string, graph: unknown): void {
  if (graph === null || graph === undefined || known.has(hash)) return;
  if (known.size >= KNOWN_MAX) known.delete(known.keys().next().value as string);
  known.set(hash, graph);
}

/**
 * Stores a machine's graph under its hash, once per store and process (later calls with the
 * same hash return the first call's promise; a failed write is tried again by the next call).
 * @example await recordDefinition(store, prepared.hash, prepared.graph); // then append run.started with definition: null
 */
export function recordDefinition(
  store: { definitions: DefinitionStore },
  hash: string,
  graph: unknown,
): Promise<void> {
  const port = store.definitions;
  let done = recorded.get(port);
  if (done === undefined) recorded.set(port, (done = new Map()));
  const pending = done.get(hash);
  if (pending !== undefined) return pending;
  remember(hash, graph);
  const p = port.put(hash, graph);
  done.set(hash, p);
  p.catch(() => done.delete(hash));
  return p;
}

/**
 * The graph of a run: `started.definition` when the log carries it (logs written before
 * definitions were stored apart), else the one stored under `started.machineHash`; undefined
 * when neither has it.
 */
export async function definitionOf(
  store: { definitions: DefinitionStore },
  started: Pick<RunStarted, 'definition' | 'machineHash'>,
): Promise<unknown> {
  if (started.definition !== null && started.definition !== undefined) return started.definition;
  const cached = known.get(started.machineHash);
  if (cached !== undefined) return cached;
  const graph = await store.definitions.get(started.machineHash);
  remember(started.machineHash, graph);
  return graph;
}

/**
 * The graph of a run when it is at hand without a store read: inline in `started`, or recorded
 * or looked up by this process before (for synchronous readers such as a progress line).
 */
export function knownDefinition(started: Pick<RunStarted, 'definition' | 'machineHash'>): unknown {
  if (started.definition !== null && started.definition !== undefined) return started.definition;
  return known.get(started.machineHash);
}
