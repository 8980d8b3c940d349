/**
 * Test helpers for plumbline users: a fake Claude over HTTP and schema samples.
 */
export { countByBytes, startFakeClaude } from './fakeClaude.js';
export type {
  FakeBill,
  FakeClaude,
  FakeClaudeOptions,
  FakeRequest,
  FakeScript,
} from './fakeClaude.js';
export type { FakeAction, FakeUsage } from './fakeResponses.js';
export type { FakeBatchAction, FakeBatchItem, FakeBatchOptions } from './fakeBatches.js';
export type { FakeRateLimits } from './fakeRateLimits.js';
export { sampleFromSchema } from './schemaSample.js';
export type { JsonSchema } from './schemaSample.js';
