/**
 * The Message Batches port: submit many requests as one batch, poll it, read its results. Like
 * {@link ModelClient}, no method throws: a failure is a classified outcome.
 */
import type { Usage } from '../machines/events.js';
import type { ClassifiedError, ModelBlock, ModelOutcome, ModelRequest } from './types.js';

/** One request of a batch and the id its result comes back under. */
export interface BatchItem {
  customId: string;
  request: ModelRequest;
}

/** Where a batch stands: `ended` once every item has a result (succeeded or not). */
export type BatchStatus = 'in_progress' | 'canceling' | 'ended';

/** The result of one item of an ended batch. */
export type BatchItemResult =
  /** Answered: the message, with the usage the result reports. */
  | { type: 'succeeded'; answer: BatchAnswer }
  /** The API answered the item with an error (classified like a call's error). */
  | { type: 'errored'; error: ClassifiedError }
  /** Not processed: the batch expired (24 h) or was canceled before the item ran. */
  | { type: 'expired' | 'canceled' };

/** A port over `/v1/messages/batches`. */
export interface BatchClient {
  /** Creates one batch holding `items`; its id, or the classified error. */
  submit(
    items: readonly BatchItem[],
    signal?: AbortSignal,
  ): Promise<{ ok: true; batchId: string } | { ok: false; error: ClassifiedError }>;
  /** The batch's processing status. */
  status(
    batchId: string,
    signal?: AbortSignal,
  ): Promise<{ ok: true; status: BatchStatus } | { ok: false; error: ClassifiedError }>;
  /** Asks the API to cancel a batch in progress (items not yet run come back `canceled`). */
  cancel(
    batchId: string,
    signal?: AbortSignal,
  ): Promise<{ ok: true } | { ok: false; error: ClassifiedError }>;
  /** The results of an ended batch, by `custom_id`. */
  results(
    batchId: string,
    signal?: AbortSignal,
  ): Promise<
    { ok: true; results: Map<string, BatchItemResult> } | { ok: false; error: ClassifiedError }
  >;
}

/** A succeeded item's message, as the runtime keeps it. */
export interface BatchAnswer {
  /** The message id (a batch item has no request id of its own). */
  requestId: string | null;
  model: string;
  stopReason: string | null;
  usage: Usage;
  /** The answer's text and tool_use blocks, in order. */
  content: ModelBlock[];
}

/**
 * The outcome a direct call would have given for this answer to `request`: in tool mode the
 * forced tool's input as JSON, else the text blocks joined (as the Anthropic adapter reads it).
 */
export function outcomeOfAnswer(
  answer: BatchAnswer,
  request: Pick<ModelRequest, 'mode' | 'schemaName'>,
  durationMs: number,
): Extract<ModelOutcome, { ok: true }> {
  let text: string | null = null;
  const use =
    request.mode === 'tool'
      ? answer.content.find((b) => b.type === 'tool_use' && b.name === request.schemaName)
      : undefined;
  if (use !== undefined && use.type === 'tool_use') text = JSON.stringify(use.input);
  else {
    const texts = answer.content.flatMap((b) => (b.type === 'text' ? [b.text] : []));
    text = texts.length > 0 ? texts.join('') : null;
  }
  return {
    ok: true,
    requestId: answer.requestId,
    model: answer.model,
    stopReason: answer.stopReason,
    usage: answer.usage,
    text,
    content: answer.content,
    durationMs,
  };
}
