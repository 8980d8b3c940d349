/**
 * Prometheus metrics for a worker (prom-client): runs by status, steps, model attempts by
 * classification, validation failures, cost by pipeline and model, breaker state, append
 * latency and runs in flight. Fed from the runtime's event stream.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StoredEnvelope } from '../machines/events.js';

/** The worker's metrics. */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly pipelineOf = new Map<string, string>();
  readonly runs = new Counter({
    name: 'plumbline_runs_total',
    help: 'Runs that reached a status, by pipeline and status',
    labelNames: ['pipeline', 'status'],
    registers: [this.registry],
  });
  readonly steps = new Counter({
    name: 'plumbline_steps_total',
    help: 'Steps finished, by pipeline, step and outcome',
    labelNames: ['pipeline', 'step', 'outcome'],
    registers: [this.registry],
  });
  readonly attempts = new Counter({
    name: 'plumbline_model_attempts_total',
    help: 'Model attempts by pipeline, model and classification',
    labelNames: ['pipeline', 'model', 'classification'],
    registers: [this.registry],
  });
  readonly validation = new Counter({
    name: 'plumbline_validation_failures_total',
    help: 'Model answers that failed their schema',
    labelNames: ['pipeline', 'step', 'verdict'],
    registers: [this.registry],
  });
  readonly cost = new Counter({
    name: 'plumbline_cost_usd_total',
    help: 'Model spend in USD by pipeline and model',
    labelNames: ['pipeline', 'model'],
    registers: [this.registry],
  });
  readonly breaker = new Gauge({
    name: 'plumbline_breaker_open',
    help: '1 while the breaker of a model is open or half-open',
    labelNames: ['model'],
    registers: [this.registry],
  });
  readonly appendSeconds = new Histogram({
    name: 'plumbline_append_seconds',
    help: 'Latency of event-log appends',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly effectsAbandoned = new Counter({
    name: 'plumbline_effects_abandoned_total',
    help: 'Effects that ignored their aborted signal (timeout, kill, stop) past the grace and were left running unobserved: each held a slot that was freed without the effect stopping',
    labelNames: ['pipeline', 'step', 'reason'],
    registers: [this.registry],
  });
  readonly storeDown = new Gauge({
    name: 'plumbline_store_unavailable',
    help: '1 while the store refuses writes (disk full, read-only, file gone): the worker takes no work',
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'plumbline_runs_in_flight',
    help: 'Runs this worker is driving now',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'plumbline_process_' });
  }

  /** Updates the metrics from one appended event. */
  observe(e: StoredEnvelope): void {
    const ev = e.event;
    if (ev.type === 'run.started') this.pipelineOf.set(e.runId, ev.pipeline);
    const pipeline = this.pipelineOf.get(e.runId) ?? 'unknown';
    switch (ev.type) {
      case 'MODEL_RESPONSE':
        this.attempts.inc({
          pipeline,
          model: ev.model,
          classification: ev.verdict === 'valid' ? 'ok' : ev.verdict,
        });
        this.cost.inc({ pipeline, model: ev.model }, ev.costUsd);
        if (ev.verdict !== 'valid')
          this.validation.inc({ pipeline, step: ev.step, verdict: ev.verdict });
        else this.steps.inc({ pipeline, step: ev.step, outcome: 'done' });
        break;
      case 'MODEL_ERROR':
        this.attempts.inc({
          pipeline,
          model: ev.model,
          classification: `${ev.retryable ? 'retryable' : 'fatal'}:${ev.kind}`,
        });
        if (ev.costUsd > 0) this.cost.inc({ pipeline, model: ev.model }, ev.costUsd);
        break;
      case 'EFFECT_DONE':
      case 'STEP_DONE':
        this.steps.inc({ pipeline, step: ev.step, outcome: 'done' });
        break;
      case 'SKIP':
        this.steps.inc({ pipeline, step: ev.step, outcome: 'skipped' });
        break;
      default:
        break;
    }
    if (ev.type === 'ATTEMPT')
      this.breaker.set({ model: ev.model }, ev.breaker === 'closed' ? 0 : 1);
    if (e.state.status !== 'running') {
      this.runs.inc({ pipeline, status: e.state.status });
      if (e.state.status !== 'parked') this.pipelineOf.delete(e.runId);
    }
  }

  /** Serves `/metrics` on 127.0.0.1:`port`. */
  serve(port: number, host = '127.0.0.1'): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('try /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }
}
