/**
 * The SQLite store's machine definitions: one row per machine hash, so a run's `run.started`
 * can leave its graph out (it is the same for every run of one machine).
 */
import type Database from 'better-sqlite3';
import { CorruptEventError } from '../errors.js';
import type { DefinitionStore } from './types.js';

const SCHEMA = 'CREATE TABLE IF NOT EXISTS definitions (hash TEXT PRIMARY KEY, body TEXT NOT NULL)';

/**
 * The definitions table of `db`, created unless `readonly`. A read-only store made before the
 * table existed answers every `get` with undefined, as a store that never recorded a graph would.
 */
export function sqliteDefinitions(db: Database.Database, readonly: boolean): DefinitionStore {
  if (!readonly) db.exec(SCHEMA);
  let put: Database.Statement<[string, string]> | undefined;
  let get: Database.Statement<[string], { body: string }> | undefined;
  /** The lookup, prepared once the table exists (a writer may create it after a reader opened). */
  const lookup = (): typeof get => {
    try {
      get ??= db.prepare<[string], { body: string }>('SELECT body FROM definitions WHERE hash = ?');
    } catch {
      return undefined;
    }
    return get;
  };
  return {
    async put(hash, graph) {
      put ??= db.prepare<[string, string]>(
        'INSERT OR IGNORE INTO definitions (hash, body) VALUES (?, ?)',
      );
      put.run(hash, JSON.stringify(graph ?? null));
    },
    async get(hash) {
      const row = lookup()?.get(hash);
      if (row === undefined) return undefined;
      try {
        return JSON.parse(row.body) as unknown;
      } catch (e) {
        throw new CorruptEventError(
          `(definition ${hash})`,
          0,
          `the stored machine graph is not JSON (${(e as Error).message})`,
        );
      }
    },
  };
}
