/**
 * The `@nats-io` client packages, loaded with `require`.
 *
 * They are CommonJS only. An ESM `import` of one makes Node run its CommonJS export lexer over
 * the package and every file it re-exports, and resolve each through the ESM loader: about 14 ms
 * of CPU at every start of a JetStream CLI verb on the benchmark machine (BENCHMARKS.md, figure 7).
 * `require` loads the same files into the same module cache, so a user's own `import` of these
 * packages gets the very same classes (`instanceof` holds both ways); only the lexing is skipped.
 *
 * Types still come from `import type`; values are taken from these objects.
 */
import { createRequire } from 'node:module';
import type * as Core from '@nats-io/transport-node';
import type * as JetStream from '@nats-io/jetstream';
import type * as Kv from '@nats-io/kv';
import type * as Obj from '@nats-io/obj';

const require = createRequire(import.meta.url);

export const natsCore = require('@nats-io/transport-node') as typeof Core;
export const natsJetStream = require('@nats-io/jetstream') as typeof JetStream;
export const natsKv = require('@nats-io/kv') as typeof Kv;
/** The object store client, loaded with the first event too large for a message. */
export const natsObj = (): typeof Obj => require('@nats-io/obj') as typeof Obj;
