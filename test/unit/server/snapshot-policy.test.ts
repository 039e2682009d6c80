// When a snapshot point is due: by applied entries, or by write-ahead log growth since the last one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotPolicy } from '../../../src/server/snapshot-policy.js';

test('a snapshot point is due after N applied entries', () => {
  const policy = new SnapshotPolicy({ snapshotEveryEntries: 100, snapshotEveryBytes: 1 << 30 });
  assert.equal(policy.due(99, 0, 0), null);
  assert.equal(policy.due(100, 0, 0), 'entries');
  assert.equal(policy.due(250, 200, 0), null);
  assert.equal(policy.due(300, 200, 0), 'entries');
});

test('a snapshot point is due once the log grew by more than the byte limit since the last one', () => {
  const policy = new SnapshotPolicy({ snapshotEveryEntries: 1_000_000, snapshotEveryBytes: 1000 });
  assert.equal(policy.due(10, 0, 1000), null, 'exactly the limit is not more than it');
  assert.equal(policy.due(10, 0, 1001), 'bytes');
  // Compaction left a tail of 800 bytes: the baseline moves there, so the tail alone never triggers.
  policy.recorded(800);
  assert.equal(policy.due(20, 10, 1500), null);
  assert.equal(policy.due(20, 10, 1801), 'bytes');
  assert.equal(policy.due(10, 10, 1_000_000), null, 'nothing applied since the snapshot point: nothing to record');
  // A snapshot from the leader replaced the log: the baseline follows it down.
  assert.equal(policy.due(30, 10, 100), null);
  assert.equal(policy.baselineBytes, 100);
  assert.equal(policy.due(30, 10, 1101), 'bytes');
});

test('limits below 1 are refused', () => {
  assert.throws(() => new SnapshotPolicy({ snapshotEveryEntries: 0, snapshotEveryBytes: 10 }), RangeError);
  assert.throws(() => new SnapshotPolicy({ snapshotEveryEntries: 10, snapshotEveryBytes: 0 }), RangeError);
});
