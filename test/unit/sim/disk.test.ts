// The simulated disk: unsynced writes are lost on a crash (or survive as a prefix), synced ones never.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, Membership } from '../../../src/raft/types.js';
import { SimDisk, StoredState } from '../../sim/disk.js';
import { emptyImage, KvStateMachine } from '../../sim/kv.js';

const membership: Membership = { members: [1, 2, 3].map((id) => ({ id, role: 'voter' as const, peerAddr: '', httpAddr: '' })) };

function noop(index: number, term: number): Entry {
  return { kind: 'noop', index, term };
}

/** A crash outcome chosen by the test: keep `kept` unsynced writes (null: keep none). */
function crashKeeping(kept: number | null) {
  return { chance: () => kept === null, intBetween: () => kept ?? 0 };
}

function makeDisk() {
  const breaches: string[] = [];
  const disk = new SimDisk(membership, (detail) => breaches.push(detail));
  return { disk, breaches };
}

test('a crash loses what was written but not synced', () => {
  const { disk } = makeDisk();
  disk.write({ kind: 'entries', entries: [noop(1, 1), noop(2, 1)] });
  disk.write({ kind: 'hardState', hardState: { term: 1, votedFor: 1, commitIndex: 0 } });
  const token = disk.startSync();
  disk.completeSync(token);
  disk.write({ kind: 'entries', entries: [noop(3, 1)] });
  disk.write({ kind: 'hardState', hardState: { term: 2, votedFor: 3, commitIndex: 2 } });
  assert.equal(disk.current.lastIndex, 3);
  assert.equal(disk.durable.lastIndex, 2);
  disk.crash(crashKeeping(null));
  assert.equal(disk.current.lastIndex, 2);
  assert.deepEqual(disk.durable.hardState, { term: 1, votedFor: 1, commitIndex: 0 });
  const initial = disk.durable.initialState();
  assert.deepEqual(initial.entries.map((e) => e.index), [1, 2]);
  assert.equal(initial.appliedIndex, 0);
});

test('a crash may keep a prefix of the unsynced writes, in order', () => {
  const { disk } = makeDisk();
  disk.write({ kind: 'entries', entries: [noop(1, 1)] });
  disk.write({ kind: 'hardState', hardState: { term: 1, votedFor: 2, commitIndex: 0 } });
  disk.write({ kind: 'entries', entries: [noop(2, 1)] });
  disk.crash(crashKeeping(2));
  assert.equal(disk.durable.lastIndex, 1);
  assert.equal(disk.durable.hardState.votedFor, 2);
  assert.equal(disk.unsyncedCount, 0);
});

test('a sync covers only the writes made before it started; a stale sync after a crash does nothing', () => {
  const { disk } = makeDisk();
  disk.write({ kind: 'entries', entries: [noop(1, 1)] });
  const first = disk.startSync();
  disk.write({ kind: 'entries', entries: [noop(2, 1)] });
  disk.completeSync(first);
  assert.equal(disk.durable.lastIndex, 1);
  const second = disk.startSync();
  disk.crash(crashKeeping(null));
  disk.completeSync(second);
  assert.equal(disk.durable.lastIndex, 1);
});

test('entries truncate the log from their first index', () => {
  const state = StoredState.fresh(membership);
  assert.equal(state.apply({ kind: 'entries', entries: [noop(1, 1), noop(2, 1), noop(3, 1)] }), null);
  assert.equal(state.apply({ kind: 'entries', entries: [noop(2, 2)] }), null);
  assert.equal(state.lastIndex, 2);
  assert.equal(state.termAt(2), 2);
  assert.equal(state.termAt(3), undefined);
});

test('the disk reports entries that leave a gap or are not contiguous', () => {
  const { disk, breaches } = makeDisk();
  disk.write({ kind: 'entries', entries: [noop(3, 1)] });
  disk.write({ kind: 'entries', entries: [noop(1, 1), noop(3, 1)] });
  assert.equal(breaches.length, 2);
  assert.match(breaches[0] ?? '', /past the end/);
  assert.match(breaches[1] ?? '', /not contiguous/);
});

test('installing a snapshot keeps the log after it only if the log holds its last entry', () => {
  const machine = new KvStateMachine(emptyImage(membership));
  machine.apply(noop(1, 1));
  machine.apply(noop(2, 1));
  const image = machine.image();
  const meta = { index: 2, term: 1, membership };

  const matching = StoredState.fresh(membership);
  matching.apply({ kind: 'entries', entries: [noop(1, 1), noop(2, 1), noop(3, 1)] });
  assert.equal(matching.apply({ kind: 'snapshot', meta, image }), null);
  assert.equal(matching.snapshot.index, 2);
  assert.deepEqual(matching.log.map((e) => e.index), [3]);

  const conflicting = StoredState.fresh(membership);
  conflicting.apply({ kind: 'entries', entries: [noop(1, 1), noop(2, 2), noop(3, 2)] });
  conflicting.apply({ kind: 'snapshot', meta, image });
  assert.deepEqual(conflicting.log, []);
  assert.equal(conflicting.lastIndex, 2);
  assert.equal(conflicting.holds(1, 99), true, 'the snapshot covers index 1');
  assert.equal(conflicting.initialState().appliedIndex, 2);
});

test('compaction keeps a tail and a restart hands it back with the snapshot', () => {
  const { disk } = makeDisk();
  disk.write({ kind: 'entries', entries: [1, 2, 3, 4, 5].map((i) => noop(i, 1)) });
  disk.completeSync(disk.startSync());
  const machine = new KvStateMachine(emptyImage(membership));
  for (let i = 1; i <= 4; i++) machine.apply(noop(i, 1));
  const image = machine.image();
  disk.saveLocalSnapshot({ index: 4, term: 1, membership }, image);
  disk.compactBefore(3);
  const initial = disk.durable.initialState();
  assert.equal(initial.snapshot.index, 4);
  assert.deepEqual(initial.entries.map((e) => e.index), [3, 4, 5]);
  assert.equal(initial.appliedIndex, 4);
});
