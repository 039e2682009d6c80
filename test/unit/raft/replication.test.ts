// Log replication and the commit rule (Raft paper 5.3, 5.4.2), and the durability contract of
// Ready: what may be sent before local persistence and what only after it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftNode } from '../../../src/raft/node.js';
import { TestCluster } from './harness.js';
import type { Message } from '../../../src/raft/types.js';

test('the leader overwrites a follower\'s conflicting suffix, skipping a whole term per round trip (5.3)', () => {
  // Node 3 holds many entries of a term-2 leader that never committed them.
  const stale = Array.from({ length: 50 }, (_, i) => `${i + 2}/2`);
  const cluster = new TestCluster([1, 2, 3], {
    logs: {
      1: { term: 3, entries: ['1/1', '2/3'], commit: 1 },
      2: { term: 3, entries: ['1/1', '2/3'], commit: 1 },
      3: { term: 2, entries: ['1/1', ...stale], commit: 1 },
    },
  });
  cluster.elect(1);
  const rejections = cluster.takeTrace().filter((line) => line.startsWith('3->1 appendResponse') && line.includes('reject'));
  assert.equal(rejections.length, 1, `one rejection carries the hint that skips term 2:\n${rejections.join('\n')}`);
  assert.deepEqual(cluster.node(3).entries(1, 3).map((e) => `${e.index}/${e.term}`), ['1/1', '2/3', '3/4']);
  assert.equal(cluster.node(3).lastIndex, 3, 'the stale suffix is gone');
  assert.equal(cluster.node(3).commitIndex, 3);
});

test('a leader never commits an entry of an earlier term by counting replicas (5.4.2, Figure 8)', () => {
  // Figure 8 (c): S1 leads term 4 and has replicated its term-2 entry at index 2 to a majority
  // (S1, S2, S3), but S5 holds a term-3 entry at index 2 and could still be elected by S4 and S5
  // ... and S3 and S2 only if the term-2 entry were treated as committed. It must not be.
  const cluster = new TestCluster([1, 2, 3, 4, 5], {
    configure: (c) => ({ ...c, maxAppendEntries: 1 }),
    logs: {
      1: { term: 3, entries: ['1/1', '2/2'], commit: 1 },
      2: { term: 3, entries: ['1/1', '2/2'], commit: 1 },
      3: { term: 3, votedFor: 5, entries: ['1/1'], commit: 1 },
      4: { term: 3, votedFor: 5, entries: ['1/1'], commit: 1 },
      5: { term: 3, votedFor: 5, entries: ['1/1', '2/3'], commit: 1 },
    },
  });
  const cutOff = (m: Message): boolean => m.to === 5 || m.from === 5
    || (m.type === 'appendRequest' && m.to === 4)
    // S3 may receive the term-2 entry, but nothing after it.
    || (m.type === 'appendRequest' && m.to === 3 && cluster.node(3).lastIndex >= 2);
  cluster.tick(1, 100);
  cluster.deliverAll((m) => !cutOff(m));
  assert.equal(cluster.node(1).role, 'leader');
  assert.equal(cluster.node(1).term, 4);
  assert.equal(cluster.node(3).termAt(2), 2, 'the term-2 entry reached S3: S1, S2 and S3 hold it');
  assert.equal(cluster.node(1).commitIndex, 1, 'index 2 is on a majority but of an older term: not committed');
  // Once an entry of the leader's own term reaches the majority, everything before it commits. The
  // dropped append is noticed at the next heartbeat, and sent again.
  cluster.tick(1, 5);
  cluster.deliverAll((m) => m.to !== 5 && m.from !== 5);
  assert.equal(cluster.node(1).commitIndex, 3);
});

test('a follower acknowledges entries only after persisting them; a leader sends before its own fsync', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  const leader = cluster.node(1);
  assert.ok(leader.propose(new TextEncoder().encode('x')).ok);
  const leaderReady = leader.ready();
  assert.deepEqual(leaderReady.entries.map((e) => e.index), [2]);
  const appends = leaderReady.messagesNow.filter((m) => m.type === 'appendRequest');
  assert.equal(appends.length, 2, 'appends leave in parallel with the leader\'s own write');
  // The followers store and answer; the leader has not finished its fsync.
  for (const append of appends) {
    const follower = cluster.node(append.to);
    follower.step(append);
    const followerReady = follower.ready();
    assert.deepEqual(followerReady.entries.map((e) => e.index), [2]);
    assert.equal(followerReady.messagesNow.length, 0);
    assert.deepEqual(followerReady.messagesAfterPersist.map((m) => m.type), ['appendResponse']);
    follower.advance();
    for (const response of followerReady.messagesAfterPersist) leader.step(response);
  }
  assert.equal(leader.commitIndex, 2, 'two followers are a majority without the leader');
  assert.equal(leaderReady.committedEntries.length, 0);
  leader.advance();
});

