/**
 * The page's hash router (`src/viz/public/route.js`, plain JS loaded by the page): a malformed
 * hash shows the run list instead of throwing a URIError out of the page.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

type Route =
  | { kind: 'run'; runId: string }
  | { kind: 'pipeline'; name: string }
  | { kind: 'list'; malformed: boolean };

const ROUTE_JS = new URL('../../src/viz/public/route.js', import.meta.url);
const { routeOf } = (await import(ROUTE_JS.href)) as { routeOf: (hash: string) => Route };

describe('routeOf (the page hash)', () => {
  it('reads runs and pipelines, percent-decoded', () => {
    expect(routeOf('#/runs/r-1')).toEqual({ kind: 'run', runId: 'r-1' });
    expect(routeOf('#/runs/a%20b')).toEqual({ kind: 'run', runId: 'a b' });
    expect(routeOf('#/pipelines/triage')).toEqual({ kind: 'pipeline', name: 'triage' });
    expect(routeOf('')).toEqual({ kind: 'list', malformed: false });
    expect(routeOf('#/elsewhere')).toEqual({ kind: 'list', malformed: false });
  });

  it('shows the run list for malformed percent-encoding instead of throwing', () => {
    for (const hash of ['#/runs/%E0%A4%A', '#run=%E0%A4%A', '#%', '#/pipelines/%ZZ']) {
      expect(() => decodeURIComponent(hash.slice(1)), hash).toThrow(URIError);
      expect(routeOf(hash), hash).toEqual({ kind: 'list', malformed: true });
    }
  });

  it('is what the page routes with (no other decoding of location.hash)', () => {
    const app = readFileSync(new URL('../../src/viz/public/app.js', import.meta.url), 'utf8');
    expect(app).toMatch(/import \{ routeOf \} from '\.\/route\.js'/);
    expect(app).toMatch(/routeOf\(location\.hash\)/);
    expect(app).not.toMatch(/decodeURIComponent\([^)]*location\.hash/);
  });
});
