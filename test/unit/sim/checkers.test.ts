// Each safety checker flags a synthetic violation and accepts a correct history.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, Index, Membership, NodeId, Term } from '../../../src/raft/types.js';
import { SafetyChecker, type ClusterView } from '../../sim/checkers.js';
import { encodeCommand } from '../../sim/kv.js';

function put(index: Index, term: Term, value: string): Entry {
  return { kind: 'command', index, term, data: encodeCommand({ op: 'put', key: 'k', value, opId: index * 1000 + term }) };
}

function membership(voters: readonly NodeId[], learners: readonly NodeId[] = []): Membership {
  return {
    members: [
      ...voters.map((id) => ({ id, role: 'voter' as const, peerAddr: '', httpAddr: '' })),
      ...learners.map((id) => ({ id, role: 'learner' as const, peerAddr: '', httpAddr: '' })),
    ],
  };
}

/** A cluster founded by three voters whose durable logs are given as maps index -> term. */
function makeChecker(durable: Record<NodeId, Record<Index, Term>> = {}): SafetyChecker {
  const view: ClusterView = {
    durablyHolds: (id, index, term) => durable[id]?.[index] === term,
  };
  return new SafetyChecker(view, () => 0, 20, membership([1, 2, 3]));
}

function config(index: Index, term: Term, voters: readonly NodeId[], learners: readonly NodeId[] = []): Entry {
  return { kind: 'config', index, term, membership: membership(voters, learners) };
}

function properties(checker: SafetyChecker): string[] {
  return checker.violations.map((v) => v.property);
}

test('electionSafety: two leaders in one term are flagged, one leader per term is fine', () => {
  const good = makeChecker();
  good.observeLeader(1, 3);
  good.observeLeader(1, 3);
  good.observeLeader(2, 4);
  assert.deepEqual(properties(good), []);
  const bad = makeChecker();
  bad.observeLeader(1, 3);
  bad.observeLeader(2, 3);
  assert.deepEqual(properties(bad), ['electionSafety']);
});

test('voteOnce: two candidates voted for in one term are flagged', () => {
  const checker = makeChecker();
  checker.observeVoteGranted(1, 5, 2);
  checker.observeVoteGranted(1, 5, 2);
  checker.observeVoteGranted(1, 6, 3);
  assert.deepEqual(properties(checker), []);
  checker.observeVoteGranted(1, 6, 2);
  assert.deepEqual(properties(checker), ['voteOnce']);
});

test('logMatching: the same index and term with different commands is flagged', () => {
  const good = makeChecker();
  good.observePersist(1, [put(1, 1, 'a'), put(2, 1, 'b')], 0);
  good.observePersist(2, [put(1, 1, 'a')], 0);
  good.observePersist(2, [put(2, 1, 'b'), put(3, 2, 'c')], 1);
  good.observePersist(3, [put(2, 2, 'x')], 1); // another term at index 2 is another entry
  assert.deepEqual(properties(good), []);
  const bad = makeChecker();
  bad.observePersist(1, [put(1, 1, 'a'), put(2, 1, 'b')], 0);
  bad.observePersist(2, [put(1, 1, 'a'), put(2, 1, 'not b')], 0);
  assert.deepEqual(properties(bad), ['logMatching']);
});

test('logMatching: the same entry after different previous terms is flagged', () => {
  const checker = makeChecker();
  checker.observePersist(1, [put(3, 2, 'c')], 1);
  checker.observePersist(2, [put(3, 2, 'c')], undefined); // compacted: unknown, not a conflict
  assert.deepEqual(properties(checker), []);
  checker.observePersist(3, [put(3, 2, 'c')], 2);
  assert.deepEqual(properties(checker), ['logMatching']);
});

test('termsNonDecreasing: a log whose terms go down is flagged', () => {
  const checker = makeChecker();
  checker.observePersist(1, [put(1, 2, 'a'), put(2, 1, 'b')], 0);
  assert.ok(properties(checker).includes('termsNonDecreasing'));
});

