/**
 * Triage support tickets: Claude classifies each ticket against a schema; urgent ones get a
 * drafted reply and an escalation written to an outbox (an effect, at most once per ticket).
 *
 * The pipeline is written in src/examples/triage.ts (read it there: it imports the package's
 * entry, `../index.js`, as a user imports `plumbline`): the build compiles that file into the package, so
 * `npx plumbline demo` runs the same pipeline from an install with no TypeScript loader.
 * This file keeps the short path for `plumbline run examples/triage.ts` and
 * `--pipelines examples/` in the repository.
 */
export { default, URGENCY_THRESHOLD } from '../src/examples/triage.js';
