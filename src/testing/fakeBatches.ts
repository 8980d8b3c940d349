/**
 * The fake Claude's Message Batches endpoints: `POST /v1/messages/batches`, `GET …/:id`,
 * `GET …/:id/results` (JSONL, only once ended) and `POST …/:id/cancel`. Each item's outcome is
 * decided when the batch is created (by the batch script, else the fake's script, as if the
 * item were a `POST /v1/messages`); the batch ends after a number of polls, or when released.
 */
import type { ApiUsage } from '../model/cost.js';
import { answerBody, errorResponseBody, type FakeAction } from './fakeResponses.js';

/** What the fake does with one batch item: an answer or an error (as for a call), or no run. */
export type FakeBatchAction = FakeAction | { kind: 'expired' } | { kind: 'canceled' };

/** One item of a batch the fake received. */
export interface FakeBatchItem {
  customId: string;
  /** The item's Messages API body. */
  params: Record<string, unknown>;
}

/** How the fake's batches progress. */
export interface FakeBatchOptions {
  /** A batch ends at its N-th retrieve (default 1: the first poll sees it ended). */
  endAfterPolls?: number;
  /** Keep every batch `in_progress` until `releaseBatches()` (default false). */
  hold?: boolean;
  /** Each item's outcome (default: the fake's script, one action per item). */
  script?: (item: FakeBatchItem, index: number) => FakeBatchAction;
}

interface Batch {
  id: string;
  createdAt: string;
  items: Array<{ customId: string; line: unknown }>;
  polls: number;
  ended: boolean;
  canceled: boolean;
}

/** An HTTP answer of the batch routes: status, JSON (or JSONL text) and headers. */
export interface BatchReply {
  status: number;
  body: unknown;
  /** Set for the results: JSON Lines, sent as is. */
  jsonl?: string;
}

/** The batch state of one fake Claude. */
export class FakeBatches {
  private readonly batches = new Map<string, Batch>();
  private serial = 0;
  private hold: boolean;
  /** How many batches were created (`POST /v1/messages/batches`). */
  created = 0;
  /** How many items all created batches held. */
  items = 0;

  constructor(
    private readonly opts: FakeBatchOptions,
    private readonly fallback: (item: FakeBatchItem) => FakeAction,
    private readonly usage: () => ApiUsage,
    private readonly baseUrl: () => string,
  ) {
    this.hold = opts.hold ?? false;
  }

  /** Holds (or stops holding) every batch in progress. */
  setHold(hold: boolean): void {
    this.hold = hold;
  }

  /** Answers a request under `/v1/messages/batches`, or null when the path is not one of them. */
  handle(method: string, path: string, body: Record<string, unknown>): BatchReply | null {
    const m = /^\/v1\/messages\/batches(?:\/([^/]+))?(?:\/(results|cancel))?$/.exec(path);
    if (m === null) return null;
    const [, id, sub] = m;
    if (id === undefined) return method === 'POST' ? this.create(body) : null;
    const batch = this.batches.get(id);
    if (batch === undefined)
      return error(404, 'not_found_error', `fake Claude has no message batch ${id}`);
    if (method === 'GET' && sub === undefined) {
      batch.polls++;
      if (!this.hold && batch.polls >= (this.opts.endAfterPolls ?? 1)) batch.ended = true;
      return { status: 200, body: this.view(batch) };
    }
    if (method === 'GET' && sub === 'results') {
      if (!batch.ended)
        return error(404, 'not_found_error', `message batch ${id} is still in progress`);
      return {
        status: 200,
        body: null,
        jsonl: batch.items.map((i) => JSON.stringify(i.line)).join('\n') + '\n',
      };
    }
    if (method === 'POST' && sub === 'cancel') {
      if (!batch.ended) {
        batch.canceled = true;
        batch.ended = true;
        for (const i of batch.items)
          i.line = { custom_id: i.customId, result: { type: 'canceled' } };
      }
      return { status: 200, body: this.view(batch) };
    }
    return null;
  }

  private create(body: Record<string, unknown>): BatchReply {
    const requests = body.requests;
    if (!Array.isArray(requests) || requests.length === 0)
      return error(400, 'invalid_request_error', 'requests: give 1 or more batch requests');
    const id = `msgbatch_fake_${String(++this.serial).padStart(4, '0')}`;
    const seen = new Set<string>();
    const items: Batch['items'] = [];
    for (const [i, r] of (requests as Array<{ custom_id?: unknown; params?: unknown }>).entries()) {
      const customId = r.custom_id;
      if (
        typeof customId !== 'string' ||
        !/^[A-Za-z0-9_-]{1,64}$/.test(customId) ||
        seen.has(customId)
      )
        return error(
          400,
          'invalid_request_error',
          `requests.${i}.custom_id: 1-64 of [A-Za-z0-9_-], unique in the batch`,
        );
      seen.add(customId);
      const item = { customId, params: (r.params ?? {}) as Record<string, unknown> };
      const action = this.opts.script?.(item, this.items + i) ?? this.fallback(item);
      items.push({
        customId,
        line: { custom_id: customId, result: this.resultOf(action, item, `${id}_${i}`) },
      });
    }
    this.created++;
    this.items += items.length;
    const batch: Batch = {
      id,
      createdAt: new Date().toISOString(),
      items,
      polls: 0,
      ended: false,
      canceled: false,
    };
    this.batches.set(id, batch);
    return { status: 200, body: this.view(batch) };
  }

  private resultOf(action: FakeBatchAction, item: FakeBatchItem, id: string): unknown {
    switch (action.kind) {
      case 'expired':
      case 'canceled':
        return { type: action.kind };
      case 'delay':
        return this.resultOf(action.then, item, id);
      case 'drop':
        return {
          type: 'errored',
          error: {
            type: 'error',
            error: { type: 'api_error', message: 'fake dropped item' },
            request_id: null,
          },
        };
      case 'status':
        return { type: 'errored', error: errorResponseBody(action, id) };
      default:
        return { type: 'succeeded', message: answerBody(action, item.params, id, this.usage()) };
    }
  }

  private view(b: Batch): Record<string, unknown> {
    const count = (t: string): number =>
      b.ended
        ? b.items.filter((i) => (i.line as { result: { type: string } }).result.type === t).length
        : 0;
    return {
      id: b.id,
      type: 'message_batch',
      processing_status: b.ended ? 'ended' : 'in_progress',
      request_counts: {
        processing: b.ended ? 0 : b.items.length,
        succeeded: count('succeeded'),
        errored: count('errored'),
        canceled: count('canceled'),
        expired: count('expired'),
      },
      created_at: b.createdAt,
      ended_at: b.ended ? new Date().toISOString() : null,
      expires_at: new Date(Date.parse(b.createdAt) + 86_400_000).toISOString(),
      archived_at: null,
      cancel_initiated_at: b.canceled ? new Date().toISOString() : null,
      results_url: b.ended ? `${this.baseUrl()}/v1/messages/batches/${b.id}/results` : null,
    };
  }
}

function error(status: number, type: string, message: string): BatchReply {
  return { status, body: { type: 'error', error: { type, message } } };
}
