/**
 * Summarise a long document map-reduce style: a transform cuts the text into chunks, a map runs
 * one child run per chunk (Claude summarises it, 5 chunks at a time), and a last model call
 * reduces the chunk summaries to one summary with key points.
 *
 * The one definition of the example (examples/summarise.ts re-exports it): it lives under src/
 * so the build compiles it into dist/, where `plumbline demo` loads it from an installed package.
 * Each chunk is a child run `<runId>-summaries-<i>` with its own log; the parent's log records
 * only that it started N children and, at the end, their results in chunk order. The parent's
 * budget and call cap cover its children's calls.
 */
import { z } from 'zod';
import { pipeline } from '../index.js';

const Document = z.object({
  title: z.string().min(1),
  text: z.string().min(1),
  /** Largest chunk in characters (default 1,500); paragraphs are kept whole when they fit. */
  chunkChars: z.number().int().min(200).max(50_000).optional(),
});

const ChunkSummary = z.object({
  summary: z.string().min(1).max(600),
});

const DocumentSummary = z.object({
  summary: z.string().min(1),
  keyPoints: z.array(z.string().min(1)).min(1).max(8),
});

/** Chunks summarised at once (each a child run). */
export const SUMMARY_CONCURRENCY = 5;

/** One chunk of the document, as a map item (plain JSON: the child run's input). */
export interface Chunk {
  part: number;
  of: number;
  text: string;
}

/**
 * Cuts `text` into chunks of at most `max` characters at paragraph breaks (a paragraph longer
 * than `max` is cut at sentence ends, then hard).
 */
export function chunkText(text: string, max: number): string[] {
  const pieces = text
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .flatMap((p) => (p.length <= max ? [p] : cut(p, max)));
  const chunks: string[] = [];
  for (const p of pieces) {
    const last = chunks[chunks.length - 1];
    if (last !== undefined && last.length + 2 + p.length <= max)
      chunks[chunks.length - 1] = `${last}\n\n${p}`;
    else chunks.push(p);
  }
  return chunks;
}

function cut(paragraph: string, max: number): string[] {
  const out: string[] = [];
  let rest = paragraph;
  while (rest.length > max) {
    const end = rest.lastIndexOf('. ', max);
    const at = end > max / 2 ? end + 1 : max;
    out.push(rest.slice(0, at).trim());
    rest = rest.slice(at).trim();
  }
  if (rest.length > 0) out.push(rest);
  return out;
}

export default pipeline({
  name: 'summarise',
  version: '1',
  input: Document,
  // The caps of the whole tree: every chunk's call reserves against them before it is made.
  limits: { budgetUsd: 1, maxIterations: 60 },
})
  .step({
    name: 'split',
    run: ({ input }): Chunk[] => {
      const texts = chunkText(input.text, input.chunkChars ?? 1_500);
      return texts.map((text, i) => ({ part: i + 1, of: texts.length, text }));
    },
  })
  .map({
    name: 'summaries',
    over: ({ outputs }) => outputs.split,
    concurrency: SUMMARY_CONCURRENCY,
    // Each item is a child run of these steps; `input` is the chunk.
    steps: (chunk) =>
      chunk.llm({
        name: 'summarise-chunk',
        model: 'claude-haiku-4-5',
        system: 'You summarise one part of a longer document. Answer with JSON only.',
        prompt: ({ input }) =>
          `Summarise part ${input.part} of ${input.of} in two or three sentences.\n\n${input.text}`,
        output: ChunkSummary,
        maxTokens: 300,
      }),
  })
  .llm({
    name: 'reduce',
    model: 'claude-sonnet-4-6',
    system: 'You combine summaries of the parts of a document. Answer with JSON only.',
    prompt: ({ input, outputs }) =>
      `Combine these summaries of the parts of "${input.title}", in order, into one summary ` +
      `and at most 8 key points.\n\n` +
      outputs.summaries.map((s, i) => `Part ${i + 1}: ${s.summary}`).join('\n'),
    output: DocumentSummary,
    maxTokens: 800,
  })
  .build();
