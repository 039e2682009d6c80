// What one synchronous lmdb commit costs the committing (main) thread under each flush mode lmdb-js
// offers, with the Engine's own transaction flags: the choice of the 'durable' mode in
// src/kvstore/engine.ts rests on these figures.
//
//   node dist/bench/kvstore/engine-modes.js [--commits=2000] [--puts=20]
//
// Each commit overwrites `puts` keys of 100 bytes out of 10,000 (about what one Ready applies under
// load). Modes: overlappingSync (lmdb-js's Linux default: fdatasync plus an O_DSYNC meta write after
// the commit, on the committing thread), classic (fdatasync before the meta write, meta written
// through O_DSYNC), noMetaSync (one fdatasync, meta not flushed: what 'durable' uses), noSync (no
// flush; can corrupt on a machine crash). Timings are for comparison on one machine.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';

const TXN_ABORTABLE = 0x1;
const TXN_SYNCHRONOUS_COMMIT = 0x2;
const TXN_NO_SYNC_FLUSH = 0x10000;

interface Mode {
  readonly name: string;
  readonly options: { readonly overlappingSync: boolean; readonly noSync?: boolean; readonly noMetaSync?: boolean };
  readonly flags: number;
}

const MODES: readonly Mode[] = [
  { name: 'overlappingSync (old durable)', options: { overlappingSync: true }, flags: TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT | TXN_NO_SYNC_FLUSH },
  { name: 'classic (meta via O_DSYNC)', options: { overlappingSync: false }, flags: TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT },
  { name: 'noMetaSync (durable)', options: { overlappingSync: false, noMetaSync: true }, flags: TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT },
  { name: 'noSync (unsafe)', options: { overlappingSync: false, noSync: true }, flags: TXN_ABORTABLE | TXN_SYNCHRONOUS_COMMIT },
];

function option(argv: readonly string[], name: string, fallback: number): number {
  const raw = argv.find((arg) => arg.startsWith(`--${name}=`))?.split('=')[1];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, not ${raw}`);
  return value;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function measure(mode: Mode, commits: number, puts: number): Promise<string> {
  const directory = mkdtempSync(join(tmpdir(), 'engine-modes-'));
  try {
    const root = open<Buffer, Buffer>(directory, { noSubdir: false, keyEncoding: 'binary', encoding: 'binary', compression: false, cache: false, ...mode.options });
    const db = root.openDB<Buffer, Buffer>('live', { keyEncoding: 'binary', encoding: 'binary', compression: false, cache: false });
    const value = Buffer.alloc(100, 0x76);
    const times: number[] = [];
    for (let commit = 0; commit < commits; commit++) {
      const started = performance.now();
      root.transactionSync(() => {
        for (let put = 0; put < puts; put++) void db.put(Buffer.from(`key-${(commit * puts + put) % 10_000}`), value);
      }, mode.flags);
      times.push(performance.now() - started);
    }
    await root.close();
    times.sort((a, b) => a - b);
    const mean = times.reduce((sum, t) => sum + t, 0) / times.length;
    return `${mode.name.padEnd(32)} mean ${mean.toFixed(3)} ms  p50 ${percentile(times, 0.5).toFixed(3)}  p99 ${percentile(times, 0.99).toFixed(3)}  max ${times[times.length - 1].toFixed(3)}`;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const commits = option(process.argv, 'commits', 2000);
const puts = option(process.argv, 'puts', 20);
console.log(`${commits} synchronous commits of ${puts} puts each; main-thread time per commit`);
for (const mode of MODES) console.log(await measure(mode, commits, puts));
