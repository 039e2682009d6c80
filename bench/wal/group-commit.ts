// Write-ahead log group commit, fsync on: how many 100-byte entries per second become durable, and
// how long each waits, with 1, 4, 16, 64 and 256 concurrent proposers. Each proposer waits for its own
// entry to be durable before proposing the next; one committer loop takes everything queued and makes
// it one save() (one write, one fdatasync), as the node runtime does with a Raft Ready. Beside it, the
// machine's raw fdatasync rate (small write + fdatasync in a loop on one file), measured in the same run,
// is the ceiling a batch-of-one log can reach.
//
//   node dist/bench/wal/group-commit.js [--seconds 3] [--proposers 1,4,16,64,256] [--preallocate 0,2097152] [--json]
//
// --preallocate runs every case once per value of the store's preallocateBytes (zeros kept written
// ahead of the last record, src/storage/wal/preallocation.ts), alternating, 0 meaning off.
//
// Every case stops by itself after its time; data lives in a temp dir under os.tmpdir(), removed at
// the end. Timings depend on the disk and on whatever else the machine runs: compare within one run.

import { mkdtemp, open, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.js';
import type { Entry } from '../../src/raft/types.js';
import { RaftLogStore } from '../../src/storage/wal.js';

const ENTRY_DATA_BYTES = 100;
/** The most entries one save() takes, like the core's bound on entries per Ready. */
const BATCH_ENTRIES_MAX = 4096;

interface Options {
  readonly caseMs: number;
  readonly proposerCounts: readonly number[];
  readonly preallocateBytes: readonly (number | undefined)[];
  readonly json: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  let caseMs = 3000;
  let proposerCounts = [1, 4, 16, 64, 256];
  let json = false;
  let preallocateBytes: (number | undefined)[] = [undefined];
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    if (flag === '--seconds') caseMs = Math.round(Number(argv[++k]) * 1000);
    else if (flag === '--proposers') proposerCounts = argv[++k].split(',').map(Number);
    else if (flag === '--preallocate') preallocateBytes = argv[++k].split(',').map(Number);
    else if (flag === '--json') json = true;
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!(caseMs > 0) || proposerCounts.some((count) => !Number.isInteger(count) || count < 1)) throw new Error('bad --seconds or --proposers');
  if (preallocateBytes.some((bytes) => bytes !== undefined && !(Number.isSafeInteger(bytes) && bytes >= 0))) throw new Error('bad --preallocate');
  return { caseMs, proposerCounts, preallocateBytes, json };
}

/** The value below which `fraction` of the sorted samples fall. */
function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

/** Latency samples in a growable typed array (a plain array of 10^6 numbers is needlessly heavy). */
class Samples {
  private values = new Float64Array(1 << 16);
  count = 0;

