/**
 * The fake Claude as its own process, so its CPU is not charged to the system being measured.
 * Usage: node --import tsx bench/fakeServer.ts <mode>, where mode is `valid` (answer at once),
 * `delay:<ms>` (answer after ms) or `429:<seconds>` (rate limited, retry-after seconds).
 * Prints its URL on stdout, then serves until killed.
 */
import { startFakeClaude, type FakeAction } from '../src/testing/index.js';

const mode = process.argv[2] ?? 'valid';
let action: FakeAction = { kind: 'valid' };
const [kind, param] = mode.split(':');
if (kind === 'delay') action = { kind: 'delay', ms: Number(param), then: { kind: 'valid' } };
else if (kind === '429')
  action = { kind: 'status', status: 429, headers: { 'retry-after': String(param ?? '60') } };
else if (kind !== 'valid')
  throw new Error(`unknown fake mode '${mode}': use valid, delay:<ms> or 429:<seconds>`);

const fake = await startFakeClaude({ script: () => action });
// The fake records every request; forget them so a long benchmark does not grow it.
setInterval(() => fake.reset(), 1_000).unref();
process.stdout.write(`${fake.url}\n`);
process.on('SIGTERM', () => void fake.close().then(() => process.exit(0)));
setInterval(() => undefined, 60_000);
