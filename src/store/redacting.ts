/**
 * A {@link Store} that scrubs known secret values from everything written to it, so the event
 * log, the effect ledger, the run index and every reader (replay, the visualizer, `cost`,
 * `verify`) never hold a credential, whichever path echoed it.
 */
import { redactValue, secretValues } from '../runtime/redact.js';
import type { ControlStore, EffectLedger, EventLog, Store } from './types.js';

/**
 * Wraps `store` so that appended envelopes, saved snapshots, recorded effect results, kill
 * reasons and breaker records are scrubbed of `secrets` (values shorter than 8 characters are
 * ignored). Reads and every other member pass through unchanged. Returns `store` itself when
 * there is no secret. Scrub before anything hashes or signs an envelope.
 * @example const store = redactingStore(openSqliteStore(path), secretsFromEnv());
 */
export function redactingStore(store: Store, secrets: readonly string[]): Store {
  const values = secretValues(secrets);
  if (values.length === 0) return store;
  const clean = <T>(value: T): T => redactValue(value, values);

  const log = overlay<EventLog>(store.log, {
    append: (runId, events, expected) => store.log.append(runId, clean(events), expected),
    saveSnapshot: (runId, snapshot) => store.log.saveSnapshot(runId, clean(snapshot)),
  });
  const ledger = overlay<EffectLedger>(store.ledger, {
    record: (runId, step, key, result, at) =>
      store.ledger.record(runId, step, key, clean(result), at),
  });
  const control = overlay<ControlStore>(store.control, {
    setKill: (flag) => store.control.setKill(clean(flag)),
    casBreaker: (key, value, revision) => store.control.casBreaker(key, clean(value), revision),
  });
  return overlay<Store>(store, { log, ledger, control });
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
