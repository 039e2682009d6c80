// Leader election, each test tied to the sentences of the Raft paper (section 5.2, 5.4.1) and
// thesis (9.6 pre-vote, 6.2 check-quorum) it checks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScriptedRandom, TestCluster } from './harness.js';
import type { VoteRequest } from '../../../src/raft/types.js';

test('a follower that hears nothing for an election timeout pre-votes, then wins a real election (5.2, thesis 9.6)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  assert.deepEqual(cluster.takeTrace().slice(0, 8), [
    '1->2 voteRequest t1 pre last=0/0',
    '1->3 voteRequest t1 pre last=0/0',
    '2->1 voteResponse t1 pre granted',
    '3->1 voteResponse t1 pre granted',
    '1->2 voteRequest t1 last=0/0',
    '1->3 voteRequest t1 last=0/0',
    '2->1 voteResponse t1 granted',
    '3->1 voteResponse t1 granted',
  ]);
  assert.equal(cluster.node(1).role, 'leader');
  assert.equal(cluster.node(1).term, 1);
  assert.equal(cluster.node(2).leaderId, 1);
});

test('a pre-vote round changes no term on anyone (thesis 9.6)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.tick(1, 100);
  assert.equal(cluster.node(1).role, 'preCandidate');
  cluster.deliverOnly((m) => m.type === 'voteRequest');
  assert.equal(cluster.node(2).term, 0, 'granting a pre-vote must not raise the voter\'s term');
  assert.equal(cluster.node(1).term, 0, 'a pre-candidate keeps its term');
});

test('a new leader appends a no-op and commits it once a majority stored it (paper section 8)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  for (const id of [1, 2, 3]) {
    assert.equal(cluster.node(id).commitIndex, 1, `node ${id} commit`);
    const applied = cluster.applied.get(id) ?? [];
    assert.deepEqual(applied.map((e) => `${e.index}/${e.term}/${e.kind}`), ['1/1/noop']);
  }
});

test('each server votes for at most one candidate in a term (5.2)', () => {
  const cluster = new TestCluster([1, 2, 3], { configure: (c) => ({ ...c, preVote: false }) });
  const request = (from: number): VoteRequest => ({ type: 'voteRequest', from, to: 3, term: 1, preVote: false, lastLogIndex: 0, lastLogTerm: 0, transfer: false });
  cluster.node(3).step(request(1));
  cluster.node(3).step(request(2));
  cluster.node(3).step(request(1)); // a repeated request from the chosen candidate is granted again
  const ready = cluster.node(3).ready();
  assert.deepEqual(ready.messagesAfterPersist.map((m) => m.type === 'voteResponse' && `${m.to}:${m.granted}`), ['1:true', '2:false', '1:true']);
  assert.deepEqual(ready.hardState, { term: 1, votedFor: 1, commitIndex: 0 });
  assert.equal(ready.messagesNow.length, 0, 'a vote is never sent before the vote is persisted');
});

test('a voter denies its vote to a candidate whose log is less up-to-date (5.4.1)', () => {
  // Node 3 draws a long election timeout, so it outlives its leader lease without campaigning.
  const cluster = new TestCluster([1, 2, 3], { configure: (c) => (c.id === 3 ? { ...c, random: new ScriptedRandom(Array(20).fill(14)) } : c) });
  cluster.elect(1);
  cluster.propose(1, 'x');
  cluster.deliverAll();
  // Node 3 missed nothing; make node 2 miss the next entry, then let it campaign.
  cluster.isolated.add(2);
  cluster.propose(1, 'y');
  cluster.deliverAll();
  cluster.isolated.delete(2);
  cluster.isolated.add(1);
  cluster.takeTrace();
  cluster.tick(3, 20);
  cluster.tick(2, 15);
  cluster.deliverAll();
  const trace = cluster.takeTrace();
  assert.ok(trace.includes('3->2 voteResponse t1 pre rejected'), trace.join('\n'));
  assert.notEqual(cluster.node(2).role, 'leader');
});

