// Benchmark of the key-value state machine.
//
//   node --expose-gc dist/bench/kvstore/apply.js [--keys=1000000] [--seconds=4] [--no-large]
//
// 1. apply throughput for 100-byte values in batches of 1, 10, 100 and 1,000, with history kept,
//    versus every batch followed by a compaction of all history (what keeping history costs), in
//    the default durable engine mode and in the unsafe no-flush mode (what the per-apply flush
//    costs), plus stamped (exactly-once) writes; bytes per put from the growth of lmdb's file;
// 2. a state of 1,000,000 keys built through apply(): time to open it, JS heap after opening,
//    count(), hash() and hashAsync() time, and the snapshot export rate, with the longest
//    event-loop stall during hashAsync() and the export.
// Every case stops at its time bound. Timings are for comparison on one machine, not pass/fail.

import { mkdtempSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { encodeCommand, type ClientStamp } from '../../src/kvstore/commands.js';
import { KvStateMachine } from '../../src/kvstore/state-machine.js';
import type { Entry } from '../../src/raft/types.js';

interface Options {
  readonly largeKeys: number;
  readonly caseSeconds: number;
  readonly large: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const value = (name: string): string | undefined => argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
  return {
    largeKeys: Number(value('keys') ?? 1_000_000),
    caseSeconds: Number(value('seconds') ?? 4),
    large: !argv.includes('--no-large'),
  };
}

const VALUE_100_BYTES = 'v'.repeat(100);
/** Every key is written before measuring, so each measured put overwrites one: with history kept
 * every put adds a record; with compaction after each batch the superseded one goes. */
const KEY_SPACE = 10_000;

/** Writes entries with consecutive indexes; keys cycle through a fixed key space. */
class Workload {
  index = 0;
  puts = 0;
  private seq = 0;

  constructor(private readonly stamped: boolean) {}

  batch(size: number, compactAfter: boolean): Entry[] {
    const entries: Entry[] = [];
    for (let i = 0; i < size; i++) {
      this.puts += 1;
      const key = `key-${String((this.puts * 7919) % KEY_SPACE).padStart(6, '0')}`;
      const client: ClientStamp | undefined = this.stamped ? { clientId: 'bench-client', seq: ++this.seq, ackedSeq: Math.max(0, this.seq - 8) } : undefined;
      entries.push(this.entry(encodeCommand(client === undefined
        ? { v: 1, op: 'put', key, value: VALUE_100_BYTES, proposedAtMs: this.puts }
        : { v: 1, op: 'put', key, value: VALUE_100_BYTES, client, proposedAtMs: this.puts })));
    }
    // Every put is a change, so the revision after this batch is 1 + puts.
    if (compactAfter) entries.push(this.entry(encodeCommand({ v: 1, op: 'compact', revision: 1 + this.puts, proposedAtMs: this.puts })));
    return entries;
  }

  private entry(data: Uint8Array): Entry {
    this.index += 1;
    return { kind: 'command', term: 1, index: this.index, data };
  }
}

function engineFileBytes(statePath: string): number {
  const current = readdirSync(statePath).find((name) => name.startsWith('engine-') && !name.endsWith('.tmp'));
  return current === undefined ? 0 : statSync(join(statePath, current, 'data.mdb')).size;
}

interface ThroughputRow {
  readonly mode: string;
  readonly batch: number;
  readonly history: string;
  readonly puts: number;
  readonly putsPerSecond: number;
  readonly applyMsP50: number;
  readonly applyMsMax: number;
  readonly bytesPerPut: number;
}

async function throughput(root: string, batch: number, compact: boolean, unsafeNoSync: boolean, stamped: boolean, seconds: number): Promise<ThroughputRow> {
  const path = mkdtempSync(join(root, 'tp-'));
  const sm = await KvStateMachine.open(path, { unsafeNoSync });
  try {
    const workload = new Workload(stamped);
    // Warm up outside the measurement: JIT, and every key of the key space written once.
    while (workload.puts < KEY_SPACE) sm.apply(workload.batch(Math.max(batch, 100), compact));
    const putsBefore = workload.puts;
    const bytesBefore = engineFileBytes(path);
    const durations: number[] = [];
    const deadline = performance.now() + seconds * 1000;
    const started = performance.now();
    while (performance.now() < deadline && workload.puts - putsBefore < 2_000_000) {
      const entries = workload.batch(batch, compact);
      const t0 = performance.now();
      sm.apply(entries);
      durations.push(performance.now() - t0);
    }
    const elapsedSeconds = (performance.now() - started) / 1000;
    const puts = workload.puts - putsBefore;
    durations.sort((a, b) => a - b);
    return {
      mode: `${unsafeNoSync ? 'unsafe-no-sync' : 'durable'}${stamped ? '+stamped' : ''}`,
      batch,
      history: compact ? 'compacted each batch' : 'kept',
      puts,
      putsPerSecond: Math.round(puts / elapsedSeconds),
      applyMsP50: round(durations[Math.floor(durations.length / 2)]),
      applyMsMax: round(durations[durations.length - 1]),
      bytesPerPut: Math.round((engineFileBytes(path) - bytesBefore) / puts),
    };
  } finally {
    await sm.close();
    rmSync(path, { recursive: true, force: true });
  }
}

async function largeState(root: string, keys: number, boundSeconds: number): Promise<Record<string, unknown>> {
  const free = statfsSync(root);
  const freeBytes = free.bavail * free.bsize;
  // About 350 bytes of engine per 100-byte key with its history, and room for one snapshot copy.
  const neededBytes = keys * 350 * 2;
  if (freeBytes < neededBytes * 1.5) return { skipped: `needs about ${mb(neededBytes)} MB free under ${root}, has ${mb(freeBytes)} MB` };
  const path = mkdtempSync(join(root, 'large-'));
  try {
    let sm = await KvStateMachine.open(path);
    const buildStarted = performance.now();
    const deadline = buildStarted + boundSeconds * 1000;
    let index = 0;
    let built = 0;
    while (built < keys && performance.now() < deadline) {
      const entries: Entry[] = [];
      for (let i = 0; i < 1000 && built < keys; i++, built++) {
        index += 1;
        entries.push({ kind: 'command', term: 1, index, data: encodeCommand({ v: 1, op: 'put', key: `user/${String(built).padStart(8, '0')}`, value: VALUE_100_BYTES, proposedAtMs: index }) });
      }
      sm.apply(entries);
    }
    const buildSeconds = (performance.now() - buildStarted) / 1000;
    await sm.sync();
    await sm.close();
    const fileBytes = engineFileBytes(path);

    collectGarbage();
    const heapBeforeOpen = process.memoryUsage().heapUsed;
    const openStarted = performance.now();
    sm = await KvStateMachine.open(path);
    const openMs = performance.now() - openStarted;
    collectGarbage();
    const heapAfterOpen = process.memoryUsage().heapUsed;
    try {
      const countStarted = performance.now();
      const count = sm.count();
      const countMs = performance.now() - countStarted;
      const hashStarted = performance.now();
      const syncHash = sm.hash();
      const hashMs = performance.now() - hashStarted;
      const hashAsync = await measureStall(async () => {
        const asyncHash = await sm.hashAsync();
        if (asyncHash.hash !== syncHash.hash) throw new Error('hashAsync disagrees with hash');
      });
      const exportStall = monitorEventLoopDelay({ resolution: 1 });
      exportStall.enable();
      const exportStarted = performance.now();
      const exported = sm.exportSnapshot();
      let exportBytes = 0;
      let chunks = 0;
      let heapDuringExportMax = 0;
      for await (const chunk of exported.chunks) {
        exportBytes += chunk.length;
        chunks += 1;
        if (chunks % 256 === 0) heapDuringExportMax = Math.max(heapDuringExportMax, process.memoryUsage().heapUsed);
        if (performance.now() - exportStarted > boundSeconds * 1000) break;
      }
      const exportSeconds = (performance.now() - exportStarted) / 1000;
      exportStall.disable();
      return {
        keys: built,
        buildSeconds: round(buildSeconds),
        buildPutsPerSecond: Math.round(built / buildSeconds),
        engineFileMB: mb(fileBytes),
        openMs: round(openMs),
        heapBeforeOpenMB: mb(heapBeforeOpen),
        heapAfterOpenMB: mb(heapAfterOpen),
        heapGrowthOnOpenKB: Math.round((heapAfterOpen - heapBeforeOpen) / 1024),
        gcExposed: typeof globalThis.gc === 'function',
        count,
        countMs: round(countMs),
        hashMs: round(hashMs),
        hashAsyncMs: hashAsync.ms,
        hashAsyncEventLoopStallMaxMs: hashAsync.stallMaxMs,
        exportMB: mb(exportBytes),
        exportChunks: chunks,
        exportMBPerSecond: round(exportBytes / 1024 / 1024 / exportSeconds),
        exportEventLoopStallMaxMs: round(exportStall.max / 1e6),
        heapDuringExportMaxMB: mb(heapDuringExportMax),
      };
    } finally {
      await sm.close();
    }
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}

/** Run `work` and report how long the event loop was blocked at most meanwhile. */
async function measureStall(work: () => Promise<void>): Promise<{ readonly ms: number; readonly stallMaxMs: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const started = performance.now();
  await work();
  const ms = performance.now() - started;
  histogram.disable();
  return { ms: round(ms), stallMaxMs: round(histogram.max / 1e6) };
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function mb(bytes: number): number {
  return Math.round(bytes / 1024 / 1024 * 10) / 10;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const root = mkdtempSync(join(tmpdir(), 'kvstore-bench-'));
  try {
    console.log(`kvstore apply benchmark: node ${process.version}, ${options.caseSeconds}s per case, tmp ${root}`);
    const rows: ThroughputRow[] = [];
    for (const unsafeNoSync of [false, true]) {
      for (const compact of [false, true]) {
        for (const batch of [1, 10, 100, 1000]) rows.push(await throughput(root, batch, compact, unsafeNoSync, false, options.caseSeconds));
      }
    }
    rows.push(await throughput(root, 100, false, false, true, options.caseSeconds));
    rows.push(await throughput(root, 100, false, true, true, options.caseSeconds));
    console.table(rows);
    if (options.large) {
      console.log(`building a state of ${options.largeKeys} keys through apply() ...`);
      console.log(await largeState(root, options.largeKeys, 180));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
