/**
 * The {@link BatchClient} over the real Anthropic SDK (`client.messages.batches`): one `create`
 * per batch with each item's body built by {@link buildParams} (the same body a direct call
 * sends), `retrieve` to poll, `results` (JSONL) once ended. Failures come back classified.
 */
import type Anthropic from '@anthropic-ai/sdk';
import type { BatchAnswer, BatchClient, BatchItemResult, BatchStatus } from './batchTypes.js';
import { classifyError, classifyErrorBody } from './classify.js';
import { usageFromApi } from './cost.js';
import { buildParams } from './params.js';
import type { ModelBlock } from './types.js';

/** Creates the batch port over an SDK client (built with `maxRetries: 0`: plumbline retries). */
export function anthropicBatches(
  sdk: Anthropic,
  clock: { now(): number },
  timeoutMs: number,
): BatchClient {
  return {
    async submit(items, signal) {
      try {
        const requests = items.map((i) => ({
          custom_id: i.customId,
          params: buildParams(i.request),
        }));
        const batch = await sdk.messages.batches.create(
          { requests },
          { ...(signal !== undefined ? { signal } : {}), timeout: timeoutMs },
        );
        return { ok: true, batchId: batch.id };
      } catch (e) {
        return { ok: false, error: classifyError(e, clock.now()) };
      }
    },
    async status(batchId, signal) {
      try {
        const batch = await sdk.messages.batches.retrieve(batchId, null, {
          ...(signal !== undefined ? { signal } : {}),
          timeout: timeoutMs,
        });
        return { ok: true, status: batch.processing_status as BatchStatus };
      } catch (e) {
        return { ok: false, error: classifyError(e, clock.now()) };
      }
    },
    async cancel(batchId, signal) {
      try {
        await sdk.messages.batches.cancel(batchId, null, {
          ...(signal !== undefined ? { signal } : {}),
          timeout: timeoutMs,
        });
        return { ok: true };
      } catch (e) {
        return { ok: false, error: classifyError(e, clock.now()) };
      }
    },
    async results(batchId, signal) {
      try {
        const lines = await sdk.messages.batches.results(
          batchId,
          {},
          {
            ...(signal !== undefined ? { signal } : {}),
            timeout: timeoutMs,
          },
        );
        const out = new Map<string, BatchItemResult>();
        for await (const line of lines) out.set(line.custom_id, itemResult(line.result));
        return { ok: true, results: out };
      } catch (e) {
        return { ok: false, error: classifyError(e, clock.now()) };
      }
    },
  };
}

/** One JSONL line's `result` as the port reports it. */
function itemResult(r: Anthropic.Messages.MessageBatchResult): BatchItemResult {
  switch (r.type) {
    case 'succeeded':
      return { type: 'succeeded', answer: answerOf(r.message) };
    case 'errored': {
      const body = r.error as {
        error?: { type?: unknown; message?: unknown };
        request_id?: unknown;
      };
      const requestId = typeof body.request_id === 'string' ? body.request_id : null;
      return { type: 'errored', error: classifyErrorBody(body.error, requestId) };
    }
    default:
      return { type: r.type };
  }
}

function answerOf(msg: Anthropic.Message): BatchAnswer {
  const content: ModelBlock[] = [];
  for (const b of msg.content) {
    if (b.type === 'text') content.push({ type: 'text', text: b.text });
    else if (b.type === 'tool_use')
      content.push({ type: 'tool_use', id: b.id, name: b.name, input: b.input });
  }
  return {
    requestId: msg.id,
    model: msg.model,
    stopReason: msg.stop_reason ?? null,
    usage: usageFromApi(msg.usage),
    content,
  };
}
