// Reads at past revisions, compaction (etcd's rule: per key, keep every change above the compacted
// revision plus the latest one at or below it unless that is a delete), and the two revision errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactedError, FutureRevisionError, InvalidRevisionError } from '../../../src/kvstore/errors.js';
import { applyOne, freshMachine, LogBuilder } from './helpers.js';
import { COMPACTION_RECORDS_PER_APPLY_MIN, COMPACTION_RECORDS_PER_ENTRY } from '../../../src/kvstore/state-machine.js';

/** a@2=a1, b@3=b1, a@4=a2, b deleted @5, c@6=c1, a@7=a3 */
function history(log: LogBuilder) {
  return [log.put('a', 'a1'), log.put('b', 'b1'), log.put('a', 'a2'), log.del('b'), log.put('c', 'c1'), log.put('a', 'a3')];
}

const value = (sm: Awaited<ReturnType<typeof freshMachine>>['sm'], key: string, revision: number): string | null => sm.get(key, revision).kv?.value ?? null;

test('get at a past revision answers what was there then', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply(history(log));
    assert.equal(sm.revision, 7);
    const expected: Record<string, (string | null)[]> = {
      // revision:  1     2     3     4     5     6     7
      a: [null, 'a1', 'a1', 'a2', 'a2', 'a2', 'a3'],
      b: [null, null, 'b1', 'b1', null, null, null],
      c: [null, null, null, null, null, 'c1', 'c1'],
    };
    for (const [key, values] of Object.entries(expected)) {
      values.forEach((v, i) => assert.equal(value(sm, key, i + 1), v, `${key} at ${i + 1}`));
    }
    assert.deepEqual(sm.get('a', 4), { kv: { key: 'a', value: 'a2', createRevision: 2, modRevision: 4, version: 2 }, revision: 7 }, 'the answer carries the store revision');
    assert.equal(sm.get('zzz', 7).kv, null);
  } finally {
    await done();
  }
});

test('reads above the current revision fail with FUTURE_REVISION; non-revisions with INVALID_REVISION', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply(history(log));
    assert.throws(() => sm.get('a', 8), (error: unknown) => error instanceof FutureRevisionError && error.code === 'FUTURE_REVISION');
    assert.equal(value(sm, 'a', 7), 'a3');
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => sm.get('a', bad), (error: unknown) => error instanceof InvalidRevisionError && error.code === 'INVALID_REVISION', String(bad));
    }
  } finally {
    await done();
  }
});

test('after compact R: reads below R fail with COMPACTED, reads at and above R still answer', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply(history(log));
    assert.deepEqual(applyOne(sm, log.compact(5)), { kind: 'compact', compactedRevision: 5, revision: 7 });
    assert.equal(sm.compactedRevision, 5);
    assert.equal(sm.revision, 7, 'compaction is not a change to the key space');
    for (let r = 1; r < 5; r++) {
      assert.throws(() => sm.get('a', r), (error: unknown) => error instanceof CompactedError && error.code === 'COMPACTED', `revision ${r}`);
    }
    // At 5: a's latest change <= 5 (a2 @4) survives; b was deleted at 5; c did not exist yet.
    assert.equal(value(sm, 'a', 5), 'a2');
    assert.equal(value(sm, 'b', 5), null);
    assert.equal(value(sm, 'c', 5), null);
    assert.equal(value(sm, 'a', 6), 'a2');
    assert.equal(value(sm, 'c', 6), 'c1');
    assert.equal(value(sm, 'a', 7), 'a3');
    assert.deepEqual(sm.get('a', 5).kv, { key: 'a', value: 'a2', createRevision: 2, modRevision: 4, version: 2 });
    assert.equal(sm.get('a').kv?.value, 'a3', 'the present is unaffected');
  } finally {
    await done();
  }
});

test('compaction physically removes exactly the history no readable revision needs', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply(history(log));
    assert.equal(sm.stats().historyRecords, 6);
    applyOne(sm, log.compact(5));
    // Kept: a@4 (latest <= 5), c@6, a@7. Removed: a@2 (superseded), b@3 and b's tombstone @5.
    const stats = sm.stats();
    assert.equal(stats.historyRecords, 3);
    assert.equal(stats.graves, 0, "b's grave went with its tombstone");
    assert.equal(stats.compactionPending, false);
    // Compacting at the current revision keeps only what is live now.
    applyOne(sm, log.compact(7));
    assert.equal(sm.stats().historyRecords, 2, 'a@7 and c@6');
    assert.equal(value(sm, 'a', 7), 'a3');
    assert.equal(value(sm, 'c', 7), 'c1');
    assert.equal(sm.count(), 2);
  } finally {
    await done();
  }
});