test('leaderCompleteness: a new leader without an entry committed in an earlier term is flagged', () => {
  const checker = makeChecker();
  checker.observeLeaderCommit(1, 2, 5, 2);
  // A leader of term 3 holding entry 5 of term 2 is fine; a leader of term 1 elected late need not.
  checker.observeNewLeader(2, 3, (index) => (index === 5 ? 2 : undefined), 0);
  checker.observeNewLeader(3, 1, () => undefined, 0);
  assert.deepEqual(properties(checker), []);
  // Compacted into its snapshot counts as held.
  checker.observeNewLeader(3, 4, () => undefined, 5);
  assert.deepEqual(properties(checker), []);
  checker.observeNewLeader(1, 5, (index) => (index === 5 ? 1 : undefined), 0);
  assert.deepEqual(properties(checker), ['leaderCompleteness']);
});

test('leaderCommitsOwnTerm: a leader counting replicas of an older term\'s entry is flagged', () => {
  const checker = makeChecker();
  checker.observeLeaderCommit(1, 3, 7, 3);
  assert.deepEqual(properties(checker), []);
  checker.observeLeaderCommit(1, 3, 9, 2);
  assert.deepEqual(properties(checker), ['leaderCommitsOwnTerm']);
});

test('stateMachineSafety: two nodes applying different entries at one index is flagged', () => {
  const durable = { 1: { 1: 1 }, 2: { 1: 1 }, 3: { 1: 1 } };
  const good = makeChecker(durable);
  good.observeLeaderCommit(1, 1, 1, 1, [1, 2, 3]);
  good.observeApply(1, put(1, 1, 'a'));
  good.observeApply(2, put(1, 1, 'a'));
  assert.deepEqual(properties(good), []);
  const bad = makeChecker(durable);
  bad.observeLeaderCommit(1, 1, 1, 1, [1, 2, 3]);
  bad.observeApply(1, put(1, 1, 'a'));
  bad.observeApply(2, put(1, 1, 'b'));
  assert.deepEqual(properties(bad), ['stateMachineSafety']);
});

test('committedOnMajority: a leader committing what only a minority of its voters durably holds is flagged', () => {
  const good = makeChecker({ 1: { 1: 1 }, 2: { 1: 1 } });
  good.observeLeaderCommit(1, 1, 1, 1, [1, 2, 3]);
  assert.deepEqual(properties(good), []);
  const bad = makeChecker({ 1: { 1: 1 }, 2: { 1: 2 } });
  bad.observeLeaderCommit(1, 1, 1, 1, [1, 2, 3]);
  assert.deepEqual(properties(bad), ['committedOnMajority']);
});

test('committedOnMajority: only the voters of the leader\'s configuration count, never learners', () => {
  // Voters {1,2} plus learners 4 and 5: the leader and both learners hold the entry, voter 2 does not.
  const durable = { 1: { 7: 2 }, 4: { 7: 2 }, 5: { 7: 2 } };
  const bad = makeChecker(durable);
  bad.observeLeaderCommit(1, 2, 7, 2, [1, 2]);
  assert.deepEqual(properties(bad), ['committedOnMajority']);
  // Once 4 and 5 are voters {1,4,5}, the same holders are a majority.
  const good = makeChecker(durable);
  good.observeLeaderCommit(1, 2, 7, 2, [1, 4, 5]);
  assert.deepEqual(properties(good), []);
});

test('committedOnMajority: applying an entry no leader has committed is flagged', () => {
  const checker = makeChecker({ 1: { 1: 1, 2: 1 }, 2: { 1: 1, 2: 1 } });
  checker.observeLeaderCommit(1, 1, 1, 1, [1, 2, 3]);
  checker.observeApply(2, put(1, 1, 'a'));
  assert.deepEqual(properties(checker), []);
  checker.observeApply(2, put(2, 1, 'b'));
  assert.deepEqual(properties(checker), ['committedOnMajority']);
});

