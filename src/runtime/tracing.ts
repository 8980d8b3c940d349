/**
 * OpenTelemetry spans built from a run's event stream: one span per drive of a run (`run
 * <pipeline>`), one per step inside it, one per model attempt (`chat <model>`, GenAI semantic
 * conventions) and one per effect. Spans carry the events' own times (`at`), so they describe
 * what the log recorded. Only events this process appends make spans: a replay, a fold or a
 * rebuild appends nothing and emits nothing. With no SDK registered the API's tracer is a no-op:
 * the first event of a drive finds its span non-recording and the drive is skipped.
 */
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import type { MachineEvent, StoredEnvelope, Usage } from '../machines/events.js';
import { VERSION } from '../version.js';

/** The instrumentation scope of plumbline's spans. */
export const TRACER_NAME = 'plumbline';

/** Open drives kept before the oldest is ended (a run created and never driven here). */
const MAX_OPEN = 10_000;
/** Run spans remembered so a later drive in this process continues the same trace. */
const MAX_REMEMBERED = 1_000;

interface StepSpan {
  name: string;
  span: Span;
  ctx: Context;
  costUsd: number;
}

/** One drive of one run, as seen by this process. */
interface Drive {
  tracer: Tracer;
  /** Null when the tracer does not record (no SDK, or sampled out): events are skipped. */
  run: Span | null;
  ctx: Context;
  step: StepSpan | null;
  attempts: Map<number, Span>;
  effect: Span | null;
}

const common = (env: StoredEnvelope, pipeline: string): Attributes => ({
  'plumbline.run_id': env.runId,
  'plumbline.pipeline': pipeline,
  'plumbline.seq': env.seq,
});

/** GenAI usage attributes; Anthropic's input_tokens excludes cache reads and writes, semconv's includes them. */
function usageAttributes(u: Usage): Attributes {
  const cacheWrite = u.cacheWrite5mTokens + u.cacheWrite1hTokens;
  return {
    'gen_ai.usage.input_tokens': u.inputTokens + u.cacheReadTokens + cacheWrite,
    'gen_ai.usage.output_tokens': u.outputTokens,
    'gen_ai.usage.cache_read.input_tokens': u.cacheReadTokens,
    'gen_ai.usage.cache_creation.input_tokens': cacheWrite,
  };
}

/** True when the envelope left the run calling the model in `step`. */
function isCalling(env: StoredEnvelope, step: string): boolean {
  const v = env.state.value;
  return typeof v === 'object' && v !== null && (v as Record<string, unknown>)[step] === 'calling';
}

/**
 * Turns appended envelopes into spans. The Runtime owns one (`tracing: false` turns it off);
 * `onEvent` after every append, `endDrive` when a drive stops without a terminal or parked state.
 */
export class RunTracer {
  private readonly drives = new Map<string, Drive>();
  /** The last run span of each run driven here, so a later drive here joins its trace. */
  private readonly previous = new Map<string, SpanContext>();

  /** Handles one appended envelope of `pipeline`; never throws. */
  onEvent(env: StoredEnvelope, pipeline: string): void {
    try {
      this.handle(env, pipeline);
    } catch {
      // Tracing must never fail a run: a broken exporter or processor costs spans, not runs.
    }
  }

  /** Ends the spans of a drive that stopped (aborted, fenced, interrupted) at `at`. */
  endDrive(runId: string, at: number, why: string): void {
    const d = this.drives.get(runId);
    if (d === undefined) return;
    try {
      if (d.run !== null) d.run.setAttribute('plumbline.stopped', why);
      this.close(runId, d, at, null);
    } catch {
      this.drives.delete(runId);
    }
  }

