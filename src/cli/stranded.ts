/**
 * Stranded runs: running, quiet, and their driver gone (no lease, or a lapsed one). Light on
 * purpose: `runs` marks the stranded ones of its page without loading the runtime.
 */
import { lapsedForListing } from '../store/leaseRules.js';
import type { LeaseHolder, RunSummary, Store } from '../store/types.js';

/**
 * Running runs quiet for `olderThanMs` whose driver is gone: no lease, or a lapsed one. A run
 * whose driver is alive (however slow its call or effect) keeps its lease and is not listed.
 */
export async function strandedRuns(
  store: Store,
  olderThanMs: number,
): Promise<Array<{ run: RunSummary; holder: LeaseHolder | undefined }>> {
  const quiet = await store.log.listRuns({
    status: 'running',
    updatedBefore: Date.now() - olderThanMs,
  });
  return strandedAmong(store, quiet);
}

/** The running runs among `runs` whose driver is gone (for one page of `runs`). */
export async function strandedAmong(
  store: Store,
  runs: readonly RunSummary[],
): Promise<Array<{ run: RunSummary; holder: LeaseHolder | undefined }>> {
  const now = Date.now();
  const running = runs.filter((r) => r.status === 'running' && r.updatedAt < now);
  if (running.length === 0) return [];
  const holders = await store.leases.holders(running.map((r) => r.runId));
  const margin = store.kind === 'sqlite' ? 1_000 : 30_000;
  return running
    .map((run) => ({ run, holder: holders.get(run.runId) }))
    .filter(({ holder }) => lapsedForListing(holder, Date.now(), margin));
}
