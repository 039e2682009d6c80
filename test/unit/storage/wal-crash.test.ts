// A long randomized run against the fault-injecting file system: random Raft-like batches (appends,
// conflicting suffixes replaced, votes, snapshots from a leader, compactions), power lost at random
// points (unsynced bytes lost, sometimes a torn prefix kept, sometimes during recovery itself), and
// after every restart Raft's persistence rules are checked against a model:
//   - everything whose save() resolved is recovered (hard state and entries, respecting truncations);
//   - a call in flight at the crash is either absent or present up to some record of its batch;
//   - the recovered entries are contiguous, and nothing that was never saved appears;
//   - only compaction may drop entries, and only at or below a compaction point.
// Seeded (no Math.random): a failure names its seed; WAL_CRASH_SEEDS=7,8 replays chosen seeds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../../src/common/logger.js';
import type { Entry, HardState, SnapshotMeta } from '../../../src/raft/types.js';
import type { RecoveredLog } from '../../../src/storage/wal.js';
import { RaftLogStore } from '../../../src/storage/wal.js';
import { FaultyFileSystem, withoutRealSyncs } from './faulty-fs.js';
import { MEMBERSHIP, plainEntry, TestRng, withTempDir } from './support.js';

const LIVES_PER_SEED = 120;
const OPERATIONS_PER_LIFE_MAX = 40;
const SEGMENT_SIZE_BYTES = 1500;

interface ModelState {
  readonly hardState: HardState;
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly Entry[];
  readonly nextIndex: number;
}

/** One record's worth of change: a batch cut anywhere keeps a prefix of these. */
type Step = (state: ModelState) => ModelState;

type Operation =
  | { readonly kind: 'save'; readonly hardState: HardState | null; readonly entries: readonly Entry[]; readonly snapshot: SnapshotMeta | null }
  | { readonly kind: 'compact'; readonly meta: SnapshotMeta; readonly compactTo: number };

const EMPTY: ModelState = { hardState: { term: 0, votedFor: 0, commitIndex: 0 }, snapshot: null, entries: [], nextIndex: 1 };

function stepsOf(operation: Operation, before: ModelState): Step[] {
  if (operation.kind === 'compact') return [(state) => ({ ...state, snapshot: operation.meta })];
  const steps: Step[] = [];
  let nextIndex = before.nextIndex;
  const snapshot = operation.snapshot;
  if (snapshot !== null) {
    steps.push((state) => ({ ...state, snapshot, entries: [], nextIndex: snapshot.index + 1 }));
    nextIndex = snapshot.index + 1;
  }
  const first = operation.entries[0];
  if (first !== undefined && first.index < nextIndex) {
    steps.push((state) => ({ ...state, entries: state.entries.filter((entry) => entry.index < first.index), nextIndex: first.index }));
  }
  for (const entry of operation.entries) steps.push((state) => ({ ...state, entries: [...state.entries, entry], nextIndex: entry.index + 1 }));
  const hardState = operation.hardState;
  if (hardState !== null) steps.push((state) => ({ ...state, hardState }));
  return steps;
}

function termAt(state: ModelState, index: number): number | undefined {
  const first = state.entries[0];
  if (first !== undefined && index >= first.index && index < state.nextIndex) return state.entries[index - first.index].term;
  if (state.snapshot !== null && index === state.snapshot.index) return state.snapshot.term;
  return undefined;
}

function makeEntry(rng: TestRng, index: number, term: number): Entry {
  const roll = rng.next();
  if (roll < 0.05) return { kind: 'noop', index, term };
  if (roll < 0.08) return { kind: 'config', index, term, membership: MEMBERSHIP };
  return { kind: 'command', index, term, data: rng.bytes(rng.int(0, 120)) };
}

function makeEntries(rng: TestRng, from: number, count: number, term: number): Entry[] {
  return Array.from({ length: count }, (_, k) => makeEntry(rng, from + k, term));
}

