// etcd's data model, step by step: the store revision, and per key createRevision, modRevision and
// version (https://etcd.io/docs/v3.5/learning/data_model/ and api.md "Key-Value pair").

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue } from '../../../src/codec/raft-codec.js';
import { applyOne, freshMachine, LogBuilder } from './helpers.js';

test('an empty store is at revision 1 with nothing in it', async () => {
  const { sm, done } = await freshMachine();
  try {
    assert.equal(sm.revision, 1);
    assert.equal(sm.appliedIndex, 0);
    assert.equal(sm.compactedRevision, 0);
    assert.equal(sm.count(), 0);
    assert.deepEqual(sm.get('a'), { kv: null, revision: 1 });
  } finally {
    await done();
  }
});

test('revision, createRevision, modRevision and version follow etcd, step by step', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    // put a: a new key is created at the next revision with version 1.
    assert.deepEqual(applyOne(sm, log.put('a', 'a1')), { kind: 'put', key: 'a', value: 'a1', createRevision: 2, modRevision: 2, version: 1, revision: 2 });
    // put b: every change takes the next store revision, whatever the key.
    assert.deepEqual(applyOne(sm, log.put('b', 'b1')), { kind: 'put', key: 'b', value: 'b1', createRevision: 3, modRevision: 3, version: 1, revision: 3 });
    // put a again: same createRevision, new modRevision, version + 1.
    assert.deepEqual(applyOne(sm, log.put('a', 'a2')), { kind: 'put', key: 'a', value: 'a2', createRevision: 2, modRevision: 4, version: 2, revision: 4 });
    // Writing the same value is still a change.
    assert.deepEqual(applyOne(sm, log.put('a', 'a2')), { kind: 'put', key: 'a', value: 'a2', createRevision: 2, modRevision: 5, version: 3, revision: 5 });
    // delete a: a change (revision 6); the key is gone.
    assert.deepEqual(applyOne(sm, log.del('a')), { kind: 'delete', key: 'a', deleted: true, revision: 6 });
    assert.deepEqual(sm.get('a'), { kv: null, revision: 6 });
    // delete a again: nothing to delete, so no change and no new revision.
    assert.deepEqual(applyOne(sm, log.del('a')), { kind: 'delete', key: 'a', deleted: false, revision: 6 });
    // Deleting a key that never existed changes nothing either.
    assert.deepEqual(applyOne(sm, log.del('never')), { kind: 'delete', key: 'never', deleted: false, revision: 6 });
    assert.equal(sm.revision, 6);
    // put a after its delete: a new life, with a new createRevision and version back to 1.
    assert.deepEqual(applyOne(sm, log.put('a', 'a3')), { kind: 'put', key: 'a', value: 'a3', createRevision: 7, modRevision: 7, version: 1, revision: 7 });
    assert.deepEqual(sm.get('a'), { kv: { key: 'a', value: 'a3', createRevision: 7, modRevision: 7, version: 1 }, revision: 7 });
    assert.deepEqual(sm.get('b'), { kv: { key: 'b', value: 'b1', createRevision: 3, modRevision: 3, version: 1 }, revision: 7 });
    assert.equal(sm.count(), 2);
    assert.equal(sm.appliedIndex, log.lastIndex);
  } finally {
    await done();
  }
});

test('noop and config entries only advance the applied index', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    log.put('a', '1');
    log.noop();
    log.config();
    log.noop();
    const results = sm.apply(log.entries);
    assert.deepEqual([...results.keys()], [1], 'only the command entry has a result');
    assert.equal(sm.appliedIndex, 4);
    assert.equal(sm.revision, 2);
  } finally {
    await done();
  }
});

test('an undecodable or unknown command is an error result, changes nothing, and later entries still apply', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    applyOne(sm, log.put('a', '1'));
    const before = sm.hash();
    const garbage = log.raw(new Uint8Array([0xc1, 0x00, 0xff]));
    const future = log.raw(encodeValue({ v: 2, op: 'put', key: 'a', value: 'x', proposedAtMs: 5 }));
    const txn = log.raw(encodeValue({ v: 1, op: 'txn', proposedAtMs: 5 }));
    const badKey = log.raw(encodeValue({ v: 1, op: 'put', key: 'a\u0001', value: 'x', proposedAtMs: 5 }));
    const after = log.put('b', '2');
    const results = sm.apply([garbage, future, txn, badKey, after]);
    assert.equal(results.get(garbage.index)?.kind, 'error');
    assert.equal((results.get(garbage.index) as { code: string }).code, 'BAD_REQUEST');
    assert.equal((results.get(future.index) as { code: string }).code, 'UNSUPPORTED_COMMAND');
    assert.equal((results.get(txn.index) as { code: string }).code, 'UNSUPPORTED_COMMAND');
    assert.equal((results.get(badKey.index) as { code: string }).code, 'INVALID_KEY');
    assert.deepEqual(results.get(after.index), { kind: 'put', key: 'b', value: '2', createRevision: 3, modRevision: 3, version: 1, revision: 3 });
    assert.equal(sm.get('a').kv?.value, '1');
    assert.notEqual(sm.hash().hash, before.hash);
  } finally {
    await done();
  }
});

test('several puts of one key in one batch each take their own revision', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    for (let i = 0; i < 5; i++) log.put('k', `v${i}`);
    log.del('k');
    log.put('k', 'again');
    const results = [...sm.apply(log.entries).values()];
    assert.deepEqual(results.map((r) => (r.kind === 'put' ? [r.modRevision, r.version, r.createRevision] : r.kind)), [[2, 1, 2], [3, 2, 2], [4, 3, 2], [5, 4, 2], [6, 5, 2], 'delete', [8, 1, 8]]);
    assert.equal(sm.revision, 8);
  } finally {
    await done();
  }
});

test('apply refuses a gap in the log rather than guess', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    sm.apply([log.put('a', '1')]);
    log.put('b', '2');
    const skipped = log.put('c', '3');
    assert.throws(() => sm.apply([skipped]), /not contiguous/);
    assert.equal(sm.appliedIndex, 1);
    assert.equal(sm.get('c').kv, null);
  } finally {
    await done();
  }
});

test('keys and values of every shape come back exactly', async () => {
  const { sm, done } = await freshMachine();
  const log = new LogBuilder();
  try {
    const pairs: [string, string][] = [['a', ''], ['ab', 'x'.repeat(100_000)], ['🔑/ключ', 'valeur\u0000avec\tcontrôles 🎉'], ['k'.repeat(1024), 'max key']];
    sm.apply(pairs.map(([key, value]) => log.put(key, value)));
    for (const [key, value] of pairs) assert.equal(sm.get(key).kv?.value, value, key.slice(0, 20));
    assert.equal(sm.get('a').kv?.value, '');
    assert.equal(sm.get('k'.repeat(1023)).kv, null, 'a prefix of a key is another key');
    assert.throws(() => sm.get('bad\u0000key'), (error: unknown) => (error as { code?: string }).code === 'INVALID_KEY');
  } finally {
    await done();
  }
});
