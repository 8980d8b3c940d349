/**
 * A {@link Store} that scrubs known secret values from everything written to it, so the event
 * log, the effect ledger, the run index and every reader (replay, the visualizer, `cost`,
 * `verify`) never hold a credential, whichever path echoed it.
 */
import { envelopeHash, link } from '../machines/chain.js';
import type { NewEnvelope } from '../machines/events.js';
import { redactValue, secretValues } from '../runtime/redact.js';
import type {
  ControlStore,
  DefinitionStore,
  EffectLedger,
  EventLog,
  ExpectedVersion,
  Store,
} from './types.js';

/**
 * Wraps `store` so that appended envelopes, machine graphs, saved snapshots, recorded effect
 * results, kill reasons and breaker records are scrubbed of `secrets` (values shorter than 8
 * characters are ignored). Reads and every other member pass through unchanged. Returns `store` itself when
 * there is no secret. A chained batch (`prev` set) that had to be scrubbed is re-linked, and
 * the next batch's `prev`, which its writer derived from the unscrubbed envelope, is mapped
 * to the stored one, so `verify` still finds an unbroken chain.
 * @example const store = redactingStore(openSqliteStore(path), secretsFromEnv());
 */
export function redactingStore(store: Store, secrets: readonly string[]): Store {
  const values = secretValues(secrets);
  if (values.length === 0) return store;
  const clean = <T>(value: T): T => redactValue(value, values);
  const chains = new ChainHeads();

  // Each override scrubs one argument and forwards all of them, so a parameter added to the
  // port later is not dropped.
  const log = overlay<EventLog>(store.log, {
    append: async (...args) => {
      const [runId, events, expected] = args;
      const stored = chains.relink(runId, events, clean(events), expected);
      const seq = await store.log.append(...replaced(args, 1, stored));
      chains.appended(runId, events, stored, expected);
      return seq;
    },
    saveSnapshot: (...args) => store.log.saveSnapshot(...replaced(args, 1, clean(args[1]))),
  });
  const ledger = overlay<EffectLedger>(store.ledger, {
    record: (...args) => store.ledger.record(...replaced(args, 3, clean(args[3]))),
  });
  const control = overlay<ControlStore>(store.control, {
    setKill: (...args) => store.control.setKill(...replaced(args, 0, clean(args[0]))),
    casBreaker: (...args) => store.control.casBreaker(...replaced(args, 1, clean(args[1]))),
  });
  const definitions = overlay<DefinitionStore>(store.definitions, {
    put: (...args) => store.definitions.put(...replaced(args, 1, clean(args[1]))),
  });
  return overlay<Store>(store, { log, ledger, control, definitions });
}

/**
 * Per run, the chain head a writer holds (the hash of its last, unscrubbed envelope) and the
 * head actually stored, for the runs where the two differ.
 */
class ChainHeads {
  private readonly heads = new Map<string, { writer: string; stored: string }>();

  /** The envelopes to store: `cleaned`, re-linked when scrubbing or an earlier scrub broke the chain. */
  relink(
    runId: string,
    original: NewEnvelope[],
    cleaned: NewEnvelope[],
    expected: ExpectedVersion,
  ): NewEnvelope[] {
    const first = original[0]?.prev;
    if (first === undefined) return cleaned;
    const known = this.heads.get(runId);
    const head = known !== undefined && known.writer === first ? known.stored : first;
    if (cleaned === original && head === first) return cleaned;
    return link(cleaned, head, firstSeq(expected));
  }

  /** Remembers the heads after a successful append of `stored` (for `original`). */
  appended(
    runId: string,
    original: NewEnvelope[],
    stored: NewEnvelope[],
    expected: ExpectedVersion,
  ): void {
    const last = original.at(-1);
    if (stored === original || last?.prev === undefined) {
      this.heads.delete(runId);
      return;
    }
    const seq = firstSeq(expected) + original.length - 1;
    const storedLast = stored.at(-1)!;
    this.heads.set(runId, {
      writer: envelopeHash(last.prev, { ...last, seq }),
      stored: envelopeHash(storedLast.prev, { ...storedLast, seq }),
    });
  }
}

/** `args` with the one at `index` replaced. */
function replaced<A extends unknown[]>(args: A, index: number, value: A[number]): A {
  const copy = [...args] as A;
  copy[index] = value;
  return copy;
}

function firstSeq(expected: ExpectedVersion): number {
  return expected === 'no_stream' ? 1 : expected + 1;
}

/**
 * `target` with some members replaced; every other member (including ones added to the port
 * later) is read from `target`, methods bound to it.
 */
function overlay<T extends object>(target: T, replaced: Partial<T>): T {
  return new Proxy(target, {
    get(t, prop) {
      if (Object.prototype.hasOwnProperty.call(replaced, prop)) {
        return (replaced as Record<PropertyKey, unknown>)[prop];
      }
      const value = Reflect.get(t, prop, t) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
}
