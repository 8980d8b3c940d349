/**
 * plumbline: a durable runtime for LLM pipelines. Define a pipeline, run it on a store.
 */
export { definePipeline, llm, effect, step, isPipeline } from './machines/pipeline.js';
export type {
  Pipeline,
  PipelineOptions,
  Step,
  LlmStep,
  EffectStep,
  TransformStep,
  StepContext,
  EffectContext,
  Limits,
} from './machines/pipeline.js';
export { agent, tool } from './machines/agent.js';
export type {
  AgentStep,
  AgentStepOptions,
  ToolDef,
  ToolOptions,
  ToolContext,
} from './machines/agent.js';
export { route, parallel, map, call } from './machines/constructs.js';
export type {
  RouteStep,
  ParallelStep,
  MapStep,
  CallStep,
  ChildStep,
  RouteStepOptions,
  ParallelStepOptions,
  MapStepOptions,
  CallStepOptions,
  Collected,
  OnChildError,
} from './machines/constructs.js';
export { wait, sleep } from './machines/waits.js';
export type {
  WaitStep,
  SleepStep,
  WaitStepOptions,
  SleepStepOptions,
  OnTimeout,
} from './machines/waits.js';
export { sendSignal } from './runtime/signals.js';
export type { SignalSent } from './runtime/signals.js';
export { pipeline } from './machines/pipelineBuilder.js';
export type { PipelineBuilder, PipelineHeader, Stored } from './machines/pipelineBuilder.js';
export type {
  Branch,
  Branches,
  BuilderRouteOptions,
  BuilderParallelOptions,
  BuilderMapOptions,
  BuilderCallOptions,
  ChildValue,
  ParallelOutput,
  RouteOutputs,
} from './machines/builderConstructs.js';
export { compilePipeline } from './machines/compile.js';
export { describeMachine, machineHash } from './machines/graph.js';
export type { MachineGraph, GraphNode, GraphEdge } from './machines/graph.js';
export { foldLog } from './machines/replay.js';
export type {
  RunEvent,
  MachineEvent,
  StoredEnvelope,
  RunStatus,
  Usage,
} from './machines/events.js';
export {
  PlumblineError,
  UsageError,
  VersionConflictError,
  ReplayMismatchError,
  MachineHashMismatchError,
  CorruptEventError,
  isPlumblineError,
  isVersionConflict,
  isUsageError,
} from './errors.js';
export { openSqliteStore } from './store/sqlite.js';
export type {
  Store,
  EventLog,
  EffectLedger,
  ControlStore,
  RunSummary,
  ExpectedVersion,
} from './store/types.js';
export { Runtime } from './runtime/driver.js';
export type { RuntimeOptions, RunResult, LimitOverrides } from './runtime/driver.js';
export { prepare } from './runtime/prepare.js';
export type { Prepared } from './runtime/prepare.js';
export { loadPipeline, loadPipelines } from './runtime/load.js';
export { writeFileAtomic } from './runtime/files.js';
export { createLogger } from './runtime/logger.js';
export { systemClock, acceleratedClock } from './runtime/clock.js';
export type { Clock } from './runtime/clock.js';
export { createAnthropicClient } from './model/anthropic.js';
export { DEFAULT_PRICES, PRICES_AS_OF, priceFor } from './model/prices.js';
export { costUsd } from './model/cost.js';
export type { ModelClient, ModelRequest, ModelOutcome, Price, RetryPolicy } from './model/types.js';
export { batchPrice } from './model/batch.js';
export type { BatchClient, BatchItem, BatchItemResult } from './model/batchTypes.js';
export type { BatcherOptions } from './runtime/batcher.js';
export { connect } from './client/index.js';
export type {
  ChildCounts,
  ChildJoin,
  ChildRunOutcome,
  ConnectOptions,
  PipelineRef,
  PlumblineClient,
  RunNode,
  RunSubscription,
  StartLimits,
  StartOptions,
  Started,
  SubscribeFilter,
} from './client/index.js';
export { openBackend, openBusFromUrl, openStoreFromUrl, STORE_FORMS } from './backend.js';
export type { Backend, BusOptions } from './backend.js';
export type { CommandBus, Command, StartCommand, ResumeCommand } from './bus/types.js';
export type { CostReport, CostRow } from './cli/cost.js';