test('the leader counts itself toward a commit only after its own fsync', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  const leader = cluster.node(1);
  leader.propose(new TextEncoder().encode('x'));
  const leaderReady = leader.ready();
  const toTwo = leaderReady.messagesNow.find((m) => m.type === 'appendRequest' && m.to === 2) as Message;
  const follower = cluster.node(2);
  follower.step(toTwo);
  const followerReady = follower.ready();
  follower.advance();
  for (const response of followerReady.messagesAfterPersist) leader.step(response);
  assert.equal(leader.commitIndex, 1, 'one follower plus an unpersisted leader is not a majority');
  leader.advance();
  assert.equal(leader.commitIndex, 2, 'after its fsync the leader counts itself');
});

test('a follower refuses proposals and names the leader; a leader refuses past its budget', () => {
  const cluster = new TestCluster([1, 2, 3], { configure: (c) => ({ ...c, maxUncommittedBytes: 1000 }) });
  cluster.elect(1);
  assert.deepEqual(cluster.node(2).propose(new Uint8Array(10)), { ok: false, reason: 'notLeader', leaderId: 1 });
  cluster.isolated.add(2);
  cluster.isolated.add(3);
  let accepted = 0;
  let result = cluster.node(1).propose(new Uint8Array(100));
  while (result.ok && accepted < 100) {
    accepted++;
    result = cluster.node(1).propose(new Uint8Array(100));
  }
  assert.deepEqual(result, { ok: false, reason: 'overloaded' });
  assert.ok(accepted >= 5 && accepted <= 10, `accepted ${accepted} proposals of ~124 bytes under a 1000-byte budget`);
});

test('a replicating follower gets at most maxInflightAppends unacknowledged messages', () => {
  const cluster = new TestCluster([1, 2, 3], { configure: (c) => ({ ...c, maxInflightAppends: 2, maxAppendEntries: 1 }) });
  cluster.elect(1);
  cluster.takeTrace();
  for (let i = 0; i < 5; i++) {
    cluster.node(1).propose(new TextEncoder().encode(`v${i}`));
    cluster.flush();
  }
  const toTwo = cluster.queue.filter((m) => m.type === 'appendRequest' && m.to === 2 && m.entries.length > 0);
  assert.equal(toTwo.length, 2);
  cluster.deliverAll();
  assert.equal(cluster.node(2).lastIndex, 6, 'acknowledgements reopen the window until all is sent');
  assert.equal(cluster.node(2).commitIndex, 6);
});

test('commands are applied in log order on every node, exactly once', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  for (let i = 0; i < 20; i++) {
    cluster.propose(1, `c${i}`);
    if (i % 3 === 0) cluster.deliverAll();
  }
  cluster.deliverAll();
  const expected = Array.from({ length: 20 }, (_, i) => `c${i}`);
  for (const id of [1, 2, 3]) assert.deepEqual(cluster.appliedCommands(id), expected, `node ${id}`);
});

test('ready() twice without advance() is a bug the core refuses', () => {
  const node = new TestCluster([1]).node(1) as RaftNode;
  node.tick();
  for (let i = 0; i < 40; i++) node.tick();
  node.ready();
  assert.throws(() => node.ready(), /before advance/);
});

test('the new commit index rides on the next append: no empty commit-only append while one is in flight, and followers still learn it at once', () => {
  const cluster = new TestCluster([1, 2, 3]);
  cluster.elect(1);
  cluster.deliverAll();
  cluster.takeTrace();
  const leader = cluster.node(1);
  cluster.propose(1, 'a');
  cluster.deliverOnly((m) => m.type === 'appendRequest'); // a reaches both followers; their answers wait
  cluster.propose(1, 'b'); // b is in flight to both
  const aIndex = leader.lastIndex - 1;
  cluster.deliverOnly((m) => m.type === 'appendResponse' && m.from === 2 && m.matchIndex === aIndex);
  assert.equal(leader.commitIndex, aIndex, 'a commits with follower 2');
  cluster.deliverAll();
  const appends = cluster.takeTrace().filter((line) => line.includes('appendRequest'));
  const empty = appends.filter((line) => line.includes('entries=[]'));
  // b's append was still in flight when a committed: nothing was sent for a's commit alone. Each
  // follower gets one empty append, for b's commit, after answering b.
  assert.deepEqual(empty.map((line) => line.split(' ')[0]).sort(), ['1->2', '1->3'], `appends:\n${appends.join('\n')}`);
  assert.equal(leader.commitIndex, leader.lastIndex);
  for (const id of [2, 3]) assert.equal(cluster.node(id).commitIndex, leader.commitIndex, `follower ${id} learned the commit without waiting for a heartbeat`);
});
