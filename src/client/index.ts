/**
 * The client library's public names (re-exported by the package entry).
 */
export { connect } from './client.js';
export type {
  ConnectOptions,
  PipelineRef,
  PlumblineClient,
  StartLimits,
  StartOptions,
  Started,
} from './client.js';
export type { RunSubscription, SubscribeFilter } from './feed.js';
export type { ChildCounts, ChildJoin, ChildRunOutcome, RunNode } from './children.js';