  private open(env: StoredEnvelope, pipeline: string): Drive {
    const tracer = trace.getTracer(TRACER_NAME, VERSION);
    // A drive here after an earlier one (a resume after parking) joins the earlier trace; a
    // drive in another process starts a trace of its own (see the README: Tracing).
    const before = this.previous.get(env.runId);
    const parent =
      before !== undefined ? trace.setSpanContext(context.active(), before) : context.active();
    const ev = env.event;
    const run = tracer.startSpan(
      `run ${pipeline}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: env.at,
        attributes: {
          ...common(env, pipeline),
          ...(ev.type === 'run.started'
            ? { 'plumbline.pipeline_version': ev.version }
            : { 'plumbline.resumed': true }),
        },
      },
      parent,
    );
    const d: Drive = run.isRecording()
      ? {
          tracer,
          run,
          ctx: trace.setSpan(parent, run),
          step: null,
          attempts: new Map(),
          effect: null,
        }
      : { tracer, run: null, ctx: parent, step: null, attempts: new Map(), effect: null };
    if (this.drives.size >= MAX_OPEN) {
      const [oldest] = this.drives.keys();
      if (oldest !== undefined) this.endDrive(oldest, env.at, 'evicted');
    }
    this.drives.set(env.runId, d);
    return d;
  }

  private handle(env: StoredEnvelope, pipeline: string): void {
    const d = this.drives.get(env.runId) ?? this.open(env, pipeline);
    if (d.run === null) {
      if (env.state.status !== 'running') this.drives.delete(env.runId);
      return;
    }
    const ev = env.event;
    if (ev.type !== 'run.started') {
      if ('step' in ev) this.onStepEvent(d, env, ev, pipeline);
      else d.run.addEvent(ev.type, { 'plumbline.seq': env.seq }, env.at);
    }
    if (env.state.status !== 'running') this.close(env.runId, d, env.at, env);
    else if (d.step !== null && env.state.step !== d.step.name) this.closeStep(d, env.at);
  }

  private stepOf(d: Drive, env: StoredEnvelope, name: string, pipeline: string): StepSpan {
    if (d.step?.name === name) return d.step;
    if (d.step !== null) this.closeStep(d, env.at);
    const span = d.tracer.startSpan(
      `step ${name}`,
      { startTime: env.at, attributes: { ...common(env, pipeline), 'plumbline.step': name } },
      d.ctx,
    );
    d.step = { name, span, ctx: trace.setSpan(d.ctx, span), costUsd: 0 };
    return d.step;
  }

  private onStepEvent(
    d: Drive,
    env: StoredEnvelope,
    ev: Extract<MachineEvent, { step: string }>,
    pipeline: string,
  ): void {
    const s = this.stepOf(d, env, ev.step, pipeline);
    const base = { ...common(env, pipeline), 'plumbline.step': ev.step };
    switch (ev.type) {
      case 'ATTEMPT': {
        // Refused by the limits or the breaker (the run parks or waits): no call, no span.
        if (!isCalling(env, ev.step)) {
          s.span.addEvent('ATTEMPT refused', { ...base, 'plumbline.attempt': ev.attempt }, env.at);
          return;
        }
        const span = d.tracer.startSpan(
          `chat ${ev.model}`,
          {
            kind: SpanKind.CLIENT,
            startTime: env.at,
            attributes: {
              ...base,
              'gen_ai.operation.name': 'chat',
              'gen_ai.provider.name': 'anthropic',
              'gen_ai.request.model': ev.model,
              'gen_ai.request.max_tokens': ev.estimate.maxTokens,
              'gen_ai.output.type': 'json',
              'plumbline.attempt': ev.attempt,
              'plumbline.breaker': ev.breaker,
              'plumbline.estimate_usd': ev.estimate.usd,
            },
          },
          s.ctx,
        );
        d.attempts.set(ev.attempt, span);
        return;
      }
      case 'BATCH_SUBMITTED':
        // The attempt's span lasts until the item's result is recorded (the whole batch wait).
        d.attempts.get(ev.attempt)?.setAttributes({
          'plumbline.batch_id': ev.batchId,
          'plumbline.batch_custom_id': ev.customId,
        });
        return;
      case 'MODEL_RESPONSE':
      case 'MODEL_ERROR': {
        // An outcome without its ATTEMPT here (recorded by a later drive: a lost call) spans its duration.
        const span =
          d.attempts.get(ev.attempt) ??
          d.tracer.startSpan(
            `chat ${ev.model}`,
            {
              kind: SpanKind.CLIENT,
              startTime: env.at - ev.durationMs,
              attributes: {
                ...base,
                'gen_ai.operation.name': 'chat',
                'gen_ai.provider.name': 'anthropic',
                'gen_ai.request.model': ev.model,
                'plumbline.attempt': ev.attempt,
              },
            },
            s.ctx,
          );
        d.attempts.delete(ev.attempt);
        s.costUsd += ev.costUsd;
        span.setAttributes({
          'plumbline.cost_usd': ev.costUsd,
          'plumbline.outcome_seq': env.seq,
          ...(ev.requestId !== null ? { 'gen_ai.response.id': ev.requestId } : {}),
          ...(ev.usage !== null ? usageAttributes(ev.usage) : {}),
        });
        if (ev.type === 'MODEL_RESPONSE') {
          span.setAttributes({
            'gen_ai.response.model': ev.model,
            'gen_ai.response.finish_reasons': ev.stopReason !== null ? [ev.stopReason] : [],
            'plumbline.verdict': ev.verdict,
            ...(ev.issues.length > 0 ? { 'plumbline.issues': ev.issues.slice(0, 10) } : {}),
          });
        } else {
          span.setAttributes({
            'error.type': ev.kind,
            'plumbline.error_kind': ev.kind,
            'plumbline.retryable': ev.retryable,
            'plumbline.delay_ms': ev.delayMs,
            ...(ev.status !== null ? { 'http.response.status_code': ev.status } : {}),
            ...(ev.unconfirmed === true ? { 'plumbline.unconfirmed': true } : {}),
          });
          span.setStatus({ code: SpanStatusCode.ERROR, message: `${ev.kind}: ${ev.message}` });
        }
        span.end(env.at);
        return;
      }
      case 'EFFECT_STARTED':
        d.effect?.end(env.at);
        d.effect = d.tracer.startSpan(
          `effect ${ev.step}`,
          {
            startTime: env.at,
            attributes: {
              ...base,
              'plumbline.effect.key': ev.key,
              'plumbline.attempt': ev.attempt,
            },
          },
          s.ctx,
        );
        return;
      case 'EFFECT_DONE':
      case 'EFFECT_FAILED': {
        const span = d.effect;
        d.effect = null;
        if (span === null) return;
        span.setAttribute('plumbline.outcome_seq', env.seq);
        if (ev.type === 'EFFECT_DONE') span.setAttribute('plumbline.effect.replayed', ev.replayed);
        else {
          span.setAttribute('plumbline.retryable', ev.retryable);
          span.setStatus({ code: SpanStatusCode.ERROR, message: ev.message });
        }
        span.end(env.at);
        return;
      }
      case 'STEP_FAILED':
        s.span.setStatus({ code: SpanStatusCode.ERROR, message: ev.message });
        return;
      case 'SKIP':
        s.span.setAttribute('plumbline.skipped', ev.reason);
        return;
      default:
        s.span.addEvent(ev.type, { 'plumbline.seq': env.seq }, env.at);
    }
  }

  private closeStep(d: Drive, at: number): void {
    const s = d.step;
    if (s === null) return;
    d.step = null;
    for (const a of d.attempts.values()) {
      a.setStatus({
        code: SpanStatusCode.ERROR,
        message: 'interrupted: no outcome recorded by this drive',
      });
      a.end(at);
    }
    d.attempts.clear();
    d.effect?.end(at);
    d.effect = null;
    s.span.setAttribute('plumbline.cost_usd', s.costUsd);
    s.span.end(at);
  }

  /** Ends the drive; `last` is the envelope that made the run terminal or parked, if any. */
  private close(runId: string, d: Drive, at: number, last: StoredEnvelope | null): void {
    this.drives.delete(runId);
    if (d.run === null) return;
    const status = last?.state.status;
    if (d.step !== null && status === 'failed')
      d.step.span.setStatus({ code: SpanStatusCode.ERROR });
    this.closeStep(d, at);
    if (last !== null) {
      d.run.setAttributes({
        'plumbline.status': last.state.status,
        'plumbline.cost_usd': last.state.costUsd,
        'plumbline.last_seq': last.seq,
      });
      if (status === 'failed' || status === 'killed')
        d.run.setStatus({ code: SpanStatusCode.ERROR, message: `run ${status}` });
    }
    d.run.end(at);
    this.previous.delete(runId);
    this.previous.set(runId, d.run.spanContext());
    if (this.previous.size > MAX_REMEMBERED) {
      const [oldest] = this.previous.keys();
      if (oldest !== undefined) this.previous.delete(oldest);
    }
  }
}
