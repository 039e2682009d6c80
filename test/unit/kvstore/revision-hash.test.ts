// The state-at-revision hash that replica checkpoints compare: it must depend on the log alone (not
// on apply batching, later writes, logical or physical compaction at or below the revision, or a
// snapshot install), and it must change with anything a read at that revision could observe.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';
import { collect, freshMachine, fromArray, LogBuilder, SeededRandom } from './helpers.js';

/** A seeded workload of puts, overwrites and deletes over a small key space. */
function workload(seed: number, count: number): LogBuilder {
  const random = new SeededRandom(seed);
  const log = new LogBuilder();
  for (let i = 0; i < count; i++) {
    const key = `key/${random.int(40)}`;
    if (random.chance(0.2)) log.del(key);
    else log.put(key, `v${i}-${random.int(1000)}`);
  }
  return log;
}

function applyInBatches(sm: KvStateMachine, entries: readonly Entry[], batch: number): void {
  for (let start = 0; start < entries.length; start += batch) sm.apply(entries.slice(start, start + batch));
}

test('the hash at a revision does not depend on batching, later writes, compaction at or below it, or a snapshot install', async () => {
  const machines = await Promise.all([freshMachine(), freshMachine(), freshMachine(), freshMachine()]);
  try {
    const [oneByOne, batched, compacted, restored] = machines.map((m) => m.sm);
    const log = workload(7, 600);
    applyInBatches(oneByOne, log.entries, 1);
    applyInBatches(batched, log.entries.slice(0, 300), 97);
    const checkpoint = Math.min(batched.revision, 200);
    applyInBatches(batched, log.entries.slice(300), 97);
    // Logical compaction at the checkpoint, physical compaction run to the end.
    const compactLog = workload(7, 600);
    compactLog.compact(checkpoint);
    applyInBatches(compacted, compactLog.entries, 50);
    while (compacted.runMaintenance().compactionPending);
    assert.equal(compacted.compactedRevision, checkpoint);
    // A snapshot of the compacted machine installed on a fresh one.
    await restored.importSnapshot(fromArray(await collect(compacted.exportSnapshot().chunks)));

    const hashes = await Promise.all([oneByOne, batched, compacted, restored].map((sm) => sm.hashAtRevisionAsync(checkpoint)));
    for (const hash of hashes) assert.notEqual(hash, null);
    assert.equal(new Set(hashes.map((h) => h?.hash)).size, 1, `all four agree at revision ${checkpoint}`);
    assert.equal(hashes[0]?.revision, checkpoint);

    // A machine that stopped exactly at the checkpoint hashes it alike too.
    const stoppedAt = await freshMachine();
    try {
      let i = 0;
      while (stoppedAt.sm.revision < checkpoint) stoppedAt.sm.apply([log.entries[i++]]);
      assert.equal((await stoppedAt.sm.hashAtRevisionAsync(checkpoint))?.hash, hashes[0]?.hash);
    } finally {
      await stoppedAt.done();
    }
    // And later revisions differ from it (the workload changed something after the checkpoint).
    assert.notEqual((await oneByOne.hashAtRevisionAsync(checkpoint + 50))?.hash, hashes[0]?.hash);
  } finally {
    for (const machine of machines) await machine.done();
  }
});

test('any difference a read at the revision could see changes the hash', async () => {
  const machines = await Promise.all([freshMachine(), freshMachine(), freshMachine(), freshMachine()]);
  try {
    const [base, otherValue, otherVersion, deleted] = machines.map((m) => m.sm);
    const logs = machines.map(() => new LogBuilder());
    base.apply([logs[0].put('a', '1'), logs[0].put('b', '2'), logs[0].put('c', '3')]);
    otherValue.apply([logs[1].put('a', '1'), logs[1].put('b', 'X'), logs[1].put('c', '3')]);
    otherVersion.apply([logs[2].put('a', '1'), logs[2].put('a', '1'), logs[2].put('c', '3')]);
    deleted.apply([logs[3].put('a', '1'), logs[3].put('b', '2'), logs[3].del('b')]);
    const hashes = await Promise.all([base, otherValue, otherVersion, deleted].map((sm) => sm.hashAtRevisionAsync(4)));
    assert.equal(new Set(hashes.map((h) => h?.hash)).size, 4, 'all four differ at revision 4');
  } finally {
    for (const machine of machines) await machine.done();
  }
});

test('a revision not reached yet, or compacted away, cannot be hashed', async () => {
  const { sm, done } = await freshMachine();
  try {
    const log = new LogBuilder();
    sm.apply([log.put('a', '1'), log.put('a', '2'), log.put('a', '3'), log.compact(3)]);
    assert.equal(sm.revision, 4);
    assert.equal(await sm.hashAtRevisionAsync(5), null, 'future');
    assert.equal(await sm.hashAtRevisionAsync(2), null, 'compacted');
    assert.notEqual(await sm.hashAtRevisionAsync(3), null, 'the compacted revision itself is readable');
    assert.notEqual(await sm.hashAtRevisionAsync(4), null);
  } finally {
    await done();
  }
});

test('the view is pinned when the hash starts: writes during the walk do not change it', async () => {
  const { sm, done } = await freshMachine({ unsafeNoSync: true });
  try {
    const log = new LogBuilder();
    const entries: Entry[] = [];
    for (let i = 0; i < 20_000; i++) entries.push(log.put(`key/${i}`, `value-${i}`));
    applyInBatches(sm, entries, 1000);
    const expected = await sm.hashAtRevisionAsync(15_000);
    const pending = sm.hashAtRevisionAsync(15_000);
    // Compact past the checkpoint, then overwrite keys, while the walk pauses between its steps.
    let changed = 0;
    let running = true;
    const change = (): void => {
      if (!running) return;
      sm.apply([changed === 0 ? log.compact(sm.revision) : log.put(`key/${changed}`, 'changed mid-hash')]);
      changed++;
      setImmediate(change);
    };
    setImmediate(change);
    try {
      assert.deepEqual(await pending, expected);
    } finally {
      running = false;
    }
    assert.ok(changed >= 2, `a compaction and writes happened while hashing (${changed} changes)`);
    assert.equal(await sm.hashAtRevisionAsync(15_000), null, 'compacted past it now');
  } finally {
    await done();
  }
});
