/** A small structured request for tests that call the real SDK against the fake Claude. */
import type { ModelRequest } from '../../src/model/types.js';

export const hiRequest: ModelRequest = {
  model: 'claude-sonnet-4-6',
  messages: [{ role: 'user', content: 'Say hi.' }],
  maxTokens: 64,
  schema: {
    type: 'object',
    properties: { a: { type: 'string' } },
    required: ['a'],
    additionalProperties: false,
  },
  schemaName: 'hi',
  mode: 'native',
};
