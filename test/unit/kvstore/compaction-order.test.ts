// Physical compaction walks a window of history, then removes what the window made removable in
// revision order (compaction.ts). These tests check the order and the window bookkeeping on the
// compactor alone, and on a state machine that every intermediate state reads the same, exports a
// snapshot another node accepts, and survives a restart in the middle of a window.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HistoryCompactor, type CompactionDbs } from '../../../src/kvstore/compaction.js';
import { CHECKPOINT_EVERY_VERSIONS, encodeGrave, encodeHistoryPut, encodeHistoryTombstone, readU64, u64Key } from '../../../src/kvstore/encoding.js';
import { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import { freshMachine, LogBuilder, SeededRandom, tempDir } from './helpers.js';
import { ReferenceModel } from './reference-model.js';

interface Change {
  readonly revision: number;
  readonly key: string;
  readonly tombstone: boolean;
}

/** A random history over a few keys: puts, deletes, re-creates (linked to their tombstone). */
function randomHistory(random: SeededRandom, count: number): { changes: Change[]; records: Map<number, Buffer>; graves: Map<string, number> } {
  const changes: Change[] = [];
  const records = new Map<number, Buffer>();
  const latest = new Map<string, { revision: number; tombstone: boolean; version: number }>();
  for (let revision = 2; revision < count + 2; revision++) {
    const key = `k${random.int(6)}`;
    const before = latest.get(key);
    const tombstone = before !== undefined && !before.tombstone && random.chance(0.25);
    const keyBytes = Buffer.from(key);
    const previous = before?.revision ?? 0;
    const version = before === undefined || before.tombstone ? 1 : before.version + 1;
    records.set(revision, tombstone ? encodeHistoryTombstone(keyBytes, previous) : encodeHistoryPut(keyBytes, `v${revision}`, revision, version, previous));
    latest.set(key, { revision, tombstone, version });
    changes.push({ revision, key, tombstone });
  }
  const graves = new Map<string, number>();
  for (const [key, change] of latest) if (change.tombstone) graves.set(key, change.revision);
  return { changes, records, graves };
}

/** etcd's rule for `compact target`: what goes is every change at or below it except each key's latest there, and that one too when it is a tombstone. */
function expectedRemoved(changes: readonly Change[], target: number): Set<number> {
  const latestAtOrBelow = new Map<string, Change>();
  const removed = new Set<number>();
  for (const change of changes) {
    if (change.revision > target) continue;
    const before = latestAtOrBelow.get(change.key);
    if (before !== undefined) removed.add(before.revision);
    latestAtOrBelow.set(change.key, change);
  }
  for (const change of latestAtOrBelow.values()) if (change.tombstone) removed.add(change.revision);
  return removed;
}

/** In-memory stand-ins for the three lmdb databases compaction touches, recording each removal. */
function fakeDbs(records: Map<number, Buffer>, graves: Map<string, number>): { dbs: CompactionDbs; removals: number[] } {
  const removals: number[] = [];
  const history = {
    *getRange(range: { start: Buffer; end: Buffer; limit: number }) {
      const start = readU64(range.start, 0);
      const end = readU64(range.end, 0);
      const revisions = [...records.keys()].filter((revision) => revision >= start && revision < end).sort((a, b) => a - b).slice(0, range.limit);
      for (const revision of revisions) yield { key: u64Key(revision), value: Buffer.from(records.get(revision) as Buffer) };
    },
    removeSync(key: Buffer): boolean {
      const revision = readU64(key, 0);
      removals.push(revision);
      return records.delete(revision);
    },
  };
  const graveDb = {
    getBinaryFast: (key: Buffer) => {
      const revision = graves.get(key.toString());
      return revision === undefined ? undefined : encodeGrave(revision);
    },
    removeSync: (key: Buffer) => graves.delete(key.toString()),
  };
  const checkpoints = { removeSync: () => false };
  return { dbs: { history, graves: graveDb, checkpoints } as unknown as CompactionDbs, removals };
}

test('the compactor removes a window\'s history in revision order, moves its cursor only at window ends, and removes exactly what etcd\'s rule says', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = new SeededRandom(seed);
    const { changes, records, graves } = randomHistory(random, 400);
    const target = 250 + random.int(150);
    const window = 1 + random.int(60);
    const { dbs, removals } = fakeDbs(records, graves);
    let compactor = new HistoryCompactor(window);
    let cursor = 1;
    let windowStart = 0;
    let steps = 0;
    while (cursor <= target) {
      assert.ok(++steps < 10_000, `seed ${seed}: compaction does not finish`);
      // Sometimes the plan is lost (a rolled-back transaction, a restart): the next step rebuilds it.
      if (random.chance(0.05)) compactor = new HistoryCompactor(window);
      const budget = 1 + random.int(25);
      const progress = compactor.step(dbs, cursor, target, budget);
      assert.ok(progress.recordsVisited <= budget, `seed ${seed}: ${progress.recordsVisited} units of work on a budget of ${budget}`);
      if (progress.cursor !== cursor) {
        assert.equal(progress.cursor, Math.min(cursor + window, target + 1), `seed ${seed}: the cursor passes exactly one window`);
        // Everything this window removed, in the order it was removed: ascending (a lost plan
        // starts over from the window's first removal, so the order restarts there too).
        const windowRemovals = removals.slice(windowStart);
        for (let i = 1; i < windowRemovals.length; i++) {
          if (windowRemovals[i] < windowRemovals[i - 1]) assert.ok(windowRemovals.indexOf(windowRemovals[i]) < i, `seed ${seed}: removal of ${windowRemovals[i]} after ${windowRemovals[i - 1]} in one window`);
        }
        windowStart = removals.length;
        cursor = progress.cursor;
      }
    }
    const left = new Set(records.keys());
    const removed = expectedRemoved(changes, target);
    for (const change of changes) assert.equal(left.has(change.revision), !removed.has(change.revision), `seed ${seed}: revision ${change.revision} (target ${target}, window ${window})`);
    for (const [key, revision] of graves) assert.ok(revision > target, `seed ${seed}: the grave of ${key} names compacted tombstone ${revision}`);
  }
});