test('a node cut off and rejoining does not depose a healthy leader (pre-vote, thesis 9.6)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.isolated.add(3);
  for (let i = 0; i < 10; i++) cluster.tick(3, 40); // many election timeouts alone
  assert.equal(cluster.node(3).term, 1, 'pre-vote keeps the term of a cut-off node from climbing');
  cluster.isolated.delete(3);
  cluster.tick(3, 40);
  cluster.deliverAll();
  assert.equal(cluster.node(1).role, 'leader');
  assert.equal(cluster.node(1).term, 1);
});

test('followers that hear from a leader ignore vote requests of a higher term (leader lease, thesis 4.2.3)', () => {
  const cluster = new TestCluster([1, 2, 3], { configure: (c) => ({ ...c, preVote: false }) });
  cluster.elect(1);
  cluster.node(2).step({ type: 'voteRequest', from: 3, to: 2, term: 5, preVote: false, lastLogIndex: 10, lastLogTerm: 5, transfer: false });
  assert.equal(cluster.node(2).term, 1, 'a follower in lease does not even raise its term');
  cluster.node(2).step({ type: 'voteRequest', from: 3, to: 2, term: 5, preVote: false, lastLogIndex: 10, lastLogTerm: 5, transfer: true });
  assert.equal(cluster.node(2).term, 5, 'a transfer request overrides the lease');
});

test('a leader that cannot reach a majority steps down after an election timeout (check-quorum)', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.isolated.add(1);
  cluster.tick(1, 40);
  assert.equal(cluster.node(1).role, 'follower');
  assert.equal(cluster.node(1).leaderId, 0);
});

test('a single-node cluster elects itself and commits on its own fsync', () => {
  const cluster = new TestCluster([1]);
  cluster.elect(1);
  assert.equal(cluster.node(1).role, 'leader');
  const result = cluster.propose(1, 'alone');
  assert.equal(result.ok, true);
  cluster.flush();
  assert.deepEqual(cluster.appliedCommands(1), ['alone']);
});

test('a split vote ends with a new election after a fresh randomized timeout', () => {
  const cluster = new TestCluster([1, 2, 3, 4], { configure: (c) => ({ ...c, preVote: false }) });
  // 1 and 2 campaign at once and each gets one other vote: nobody has 3 of 4.
  cluster.tick(1, 15);
  cluster.tick(2, 15);
  cluster.deliverAll((m) => !(m.type === 'voteRequest' && ((m.from === 1 && m.to === 4) || (m.from === 2 && m.to === 3))));
  cluster.deliverAll();
  const leaders = [1, 2, 3, 4].filter((id) => cluster.node(id).role === 'leader');
  assert.equal(leaders.length, 0);
  cluster.tick(1, 15);
  cluster.deliverAll();
  assert.equal(cluster.node(1).role, 'leader');
  assert.equal(cluster.node(1).term, 2);
});

test('a candidate with a stale term is told the current term (Figure 2: reply false with currentTerm)', () => {
  const cluster = new TestCluster([1, 2, 3], { configure: (c) => ({ ...c, preVote: false }), logs: { 2: { term: 5, entries: [] } } });
  cluster.node(2).step({ type: 'voteRequest', from: 1, to: 2, term: 3, preVote: false, lastLogIndex: 9, lastLogTerm: 3, transfer: false });
  const ready = cluster.node(2).ready();
  assert.deepEqual(ready.messagesAfterPersist.map((m) => m.type === 'voteResponse' && `${m.term}:${m.granted}`), ['5:false']);
});

test('a follower that may not campaign lets its leader lease run out and then answers candidates', () => {
  // Node 3 is a learner: it never campaigns, but once it has not heard from a leader for an election
  // timeout it must stop ignoring vote requests as if a leader were still in charge.
  const cluster = new TestCluster([1, 2], { learners: [3] });
  cluster.elect(1);
  cluster.isolated.add(1);
  cluster.tick(3, 100);
  cluster.node(3).step({ type: 'voteRequest', from: 2, to: 3, term: 2, preVote: false, lastLogIndex: 5, lastLogTerm: 1, transfer: false });
  assert.equal(cluster.node(3).term, 2, 'the vote request was heard, not ignored under a stale lease');
});