/** A random operation that a correct Raft runtime could issue in this state. */
function nextOperation(rng: TestRng, state: ModelState): Operation {
  const last = state.nextIndex - 1;
  const snapshotIndex = state.snapshot?.index ?? 0;
  const hard = state.hardState;
  const term = Math.max(1, hard.term);
  const roll = rng.next();
  if (roll < 0.08 && last >= Math.max(1, snapshotIndex)) {
    const index = rng.int(Math.max(1, snapshotIndex), last + 1);
    const at = termAt(state, index);
    if (at !== undefined) return { kind: 'compact', meta: { index, term: at, membership: MEMBERSHIP }, compactTo: Math.max(0, index - rng.int(0, 12)) };
  }
  if (roll < 0.12) {
    // A snapshot from a leader of this term or the next; it replaces the log.
    const newTerm = term + (rng.chance(0.5) ? 1 : 0);
    const index = Math.max(snapshotIndex, 1, last + rng.int(-3, 15));
    const snapshot: SnapshotMeta = { index, term: newTerm, membership: MEMBERSHIP };
    return {
      kind: 'save', snapshot, entries: makeEntries(rng, index + 1, rng.int(0, 4), newTerm),
      hardState: { term: newTerm, votedFor: newTerm === hard.term ? hard.votedFor : 0, commitIndex: Math.max(hard.commitIndex, index) },
    };
  }
  const lowestReplaceable = Math.max(snapshotIndex, hard.commitIndex) + 1;
  if (roll < 0.25 && lowestReplaceable <= last) {
    // A new leader's entries conflict with an uncommitted suffix.
    const from = rng.int(lowestReplaceable, last + 1);
    const newTerm = term + 1;
    return { kind: 'save', snapshot: null, entries: makeEntries(rng, from, rng.int(1, 7), newTerm), hardState: { term: newTerm, votedFor: rng.int(0, 4), commitIndex: hard.commitIndex } };
  }
  if (roll < 0.32) {
    // A vote: in a new term, or the first one cast in this term.
    const next: HardState = hard.votedFor === 0 && rng.chance(0.5)
      ? { ...hard, votedFor: rng.int(1, 4) }
      : { term: hard.term + 1, votedFor: rng.int(0, 4), commitIndex: hard.commitIndex };
    return { kind: 'save', snapshot: null, entries: [], hardState: next };
  }
  const count = rng.int(1, 9);
  const newLast = last + count;
  return {
    kind: 'save', snapshot: null, entries: makeEntries(rng, last + 1, count, term),
    hardState: rng.chance(0.5) ? { term, votedFor: hard.term === term ? hard.votedFor : 0, commitIndex: rng.int(hard.commitIndex, newLast + 1) } : null,
  };
}

/** Why `recovered` is not `candidate` (allowing entries at or below `compactFloor` to be gone), or null. */
function mismatch(recovered: RecoveredLog, lastIndex: number, candidate: ModelState, compactFloor: number): string | null {
  if (JSON.stringify(recovered.hardState) !== JSON.stringify(candidate.hardState)) return `hard state ${JSON.stringify(recovered.hardState)} != ${JSON.stringify(candidate.hardState)}`;
  if (JSON.stringify(recovered.snapshot) !== JSON.stringify(candidate.snapshot)) return `snapshot ${JSON.stringify(recovered.snapshot)} != ${JSON.stringify(candidate.snapshot)}`;
  if (lastIndex !== candidate.nextIndex - 1) return `last index ${lastIndex} != ${candidate.nextIndex - 1}`;
  const got = recovered.entries;
  const want = candidate.entries;
  for (let k = 1; k < got.length; k++) if (got[k].index !== got[k - 1].index + 1) return `recovered entries are not contiguous at ${got[k].index}`;
  if (want.length === 0) return got.length === 0 ? null : `entries appeared that were never saved (${got[0].index}..)`;
  const wantLast = want[want.length - 1].index;
  if (got.length === 0) return wantLast <= compactFloor ? null : `entries up to ${wantLast} were lost`;
  if (got[got.length - 1].index !== wantLast) return `recovered entries end at ${got[got.length - 1].index}, expected ${wantLast}`;
  const start = got[0].index;
  if (start < want[0].index) return `entries before ${want[0].index} appeared`;
  if (start > Math.max(want[0].index, compactFloor + 1)) return `entries ${want[0].index}..${start - 1} were lost (compaction floor ${compactFloor})`;
  for (let k = 0; k < got.length; k++) {
    const expected = want[start - want[0].index + k];
    if (JSON.stringify(plainEntry(got[k])) !== JSON.stringify(plainEntry(expected))) return `entry ${got[k].index} differs`;
  }
  return null;
}

interface RunSummary {
  crashes: number;
  operations: number;
  /** Restarts that cut a torn tail off the log. */
  tornRestarts: number;
  /** Restarts that found part, but not all, of the batch in flight at the crash. */
  partialBatches: number;
  /** Compactions that deleted at least one segment. */
  segmentsDeleted: number;
  /** Clean closes that left preallocated zeros after the last record. */
  zeroTails: number;
}

/** Total size of the segment files: more than the store's bytes when zeros are preallocated. */
async function segmentFileBytes(directory: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(directory)) if (name.endsWith('.log')) total += (await stat(join(directory, name))).size;
  return total;
}

