/**
 * Summarise a long document map-reduce style: split (a transform cutting the text into chunks)
 * → map (one child run per chunk, Claude summarises it, 5 at a time) → reduce (one call combining
 * the summaries, in chunk order, into a summary and key points).
 *
 * The pipeline is written in src/examples/summarise.ts (read it there: it imports the package's
 * entry, `../index.js`, as a user imports `plumbline`): the build compiles it into the package,
 * so `npx plumbline demo` runs it from an install. This file keeps the short path for
 * `plumbline run examples/summarise.ts --input @doc.json` in the repository.
 */
export { default, chunkText, SUMMARY_CONCURRENCY } from '../src/examples/summarise.js';
export type { Chunk } from '../src/examples/summarise.js';