test('leaderIsVoter and electedByMajority: a leader must be a voter elected by a majority of its voters', () => {
  const checker = makeChecker();
  checker.observeVoteGranted(2, 4, 1);
  checker.observeNewLeader(1, 4, () => undefined, 0, [1, 2, 3]);
  assert.deepEqual(properties(checker), []);
  // A learner (not among its own configuration's voters) becoming leader.
  checker.observeNewLeader(6, 5, () => undefined, 0, [1, 2, 3]);
  assert.deepEqual(properties(checker), ['leaderIsVoter']);
  // Elected with the votes of learners: one voter (itself) of three.
  const learnerVotes = makeChecker();
  learnerVotes.observeVoteGranted(4, 6, 1);
  learnerVotes.observeVoteGranted(5, 6, 1);
  learnerVotes.observeNewLeader(1, 6, () => undefined, 0, [1, 2, 3]);
  assert.deepEqual(properties(learnerVotes), ['electedByMajority']);
});

test('snapshotMembership: a snapshot must record the configuration in force at its index', () => {
  const checker = makeChecker({ 1: { 1: 1, 2: 1, 3: 1 }, 2: { 1: 1, 2: 1, 3: 1 } });
  checker.observeLeaderCommit(1, 1, 3, 1, [1, 2, 3]);
  checker.observeApply(1, put(1, 1, 'a'));
  checker.observeApply(1, config(2, 1, [1, 2, 3], [4]));
  checker.observeApply(1, put(3, 1, 'b'));
  checker.observeSnapshotMembership(1, 'took a snapshot', 1, membership([1, 2, 3]));
  checker.observeSnapshotMembership(1, 'took a snapshot', 3, membership([1, 2, 3], [4]));
  assert.deepEqual(properties(checker), []);
  // A joining node bootstrapped with an empty membership, snapshotting before its config entry.
  checker.observeSnapshotMembership(4, 'took a snapshot', 1, membership([]));
  assert.deepEqual(properties(checker), ['snapshotMembership']);
});

test('replicaState: two different images at one index are flagged', () => {
  const checker = makeChecker();
  checker.observeImage(1, 'took', 10, 'abc');
  checker.observeImage(2, 'installed', 10, 'abc');
  checker.observeImage(2, 'took', 11, 'def');
  assert.deepEqual(properties(checker), []);
  checker.observeImage(3, 'installed', 11, 'half');
  assert.deepEqual(properties(checker), ['replicaState']);
});

test('an ignored property is not reported', () => {
  const checker = makeChecker();
  checker.ignore('electionSafety');
  checker.observeLeader(1, 3);
  checker.observeLeader(2, 3);
  assert.deepEqual(properties(checker), []);
});

test('monotonic: commit index, applied index and term going back within an incarnation are flagged', () => {
  const checker = makeChecker();
  checker.observeProgress(1, 2, 10, 8);
  checker.observeProgress(1, 2, 12, 12);
  checker.observeStart(1, { term: 2, commitIndex: 3, appliedIndex: 0 }); // a restart may go back
  checker.observeProgress(1, 2, 3, 0);
  assert.deepEqual(properties(checker), []);
  checker.observeProgress(1, 1, 2, 0);
  assert.deepEqual(properties(checker), ['monotonic', 'monotonic']);
});

test('acknowledgedWriteLost: an acknowledged write missing from the final log is flagged', () => {
  const log: Record<Index, Term> = { 1: 1, 2: 1, 3: 2 };
  const holds = (index: Index, term: Term): boolean => log[index] === term;
  const good = makeChecker();
  good.checkAcknowledged([{ opId: 1, index: 2, term: 1 }, { opId: 2, index: 3, term: 2 }], holds, 3);
  assert.deepEqual(properties(good), []);
  const bad = makeChecker();
  bad.checkAcknowledged([{ opId: 1, index: 3, term: 1 }, { opId: 2, index: 4, term: 2 }], holds, 3);
  assert.deepEqual(properties(bad), ['acknowledgedWriteLost', 'acknowledgedWriteLost']);
});

test('the checker stops recording after its limit and calls onViolation for each', () => {
  const view: ClusterView = { durablyHolds: () => true };
  const checker = new SafetyChecker(view, () => 42, 2);
  let calls = 0;
  checker.onViolation = () => calls++;
  for (let term = 1; term <= 5; term++) {
    checker.observeLeader(1, term);
    checker.observeLeader(2, term);
  }
  assert.equal(checker.violations.length, 2);
  assert.equal(calls, 2);
  assert.equal(checker.violations[0]?.time, 42);
});
