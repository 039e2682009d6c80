// ReadIndex (Raft thesis 6.4): linearizable reads without writing to the log.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './harness.js';

test('a leader serves a read only after a heartbeat round confirms it still leads (thesis 6.4)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.takeTrace();
  assert.deepEqual(cluster.node(1).readIndex(7), { ok: true });
  cluster.flush();
  assert.deepEqual(cluster.readStates.get(1), [], 'not before the round');
  cluster.deliverAll();
  assert.deepEqual(cluster.readStates.get(1), [{ context: 7, index: 1 }]);
  const round = cluster.takeTrace().filter((line) => line.includes('heartbeat'));
  assert.deepEqual(round, ['1->2 heartbeatRequest t1 commit=1 ctx=1', '1->3 heartbeatRequest t1 commit=1 ctx=1', '2->1 heartbeatResponse t1 ctx=1', '3->1 heartbeatResponse t1 ctx=1']);
});

test('one heartbeat round serves every read queued before it started', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.takeTrace();
  for (let context = 1; context <= 100; context++) cluster.node(1).readIndex(context);
  cluster.deliverAll();
  assert.equal(cluster.readStates.get(1)?.length, 100);
  const rounds = cluster.takeTrace().filter((line) => line.includes('heartbeatRequest'));
  assert.equal(rounds.length, 2, 'one round: a heartbeat to each follower');
});

test('a deposed leader cut off from the majority never releases a read', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.isolated.add(1);
  cluster.node(1).readIndex(1);
  cluster.deliverAll();
  cluster.tick(1, 40);
  assert.deepEqual(cluster.readStates.get(1), []);
});

test('a new leader answers reads only after committing its no-op (thesis 6.4 step 1)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.tick(1, 100);
  cluster.deliverOnly((m) => m.type === 'voteRequest');
  cluster.deliverOnly((m) => m.type === 'voteResponse');
  cluster.deliverOnly((m) => m.type === 'voteRequest');
  cluster.deliverOnly((m) => m.type === 'voteResponse');
  assert.equal(cluster.node(1).role, 'leader');
  assert.equal(cluster.node(1).commitIndex, 0);
  cluster.node(1).readIndex(9);
  cluster.deliverAll();
  assert.deepEqual(cluster.readStates.get(1), [{ context: 9, index: 1 }], 'the read index is the no-op\'s commit, not 0');
});

test('a follower asks the leader for a read index and reads at it', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.propose(1, 'a');
  cluster.deliverAll();
  assert.deepEqual(cluster.node(3).readIndex(5), { ok: true });
  cluster.deliverAll();
  assert.deepEqual(cluster.readStates.get(3), [{ context: 5, index: 2 }]);
  assert.ok(cluster.node(3).appliedIndex >= 2);
});

test('a follower without a leader refuses a read at once', () => {
  const cluster = new TestCluster([1, 2, 3]);
  assert.deepEqual(cluster.node(2).readIndex(1), { ok: false, reason: 'noLeader', leaderId: 0 });
});
