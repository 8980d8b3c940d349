import v8 from 'node:v8';
setTimeout(() => { const f = v8.writeHeapSnapshot('/tmp/prof/mid.heapsnapshot'); console.error('wrote', f); }, Number(process.env.SNAP_AT ?? 6000)).unref();
await import('./bench/plumbline.ts');