  add(value: number): void {
    if (this.count === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = value;
  }

  sorted(): Float64Array {
    return this.values.slice(0, this.count).sort();
  }
}

interface RawSyncResult {
  readonly syncsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** A loop of small write + fdatasync on one file: the disk's flush rate. */
async function measureRawFdatasync(directory: string, durationMs: number): Promise<RawSyncResult> {
  const file = await open(join(directory, 'raw-fdatasync.bin'), 'w');
  const record = Buffer.alloc(ENTRY_DATA_BYTES + 9, 0x5a);
  const samples = new Samples();
  try {
    const startedMs = performance.now();
    let position = 0;
    while (performance.now() - startedMs < durationMs) {
      const beforeMs = performance.now();
      await file.write(record, 0, record.length, position);
      await file.datasync();
      samples.add(performance.now() - beforeMs);
      position += record.length;
    }
    const elapsedMs = performance.now() - startedMs;
    const sorted = samples.sorted();
    return { syncsPerSecond: (samples.count * 1000) / elapsedMs, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
  } finally {
    await file.close();
  }
}

interface CaseResult {
  readonly proposers: number;
  /** The store's preallocateBytes; null for its default. */
  readonly preallocateBytes: number | null;
  readonly entries: number;
  readonly entriesPerSecond: number;
  readonly saves: number;
  readonly savesPerSecond: number;
  readonly entriesPerSaveMean: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

interface Proposal {
  readonly data: Uint8Array;
  readonly done: () => void;
}

/** One case: `proposerCount` closed-loop proposers against one committer, for `durationMs`. */
async function measureGroupCommit(directory: string, proposerCount: number, durationMs: number, preallocateBytes: number | undefined): Promise<CaseResult> {
  const { store } = await RaftLogStore.open(join(directory, `wal-${proposerCount}-${preallocateBytes ?? 'default'}`), { logger: silentLogger, fsync: true, preallocateBytes });
  const queue: Proposal[] = [];
  let wakeCommitter: (() => void) | null = null;
  let proposersLeft = proposerCount;
  let saves = 0;
  let lastIndex = 0;

  const propose = (data: Uint8Array): Promise<void> => new Promise((resolve) => {
    queue.push({ data, done: resolve });
    wakeCommitter?.();
  });

  const committer = async (): Promise<void> => {
    for (;;) {
      if (queue.length === 0) {
        if (proposersLeft === 0) return;
        await new Promise<void>((resolve) => { wakeCommitter = resolve; });
        wakeCommitter = null;
        continue;
      }
      const batch = queue.splice(0, BATCH_ENTRIES_MAX);
      const entries: Entry[] = batch.map((proposal, k) => ({ kind: 'command', term: 1, index: lastIndex + 1 + k, data: proposal.data }));
      // A leader's Ready carries its hard state too: the commit index moved with the previous batch.
      await store.save({ hardState: { term: 1, votedFor: 1, commitIndex: lastIndex }, entries, snapshot: null });
      lastIndex += entries.length;
      saves++;
      for (const proposal of batch) proposal.done();
    }
  };

  const samples = new Samples();
  const startedMs = performance.now();
  const deadlineMs = startedMs + durationMs;
  const proposer = async (id: number): Promise<void> => {
    const data = new Uint8Array(ENTRY_DATA_BYTES).fill(id & 0xff);
    while (performance.now() < deadlineMs) {
      const beforeMs = performance.now();
      await propose(data);
      samples.add(performance.now() - beforeMs);
    }
    proposersLeft--;
    wakeCommitter?.();
  };

  const committing = committer();
  await Promise.all(Array.from({ length: proposerCount }, (_, id) => proposer(id)));
  await committing;
  const elapsedMs = performance.now() - startedMs;
  await store.close();
  const sorted = samples.sorted();
  return {
    proposers: proposerCount,
    preallocateBytes: preallocateBytes ?? null,
    entries: samples.count,
    entriesPerSecond: (samples.count * 1000) / elapsedMs,
    saves,
    savesPerSecond: (saves * 1000) / elapsedMs,
    entriesPerSaveMean: samples.count / Math.max(1, saves),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
  };
}

const fixed = (value: number, digits: number): string => value.toFixed(digits);

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const directory = await mkdtemp(join(tmpdir(), 'wal-group-commit-'));
  try {
    console.log(`WAL group commit, fsync on, ${ENTRY_DATA_BYTES}-byte entries, ${options.caseMs / 1000} s per case`);
    console.log(`node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((load) => load.toFixed(2)).join(' ')}, data in ${directory}`);
    const raw = await measureRawFdatasync(directory, options.caseMs);
    console.log(`raw write+fdatasync loop: ${fixed(raw.syncsPerSecond, 0)} syncs/s, p50 ${fixed(raw.p50Ms, 2)} ms, p99 ${fixed(raw.p99Ms, 2)} ms`);
    console.log('');
    console.log('proposers   prealloc   entries/s   saves/s   entries/save   p50 ms   p99 ms');
    const results: CaseResult[] = [];
    for (const count of options.proposerCounts) {
      for (const preallocateBytes of options.preallocateBytes) {
        const result = await measureGroupCommit(directory, count, options.caseMs, preallocateBytes);
        results.push(result);
        console.log(`${String(count).padStart(9)}   ${String(preallocateBytes ?? 'default').padStart(8)}   ${fixed(result.entriesPerSecond, 0).padStart(9)}   ${fixed(result.savesPerSecond, 0).padStart(7)}   ${fixed(result.entriesPerSaveMean, 1).padStart(12)}   ${fixed(result.p50Ms, 2).padStart(6)}   ${fixed(result.p99Ms, 2).padStart(6)}`);
      }
    }
    console.log(`load average after: ${loadavg().map((load) => load.toFixed(2)).join(' ')}`);
    if (options.json) console.log(JSON.stringify({ rawFdatasync: raw, cases: results }));
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

await main();
