// Membership changes one server at a time (Raft thesis chapter 4), learners, leadership transfer
// (thesis 3.10), and snapshots for followers behind the compacted log (paper section 7).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftNode } from '../../../src/raft/node.js';
import { defaultRaftConfig } from '../../../src/raft/types.js';
import { ScriptedRandom, TestCluster, members } from './harness.js';

const member = (id: number) => ({ id, peerAddr: `127.0.0.1:${50050 + id}`, httpAddr: `127.0.0.1:${8080 + id}` });

test('a change takes effect when appended, before it commits (thesis 4.1)', () => {
  const cluster = new TestCluster([1, 2, 3], { learners: [4] });
  cluster.elect(1);
  const result = cluster.node(1).proposeMembershipChange({ kind: 'promote', id: 4 });
  assert.equal(result.ok, true);
  assert.ok(cluster.node(1).membership.members.some((m) => m.id === 4 && m.role === 'voter'), 'the leader uses it at once');
  assert.equal(cluster.node(1).commitIndex, 1, 'not yet committed');
});

test('a second change waits until the first one commits; none before the term\'s first commit', () => {
  const cluster = new TestCluster([1, 2, 3], { learners: [4, 5] });
  cluster.tick(1, 100);
  for (let i = 0; i < 4; i++) cluster.deliverOnly((m) => m.type === 'voteRequest' || m.type === 'voteResponse');
  assert.equal(cluster.node(1).role, 'leader');
  assert.deepEqual(cluster.node(1).proposeMembershipChange({ kind: 'promote', id: 4 }), { ok: false, reason: 'membershipChangePending' });
  cluster.deliverAll();
  assert.equal(cluster.node(1).proposeMembershipChange({ kind: 'promote', id: 4 }).ok, true);
  assert.deepEqual(cluster.node(1).proposeMembershipChange({ kind: 'promote', id: 5 }), { ok: false, reason: 'membershipChangePending' });
  cluster.deliverAll();
  assert.equal(cluster.node(1).proposeMembershipChange({ kind: 'promote', id: 5 }).ok, true);
});

test('learners receive the log but never count toward a commit or an election', () => {
  const cluster = new TestCluster([1], { learners: [2, 3] });
  cluster.elect(1);
  assert.equal(cluster.node(1).role, 'leader', 'a lone voter elects itself; learners are not asked');
  cluster.propose(1, 'x');
  cluster.deliverAll();
  assert.deepEqual(cluster.appliedCommands(2), ['x'], 'learners apply the log');
  // With the voter cut off, nothing commits no matter how many learners acknowledge.
  cluster.isolated.add(1);
  for (const learner of [2, 3]) {
    cluster.tick(learner, 100);
    assert.equal(cluster.node(learner).role, 'follower', 'a learner never campaigns');
  }
});

test('a learner\'s acknowledgement does not commit: 2 voters, one down, learners up', () => {
  const cluster = new TestCluster([1, 2], { learners: [3, 4] });
  cluster.elect(1);
  cluster.isolated.add(2);
  const before = cluster.node(1).commitIndex;
  cluster.propose(1, 'y');
  cluster.deliverAll();
  assert.equal(cluster.node(1).commitIndex, before, 'two learner acks and the leader are still not a majority of voters');
  assert.equal(cluster.node(3).lastIndex, cluster.node(1).lastIndex, 'the learner has the entry');
});

test('adding a member: it gets the whole log, and a removed leader steps down once the removal commits', () => {
  // Distinct election timeouts, so the survivors of the removal do not split their votes forever.
  const cluster = new TestCluster([1, 2, 3], { configure: (c) => ({ ...c, random: new ScriptedRandom(Array(50).fill(c.id * 4)) }) });
  cluster.elect(1);
  cluster.propose(1, 'before');
  cluster.deliverAll();
  // Node 4 starts empty with the membership it is told (joining nodes learn the real one from the log).
  const node4 = new RaftNode(defaultRaftConfig(4, new ScriptedRandom(Array(50).fill(1))), {
    hardState: { term: 0, votedFor: 0, commitIndex: 0 },
    snapshot: { index: 0, term: 0, membership: members([1, 2, 3], [4]) },
    entries: [],
    appliedIndex: 0,
  });
  cluster.nodes.set(4, node4);
  cluster.applied.set(4, []);
  cluster.readStates.set(4, []);
  assert.equal(cluster.node(1).proposeMembershipChange({ kind: 'addLearner', member: member(4) }).ok, true);
  cluster.deliverAll();
  assert.deepEqual(cluster.appliedCommands(4), ['before']);
  assert.equal(cluster.node(1).proposeMembershipChange({ kind: 'promote', id: 4 }).ok, true);
  cluster.deliverAll();
  assert.equal(cluster.node(1).proposeMembershipChange({ kind: 'remove', id: 1 }).ok, true);
  cluster.deliverAll();
  assert.notEqual(cluster.node(1).role, 'leader', 'the removed leader stepped down');
  cluster.isolated.add(1);
  cluster.run(60);
  const leaders = [2, 3, 4].filter((id) => cluster.node(id).role === 'leader');
  assert.equal(leaders.length, 1, 'the remaining voters elect a leader');
  assert.equal(cluster.node(leaders[0]).membership.members.some((m) => m.id === 1), false);
});

