/**
 * The README's routes-and-maps example is compiled by `npm run typecheck` from a copy in
 * test/types/readmeConstructs.typecheck.ts: the copy must be the README's block verbatim (but the
 * import path), so the example a user reads is one that type-checks with no cast.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (path: string): string => readFileSync(new URL(path, import.meta.url), 'utf8');

describe('README routes-and-maps example', () => {
  it('is the block test/types/readmeConstructs.typecheck.ts compiles, and has no cast', () => {
    const readme = read('../README.md');
    const block =
      /```ts\n(\/\/ examples\/summarise\.ts and examples\/router\.ts \(abridged\)\n[\s\S]*?)```\n/.exec(
        readme,
      )?.[1];
    expect(block, 'README has the routes-and-maps block').toBeDefined();
    const copy = read('./types/readmeConstructs.typecheck.ts').replace(
      "from '../../src/index.js';",
      "from 'plumbline';",
    );
    expect(copy.endsWith(block ?? '')).toBe(true);
    expect(block).not.toMatch(/\bas [A-Z{]|<[A-Z]\w*>\(/);
    expect(block).toContain('.map(');
    expect(block).toContain('.route(');
  });
});
