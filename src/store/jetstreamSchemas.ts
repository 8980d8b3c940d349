/**
 * The zod schemas of the JetStream store's own records (ledger entries, kill flags, breakers,
 * leases, pools, snapshots) and of events, loaded at their first use ({@link jsSchemas}): the
 * read verbs (`runs`, `cost`) read none of them and start without loading zod (issue 14).
 * The run index entry, which those verbs do read, is checked by hand (`parseIndexEntry`).
 */
import { z } from 'zod';

export { NewEnvelope, StoredEnvelope } from '../machines/events.js';

/** A ledger entry: the original fields (the key is a hash), who claimed it, and the result. */
export const EffectRecord = z.object({
  runId: z.string(),
  step: z.string(),
  key: z.string(),
  claimedAt: z.number(),
  claimer: z.string(),
  done: z.boolean(),
  doneAt: z.number().nullable(),
  result: z.unknown(),
});
export type EffectRecord = z.infer<typeof EffectRecord>;

/** A kill flag (the first one wins). */
export const KillRecord = z.object({ runId: z.string(), reason: z.string(), at: z.number() });

/** `w` identifies the writer, so a retried write can recognise its own first attempt. */
export const BreakerRecord = z.object({ w: z.string(), value: z.unknown() });

/** A run's lease. */
export const LeaseRecord = z.object({
  owner: z.string(),
  token: z.number().int(),
  ttlMs: z.number().int(),
  released: z.boolean(),
  /** Bumped by each renewal so a retried write can tell its own first attempt. */
  n: z.number().int(),
});
export type LeaseRecord = z.infer<typeof LeaseRecord>;

/** A spending pool. */
export const PoolRecord = z.object({
  v: z.literal(1),
  budgetUsd: z.number().nullable(),
  maxIterations: z.number().int().nullable(),
  spentUsd: z.number(),
  reservedUsd: z.number(),
  iterations: z.number().int(),
  /** Reserved, unsettled calls: key → the dollars reserved. */
  held: z.record(z.string(), z.number()),
});
export type PoolRecord = z.infer<typeof PoolRecord>;

/** A saved snapshot. */
export const SnapshotRecord = z.object({
  seq: z.number().int().nonnegative(),
  machineHash: z.string(),
  snapshot: z.unknown(),
});