test('a state machine compacting window by window reads the same, exports importable snapshots at every step, and picks up a window after a restart', async () => {
  const random = new SeededRandom(77);
  const keys = Array.from({ length: 15 }, (_, i) => `key-${i}`);
  const log = new LogBuilder();
  const entries = [];
  for (let i = 0; i < 2_500; i++) {
    const key = random.pick(keys);
    entries.push(random.chance(0.25) ? log.del(key) : log.put(key, `v${i}`));
  }
  const model = new ReferenceModel();
  for (const entry of entries) model.apply(entry);
  const compact = log.compact(model.revision - 40);
  model.apply(compact);

  const dir = tempDir();
  const options = { unsafeNoSync: true, compactionWindowRevisions: 53 };
  let sm = await KvStateMachine.open(join(dir.path, 'state'), options);
  const other = await freshMachine({ unsafeNoSync: true });
  const assertReadsAsModel = (machine: KvStateMachine, label: string): void => {
    for (const key of keys) {
      for (let revision = model.compactedRevision; revision <= model.revision; revision++) {
        assert.deepEqual(machine.get(key, revision).kv, model.get(key, revision), `${label}: ${key} at ${revision}`);
      }
    }
  };
  try {
    for (let start = 0; start < entries.length; start += 100) sm.apply(entries.slice(start, start + 100));
    sm.apply([compact]);
    let steps = 0;
    let restarted = false;
    for (;;) {
      const { compactionPending } = sm.runMaintenance(1 + random.int(60), 0);
      if (!compactionPending) break;
      steps += 1;
      if (!restarted && steps === 40) {
        // Mid-window (40 small steps cannot finish 2,400 revisions): the plan is lost with the process.
        await sm.close();
        sm = await KvStateMachine.open(join(dir.path, 'state'), options);
        restarted = true;
      }
      if (steps % 9 === 0) {
        assertReadsAsModel(sm, `step ${steps}`);
        // The importer checks every record's link against the key's previous change in the stream.
        await other.sm.importSnapshot(sm.exportSnapshot().chunks);
        assertReadsAsModel(other.sm, `imported at step ${steps}`);
      }
    }
    assert.ok(restarted && steps > 100, `compaction took ${steps} steps`);
    assertReadsAsModel(sm, 'finished');
    const stats = sm.stats();
    assert.equal(stats.historyRecords, model.retainedChanges(), 'history holds exactly what compaction must keep');
    assert.equal(stats.graves, model.gravesRetained(), 'a grave per deleted key whose tombstone compaction must keep');
    assert.equal(stats.checkpoints, model.retainedCheckpoints(CHECKPOINT_EVERY_VERSIONS), 'a checkpoint per retained tombstone and 64th version');
  } finally {
    await sm.close();
    await other.done();
    dir.remove();
  }
});
