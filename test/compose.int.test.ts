/**
 * docker-compose.yml must be accepted by `docker-compose config` (Docker itself does not run on
 * these machines; the compose client validates the file locally).
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const hasCompose = ((): boolean => {
  try {
    execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('docker-compose.yml', () => {
  it.skipIf(!hasCompose)('is valid and defines nats, worker and viz with healthchecks', () => {
    const out = execFileSync('docker-compose', ['config'], {
      cwd: ROOT,
      env: { ...process.env, ANTHROPIC_API_KEY: '' },
    }).toString();
    expect(out).toMatch(/nats:/);
    expect(out).toMatch(/worker:/);
    expect(out).toMatch(/viz:/);
    expect(out.match(/healthcheck:/g)?.length).toBeGreaterThanOrEqual(2);
    expect(out).toMatch(/nats-data/);
  });
});
