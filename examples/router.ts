/**
 * Route customer messages: classify (Claude picks billing, bug or question) → one of three
 * branches (billing: a refund request written to an outbox, at most once per message; bug: a
 * drafted report, then a tracker entry; question: an answer) → one join step.
 *
 * The pipeline is written in src/examples/router.ts (read it there: it imports the package's
 * entry, `../index.js`, as a user imports `plumbline`): the build compiles it into the package,
 * so `npx plumbline demo` runs it from an install. This file keeps the short path for
 * `plumbline run examples/router.ts --input '{"id":"M-1","from":"a@b.c","text":"charged twice"}'`.
 */
export { default, CATEGORIES } from '../src/examples/router.js';
