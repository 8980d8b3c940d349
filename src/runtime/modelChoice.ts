/**
 * The driver's side of model fallback: which model an attempt of a fallback llm step calls, by
 * asking the breakers from the step's floor on (see machines/fallback.ts for the pure rules).
 */
import type { BreakerView } from '../machines/events.js';

/** The model an attempt calls and the breaker's view of it (recorded in the ATTEMPT). */
export interface ModelChoice {
  model: string;
  breaker: BreakerView;
}

/** Asks a model's breaker for a call: `closed`, `half_open` (this call is the probe) or `open`. */
export type AcquireBreaker = (model: string) => Promise<BreakerView>;

/**
 * The first model at or after `floor` whose breaker lets a call through; when every breaker is
 * open, the floor's model with `open` (the limits guard parks the run, as with one model).
 * Breakers after the chosen one are not asked, so no half-open probe is taken and left unused.
 */
export async function chooseModel(
  models: readonly string[],
  floor: number,
  acquire: AcquireBreaker | undefined,
): Promise<ModelChoice> {
  const first = models[floor] ?? (models[0] as string);
  if (acquire === undefined) return { model: first, breaker: 'closed' };
  for (let i = floor; i < models.length; i++) {
    const model = models[i] as string;
    const breaker = await acquire(model);
    if (breaker !== 'open') return { model, breaker };
  }
  return { model: first, breaker: 'open' };
}
