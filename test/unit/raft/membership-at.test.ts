// RaftNode.membershipAt: the configuration in force at an index the log still reaches. At 0 it is
// what a node joining with an empty log records there (src/server/bootstrap.ts), so it must be
// the founding configuration while the log reaches back to it, and unknown once compacted away.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, members } from './harness.js';

test('membershipAt follows the log, and forgets what compaction dropped', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  const leader = cluster.node(1);
  const founding = members([1, 2, 3]);
  assert.deepEqual(leader.membershipAt(0), founding);
  const added = leader.proposeMembershipChange({ kind: 'addLearner', member: { id: 4, peerAddr: 'n4:1', httpAddr: 'n4:2' } });
  assert.ok(added.ok);
  cluster.deliverAll();
  for (let i = 0; i < 5; i++) cluster.propose(1, `w${i}`);
  cluster.deliverAll();
  const configIndex = added.ok ? added.index : 0;
  assert.deepEqual(leader.membershipAt(configIndex - 1), founding);
  assert.deepEqual(leader.membershipAt(configIndex)?.members.map((m) => `${m.id}:${m.role}`), ['1:voter', '2:voter', '3:voter', '4:learner']);
  assert.equal(leader.membershipAt(leader.lastIndex + 1), undefined, 'beyond the log');
  // A snapshot keeping a tail still reaches index 0; one without a tail does not.
  leader.compact(leader.appliedIndex - 1, leader.appliedIndex);
  assert.deepEqual(leader.membershipAt(0), founding, 'the kept tail reaches back to entry 1');
  leader.compact(leader.appliedIndex, 0);
  assert.equal(leader.membershipAt(0), undefined);
  assert.equal(leader.membershipAt(configIndex - 1), undefined);
  assert.deepEqual(leader.membershipAt(leader.lastIndex)?.members.length, 4);
});
