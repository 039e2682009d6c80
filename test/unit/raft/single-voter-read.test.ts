// A lone voter is its own majority: a read it accepts before its term's first commit (its no-op)
// must be served once that commit happens, not wait for a heartbeat round nobody can answer.
// Found by the --force-new-cluster membership test: the survivor, a 1-voter cluster, answered the
// first linearizable read after its election with 504 NO_QUORUM after the full request timeout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './harness.js';

/** Tick `id` until it leads, without handling any Ready: its no-op is appended, not yet persisted. */
function electAlone(cluster: TestCluster, id: number): void {
  const node = cluster.node(id);
  for (let i = 0; i < 100 && node.role !== 'leader'; i++) node.tick();
  assert.equal(node.role, 'leader');
  assert.equal(node.commitIndex, 0, 'the no-op is not committed yet');
}

test('a single voter serves a read asked before its no-op commits, at the no-op', () => {
  const cluster = new TestCluster([1]);
  electAlone(cluster, 1);
  assert.deepEqual(cluster.node(1).readIndex(3), { ok: true });
  cluster.flush();
  assert.equal(cluster.node(1).commitIndex, 1);
  assert.deepEqual(cluster.readStates.get(1), [{ context: 3, index: 1 }]);
});

test('a single voter with a learner serves such a read too: the learner\'s answers never count', () => {
  const cluster = new TestCluster([1], { learners: [2] });
  electAlone(cluster, 1);
  cluster.node(1).readIndex(4);
  cluster.flush();
  assert.deepEqual(cluster.readStates.get(1), [{ context: 4, index: 1 }], 'served on the commit, before any heartbeat answer');
  cluster.deliverAll();
  assert.deepEqual(cluster.readStates.get(1), [{ context: 4, index: 1 }], 'served once');
});

test('a single voter serves reads asked after its no-op committed at once', () => {
  const cluster = new TestCluster([1]);
  electAlone(cluster, 1);
  cluster.flush();
  cluster.node(1).readIndex(5);
  cluster.flush();
  assert.deepEqual(cluster.readStates.get(1), [{ context: 5, index: 1 }]);
});

test('a leader that removed itself does not serve reads alone because the one voter left is someone else', () => {
  // {1, 2}, leader 1 appends its own removal: the membership in force is {2}, a single voter that
  // is not the leader. Cut off from 2, leader 1 must not confirm reads by itself (2 may already
  // lead alone and commit writes 1 never sees).
  const cluster = new TestCluster([1, 2]);
  cluster.elect(1);
  cluster.deliverAll();
  cluster.isolated.add(2);
  assert.equal(cluster.node(1).proposeMembershipChange({ kind: 'remove', id: 1 }).ok, true);
  cluster.flush();
  assert.equal(cluster.node(1).role, 'leader', 'still leading until the removal commits');
  const before = cluster.readStates.get(1)?.length ?? 0;
  cluster.node(1).readIndex(9);
  cluster.flush();
  assert.equal(cluster.readStates.get(1)?.length ?? 0, before, 'no read confirmed without the only voter');
});
