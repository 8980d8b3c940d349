/**
 * The chaos benchmark's audit rules: which effect re-executions a kill excuses, and when the
 * requests at the fake are accounted for by a run's recorded calls.
 */
import { describe, expect, it } from 'vitest';
import {
  accountCalls,
  classifyExtras,
  parseExecutions,
  type Kill,
  type RunAudit,
} from '../bench/lib/chaosAudit.js';

const audit = (
  runId: string,
  calls: Record<string, { attempts: number; responses: number; errors: number; lost: number }>,
): RunAudit => ({
  runId,
  events: 1,
  status: 'completed',
  problems: [],
  calls: new Map(Object.entries(calls)),
  effectsDone: 0,
  effectsStarted: 0,
  effectsFailed: 0,
  replayedDone: 0,
});

describe('classifyExtras', () => {
  const execs = parseExecutions(
    'r-first 10 100\nr-first 20 300\nr-second 20 400\nr-second 30 500\n',
  );
  it('excuses a re-execution only when the earlier executor was killed in between', () => {
    const kills: Kill[] = [{ what: 'worker', name: 'w0', pid: 10, at: 150 }];
    const out = classifyExtras(execs, kills);
    expect(out.map((x) => [x.key, x.cause])).toEqual([
      ['r-first', 'worker-killed'],
      ['r-second', 'live-duplicate'],
    ]);
  });
  it('does not excuse it when the kill came after the second execution, or hit another process', () => {
    const late: Kill[] = [{ what: 'worker', name: 'w0', pid: 10, at: 350 }];
    const other: Kill[] = [{ what: 'worker', name: 'w1', pid: 30, at: 150 }];
    expect(classifyExtras(execs, late)[0]?.cause).toBe('live-duplicate');
    expect(classifyExtras(execs, other)[0]?.cause).toBe('live-duplicate');
  });
  it('names a re-execution across a server kill apart', () => {
    const kills: Kill[] = [{ what: 'server', name: 'nats-server', pid: 0, at: 450 }];
    expect(classifyExtras(execs, kills)[1]?.cause).toBe('across-server-kill');
  });
});

describe('accountCalls', () => {
  it('accepts requests between the recorded outcomes and those plus the lost calls', () => {
    const a = [audit('r', { first: { attempts: 3, responses: 1, errors: 0, lost: 2 } })];
    const at = (n: number) =>
      Array.from({ length: n }, () => ({ runId: 'r', step: 'first', at: 0 }));
    expect(accountCalls(a, at(1)).mismatches).toEqual([]);
    expect(accountCalls(a, at(1)).lostUnsent).toBe(2);
    expect(accountCalls(a, at(3)).mismatches).toEqual([]);
    expect(accountCalls(a, at(4)).mismatches[0]).toMatchObject({ unaccounted: 1, phantom: 0 });
    expect(accountCalls(a, at(0)).mismatches[0]).toMatchObject({ unaccounted: 0, phantom: 1 });
  });
  it('reports requests for a run or step the log never mentions', () => {
    const a = [audit('r', {})];
    const out = accountCalls(a, [{ runId: 'ghost', step: 'first', at: 5 }]);
    expect(out.mismatches).toEqual([
      expect.objectContaining({ runId: 'ghost', step: 'first', requests: 1, unaccounted: 1 }),
    ]);
  });
});