async function runSeed(seed: number, preallocateBytes: number): Promise<RunSummary> {
  const rng = new TestRng(seed);
  return withTempDir(async (directory) => {
    const fileSystem = new FaultyFileSystem(withoutRealSyncs());
    let model = EMPTY;
    let pending: Step[] = [];
    let compactFloor = 0;
    const summary: RunSummary = { crashes: 0, operations: 0, tornRestarts: 0, partialBatches: 0, segmentsDeleted: 0, zeroTails: 0 };
    for (let life = 0; life < LIVES_PER_SEED; life++) {
      const where = `seed ${seed}, life ${life}`;
      if (rng.chance(0.1)) fileSystem.crashAfterMutations(rng.int(1, 4));
      let opened: Awaited<ReturnType<typeof RaftLogStore.open>>;
      try {
        opened = await RaftLogStore.open(directory, { fileSystem, logger: silentLogger, segmentSizeBytes: SEGMENT_SIZE_BYTES, preallocateBytes });
      } catch (error) {
        assert.ok(fileSystem.isDown, `${where}: open failed without a crash: ${String(error)}`);
        await fileSystem.crash(rng, { tornWrites: rng.chance(0.5) });
        continue;
      }
      const { store, recovered } = opened;
      if (recovered.tornBytesCut > 0) summary.tornRestarts++;
      const candidates = [model];
      for (const step of pending) candidates.push(step(candidates[candidates.length - 1]));
      const lastIndex = store.stats().lastIndex;
      const reasons = candidates.map((candidate) => mismatch(recovered, lastIndex, candidate, compactFloor));
      const matched = reasons.findIndex((reason) => reason === null);
      assert.ok(matched >= 0, `${where}: the recovered log matches no allowed state:\n  ${reasons.map((reason, k) => `after ${k} of ${pending.length} records in flight: ${reason}`).join('\n  ')}`);
      if (matched > 0 && matched < pending.length) summary.partialBatches++;
      model = { hardState: recovered.hardState, snapshot: recovered.snapshot, entries: recovered.entries, nextIndex: lastIndex + 1 };
      pending = [];

      if (rng.chance(0.9)) fileSystem.crashAfterMutations(rng.int(1, 90));
      const count = rng.int(1, OPERATIONS_PER_LIFE_MAX + 1);
      for (let n = 0; n < count; n++) {
        const operation = nextOperation(rng, model);
        pending = stepsOf(operation, model);
        if (operation.kind === 'compact') compactFloor = Math.max(compactFloor, operation.compactTo);
        const segmentsBefore = store.stats().segments;
        try {
          if (operation.kind === 'save') await store.save(operation);
          else await store.compact(operation.meta, operation.compactTo);
        } catch (error) {
          assert.ok(fileSystem.isDown, `${where}, operation ${n} (${operation.kind}) failed without a crash: ${String(error)}`);
          break;
        }
        summary.operations++;
        if (store.stats().segments < segmentsBefore) summary.segmentsDeleted++;
        for (const step of pending) model = step(model);
        pending = [];
        assert.equal(store.stats().lastIndex, model.nextIndex - 1, `${where}: the store's last index after operation ${n}`);
      }
      const crashed = fileSystem.isDown;
      await store.close().catch(() => {});
      if (!crashed && (await segmentFileBytes(directory)) > store.stats().bytes) summary.zeroTails++;
      if (crashed || rng.chance(0.5)) await fileSystem.crash(rng, { tornWrites: rng.chance(0.6) });
    }
    summary.crashes = fileSystem.counts.crashes;
    return summary;
  });
}

const seeds = (process.env.WAL_CRASH_SEEDS ?? '1,2,3').split(',').map((text) => Number(text.trim()));

// Each seed runs twice: records appended to the file, and records written over zeros preallocated
// ahead of them (preallocation.ts; its fills crash too).
for (const seed of seeds) for (const preallocateBytes of [0, 400]) {
  test(`crash anywhere, recover, check Raft's persistence rules (seed ${seed}, ${preallocateBytes === 0 ? 'no preallocation' : `${preallocateBytes} bytes preallocated`})`, async (t) => {
    const result = await runSeed(seed, preallocateBytes);
    t.diagnostic(JSON.stringify(result));
    // The run must exercise what it claims to: frequent crashes, torn tails, half-kept batches, compactions.
    assert.ok(result.crashes > LIVES_PER_SEED / 3, 'the run must actually crash often');
    assert.ok(result.tornRestarts > 0, 'some crashes must leave a torn tail');
    assert.ok(result.partialBatches > 0, 'some crashes must keep part of a batch');
    assert.ok(result.segmentsDeleted > 0, 'some compactions must delete segments');
    if (preallocateBytes > 0) assert.ok(result.zeroTails > 0, 'some segments must end in preallocated zeros');
  });
}