test('invalid changes are refused with a reason and append nothing', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  const last = cluster.node(1).lastIndex;
  assert.deepEqual(cluster.node(1).proposeMembershipChange({ kind: 'remove', id: 9 }), { ok: false, reason: 'invalidMembershipChange', detail: 'node 9 is not a member' });
  assert.deepEqual(cluster.node(1).proposeMembershipChange({ kind: 'addVoter', member: member(2) }), { ok: false, reason: 'invalidMembershipChange', detail: 'node 2 is already a member' });
  assert.equal(cluster.node(1).lastIndex, last);
});

test('leadership transfer: the leader stops taking proposals, catches the target up and sends TimeoutNow', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.isolated.add(3);
  cluster.propose(1, 'x');
  cluster.deliverAll();
  cluster.isolated.delete(3);
  assert.deepEqual(cluster.node(1).transferLeadership(3), { ok: true, to: 3 });
  assert.deepEqual(cluster.node(1).propose(new Uint8Array(1)), { ok: false, reason: 'transferring', leaderId: 1 });
  cluster.takeTrace();
  cluster.tick(1, 5); // the heartbeat finds node 3 behind
  cluster.deliverAll();
  const trace = cluster.takeTrace();
  assert.ok(trace.includes('1->3 timeoutNow t1'), trace.join('\n'));
  assert.equal(cluster.node(3).role, 'leader');
  assert.equal(cluster.node(3).term, 2);
  assert.equal(cluster.node(1).leaderId, 3);
});

test('a transfer with no target picks the most up-to-date voter; an unanswered transfer is abandoned', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.isolated.add(3);
  cluster.propose(1, 'x');
  cluster.deliverAll();
  cluster.isolated.add(2);
  assert.deepEqual(cluster.node(1).transferLeadership(null), { ok: true, to: 2 });
  cluster.tick(1, 14);
  assert.equal(cluster.node(1).propose(new Uint8Array(1)).ok, false);
  cluster.tick(1, 1);
  cluster.isolated.delete(2);
  cluster.isolated.delete(3);
  assert.equal(cluster.node(1).propose(new Uint8Array(1)).ok, true, 'after an election timeout the leader serves again');
});

test('a follower behind the compacted log receives a snapshot, then the rest of the log (paper 7)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.isolated.add(3);
  for (let i = 0; i < 10; i++) cluster.propose(1, `v${i}`);
  cluster.deliverAll();
  const leader = cluster.node(1);
  leader.compact(8, 0);
  assert.equal(leader.firstIndex, 9);
  cluster.isolated.delete(3);
  cluster.takeTrace();
  cluster.tick(1, 5);
  cluster.deliverAll();
  assert.ok(cluster.takeTrace().includes('1->3 snapshotRequest t1 snapshot=8/1'));
  assert.deepEqual(cluster.snapshotsInstalled.get(3)?.map((s) => s.index), [8]);
  leader.reportSnapshotResult(3, true);
  cluster.tick(1, 5);
  cluster.deliverAll();
  assert.equal(cluster.node(3).lastIndex, 11);
  assert.equal(cluster.node(3).commitIndex, 11);
  assert.deepEqual(cluster.appliedCommands(3), ['v7', 'v8', 'v9'], 'only entries after the snapshot are applied from the log');
});

test('compaction keeps a tail for slow followers and records the membership at the snapshot', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  for (let i = 0; i < 10; i++) cluster.propose(1, `v${i}`);
  cluster.deliverAll();
  cluster.node(1).compact(10, 4);
  assert.equal(cluster.node(1).firstIndex, 7);
});
