#!/usr/bin/env node
// The `plumbline` command. tsx is registered so pipeline modules may be TypeScript.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
