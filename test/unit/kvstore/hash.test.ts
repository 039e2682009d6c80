// The replica-comparison hash: equal for equal states however they were reached, different for
// any difference a client could observe, and hashAsync() agrees with hash() from a pinned view.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvStateMachine } from '../../../src/kvstore/state-machine.js';
import type { Entry } from '../../../src/raft/types.js';
import { freshMachine, LogBuilder } from './helpers.js';

function fill(sm: KvStateMachine, log: LogBuilder, keys: number, batch: number): void {
  const entries: Entry[] = [];
  for (let i = 0; i < keys; i++) entries.push(log.put(`key/${i}`, `value-${i}`));
  for (let start = 0; start < entries.length; start += batch) sm.apply(entries.slice(start, start + batch));
}

test('equal states hash equal, however the entries were batched', async () => {
  const a = await freshMachine();
  const b = await freshMachine();
  try {
    fill(a.sm, new LogBuilder(), 500, 1);
    fill(b.sm, new LogBuilder(), 500, 73);
    assert.deepEqual(a.sm.hash(), b.sm.hash());
    assert.match(a.sm.hash().hash, /^[0-9a-f]{64}$/);
  } finally {
    await a.done();
    await b.done();
  }
});

test('any observable difference changes the hash: a value, a version, the revision, the compaction', async () => {
  const machines = await Promise.all([freshMachine(), freshMachine(), freshMachine(), freshMachine(), freshMachine()]);
  try {
    const [base, otherValue, otherVersion, otherRevision, compacted] = machines.map((m) => m.sm);
    const logs = machines.map(() => new LogBuilder());
    base.apply([logs[0].put('a', '1'), logs[0].put('b', '2'), logs[0].noop()]);
    otherValue.apply([logs[1].put('a', '1'), logs[1].put('b', '3'), logs[1].noop()]);
    // Same values, same revision, but "a" was written twice (version 2, modRevision 3).
    otherVersion.apply([logs[2].put('a', '1'), logs[2].put('a', '1'), logs[2].put('b', '2')]);
    // Same live keys and versions, but one more change happened (a key created and deleted).
    otherRevision.apply([logs[3].put('a', '1'), logs[3].put('b', '2'), logs[3].put('c', 'x'), logs[3].del('c')]);
    compacted.apply([logs[4].put('a', '1'), logs[4].put('b', '2'), logs[4].compact(2)]);
    const hashes = [base, otherValue, otherVersion, otherRevision, compacted].map((sm) => sm.hash().hash);
    assert.equal(new Set(hashes).size, hashes.length, 'all five differ');
    assert.equal(base.hash().appliedIndex, 3);
  } finally {
    for (const machine of machines) await machine.done();
  }
});

test('hashAsync agrees with hash, and reads a view pinned when it started while applies go on', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    fill(sm, log, 20_000, 1000);
    const expected = sm.hash();
    assert.deepEqual(await sm.hashAsync(), expected);
    const pending = sm.hashAsync();
    // Change the state while the walk pauses between its steps.
    let changed = 0;
    const timer = setInterval(() => { sm.apply([log.put(`key/${changed++}`, 'changed mid-hash')]); }, 0);
    try {
      assert.deepEqual(await pending, expected);
    } finally {
      clearInterval(timer);
    }
    assert.ok(changed > 0, 'applies happened while hashing');
    assert.notEqual(sm.hash().hash, expected.hash);
  } finally {
    await done();
  }
});
