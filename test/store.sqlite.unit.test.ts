import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../src/store/sqlite.js';
import { describeStore } from './contract/eventLog.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'plumbline-sqlite-'));
describeStore(
  'sqlite',
  async () => openSqliteStore(join(dir, 'contract.db'), { validateAppends: true }),
  async () => rmSync(dir, { recursive: true, force: true }),
);