test('compact commands that cannot be applied answer an error and change nothing', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply(history(log));
    const future = applyOne(sm, log.compact(8));
    assert.equal(future?.kind, 'error');
    assert.equal((future as { code: string }).code, 'FUTURE_REVISION');
    assert.equal(sm.compactedRevision, 0);
    applyOne(sm, log.compact(4));
    for (const r of [4, 3]) {
      const again = applyOne(sm, log.compact(r));
      assert.equal((again as { code: string }).code, 'COMPACTED', `compact ${r} after compact 4`);
    }
    assert.equal(sm.compactedRevision, 4);
    assert.equal(value(sm, 'a', 4), 'a2');
  } finally {
    await done();
  }
});

test('a key deleted and re-created across a compaction keeps the right versions', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply([log.put('k', '1'), log.put('k', '2'), log.del('k'), log.put('k', '3')]); // 2,3,4(del),5
    applyOne(sm, log.compact(4));
    assert.equal(value(sm, 'k', 4), null);
    assert.deepEqual(sm.get('k', 5).kv, { key: 'k', value: '3', createRevision: 5, modRevision: 5, version: 1 });
    assert.equal(sm.stats().historyRecords, 1);
    assert.deepEqual(applyOne(sm, log.put('k', '4')), { kind: 'put', key: 'k', value: '4', createRevision: 5, modRevision: 6, version: 2, revision: 6 });
  } finally {
    await done();
  }
});

test('a large compaction is removed a bounded amount per apply, invisibly to readers', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    // 10,000 changes over 10 keys, then compact everything: more than one apply's budget.
    const batch = [];
    for (let i = 0; i < 10_000; i++) batch.push(log.put(`key-${i % 10}`, `v${i}`));
    sm.apply(batch);
    applyOne(sm, log.compact(sm.revision));
    // The window is walked first (10,000 reads), then removed in revision order: stop half-way.
    sm.runMaintenance(15_000);
    const pending = sm.stats();
    assert.equal(pending.compactionPending, true);
    assert.ok(pending.historyRecords < 10_000 && pending.historyRecords > 10, `partly compacted: ${pending.historyRecords}`);
    // Readers see the compacted view already.
    for (let k = 0; k < 10; k++) assert.equal(sm.get(`key-${k}`, sm.revision).kv?.value, `v${9_990 + k}`);
    assert.throws(() => sm.get('key-0', sm.revision - 1), CompactedError);
    while (sm.runMaintenance().compactionPending);
    assert.deepEqual(sm.stats(), { liveKeys: 10, historyRecords: 10, graves: 0, checkpoints: 0, sessions: 0, sessionResults: 0, compactionPending: false });
    for (let k = 0; k < 10; k++) assert.equal(sm.get(`key-${k}`).kv?.value, `v${9_990 + k}`);
  } finally {
    await done();
  }
});

test('an apply compacts in proportion to the entries it applies, and steady writes alone finish a compaction', async () => {
  const { sm, done } = await freshMachine({ unsafeNoSync: true });
  const log = new LogBuilder();
  try {
    const batch = [];
    for (let i = 0; i < 5_000; i++) batch.push(log.put(`key-${i % 10}`, `v${i}`));
    sm.apply(batch);
    applyOne(sm, log.compact(sm.revision));
    // A one-entry apply does at most the per-apply minimum plus one entry's share of the work (a
    // record read while walking the window, or a removal): a big backlog is never carried by one
    // apply (its commit would stall every node at once). Writes keep coming and no idle
    // maintenance runs: removal outpaces the history they add.
    let applies = 0;
    let removedTotal = 0;
    while (sm.stats().compactionPending) {
      assert.ok(++applies < 5_000, 'compaction never finished under steady writes');
      const before = sm.stats().historyRecords;
      applyOne(sm, log.put(`key-${applies % 10}`, `w${applies}`));
      const removedByOne = before + 1 - sm.stats().historyRecords;
      assert.ok(removedByOne <= COMPACTION_RECORDS_PER_APPLY_MIN + COMPACTION_RECORDS_PER_ENTRY, `one apply removed ${removedByOne} records`);
      removedTotal += removedByOne;
    }
    assert.ok(removedTotal >= 4_990, `the applies removed ${removedTotal} records`);
    assert.ok(applies < 5_000 / COMPACTION_RECORDS_PER_ENTRY * 2, `finished after ${applies} one-entry applies`);
  } finally {
    await done();
  }
});
