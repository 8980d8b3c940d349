#!/usr/bin/env node
// The `plumbline` command, run from the built `dist/bundle/` (no TypeScript loader for plumbline
// itself). A pipeline module written in TypeScript is loaded through tsx, registered on demand
// by loadPipeline.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const entry = new URL('../dist/bundle/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write(
    'plumbline: dist/ is missing: run `npm run build` in the plumbline folder (npm install runs it)\n',
  );
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
