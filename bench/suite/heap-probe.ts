// Preloaded into a raft-node process by the suite (NODE_OPTIONS=--import=<this file>), so the JS heap
// can be read without a debug endpoint and without touching src/: it samples the V8 heap ten times a
// second (a timer that never keeps the process alive) and, on SIGUSR2, writes what it saw to
// $BENCH_HEAP_DIR/heap-<pid>.json (temp file + rename, so a reader never sees half a file).
// The peak is a sampled peak: a spike shorter than 100 ms between samples can be missed.

import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';

const directory = process.env.BENCH_HEAP_DIR;
const SAMPLE_INTERVAL_MS = 100;

if (directory !== undefined && directory !== '') {
  let heapPeakBytes = 0;
  const sample = (): number => {
    const used = getHeapStatistics().used_heap_size;
    if (used > heapPeakBytes) heapPeakBytes = used;
    return used;
  };
  setInterval(sample, SAMPLE_INTERVAL_MS).unref();
  process.on('SIGUSR2', () => {
    const heapUsedBytes = sample();
    const memory = process.memoryUsage();
    const report = {
      pid: process.pid, heapUsedBytes, heapPeakBytes, heapTotalBytes: memory.heapTotal, externalBytes: memory.external,
      arrayBuffersBytes: memory.arrayBuffers, rssBytes: memory.rss, uptimeMs: Math.round(process.uptime() * 1000),
    };
    const path = join(directory, `heap-${process.pid}.json`);
    try {
      writeFileSync(`${path}.tmp`, JSON.stringify(report));
      renameSync(`${path}.tmp`, path);
    } catch {
      // The suite reports the heap as unknown; the node must not be disturbed.
    }
  });
}
