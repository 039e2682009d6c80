// Whole simulated runs: determinism, a clean run of the real core, and deliberately broken cores
// that the simulator must catch.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftNode } from '../../../src/raft/node.js';
import type { Index, RaftConfig, RaftInitialState, Ready, VoteRequest } from '../../../src/raft/types.js';
import { runFailoverTrial } from '../../sim/failover.js';
import { runSeed, type RunOptions } from '../../sim/run.js';
import type { NodeFactory } from '../../sim/runtime.js';

test('the same seed gives the identical trace and stats', () => {
  const first = runSeed(11, { trace: true, chaosMs: 3000 });
  const second = runSeed(11, { trace: true, chaosMs: 3000 });
  assert.ok(first.trace.length > 1000, `a trace of ${first.trace.length} lines`);
  assert.deepEqual(second.trace, first.trace);
  assert.deepEqual(second.stats, first.stats);
  assert.deepEqual(second.violations, first.violations);
  const other = runSeed(12, { trace: true, chaosMs: 3000 });
  assert.notDeepEqual(other.trace, first.trace);
});

test('tracing does not change the run', () => {
  const traced = runSeed(5, { trace: true, chaosMs: 2000 });
  const plain = runSeed(5, { chaosMs: 2000 });
  assert.deepEqual(plain.stats, traced.stats);
  assert.equal(plain.trace.length, 0);
});

test('a run of the real core under faults finds no violation and a linearizable history', () => {
  for (const seed of [1, 2, 3, 4]) {
    const result = runSeed(seed, { chaosMs: 4000 });
    assert.deepEqual(result.violations, [], `seed ${seed}`);
    assert.equal(result.stats.lincheck, 'linearizable');
    assert.ok(result.stats.operations.ok > 20, `seed ${seed}: ${result.stats.operations.ok} operations ok`);
    assert.notEqual(result.stats.recoveryMs, null);
  }
});

test('a calm run commits steadily and snapshots when asked', () => {
  const result = runSeed(21, { chaosMs: 3000, faults: false, snapshotIntervalEntries: 20, nodeCount: 3 });
  assert.deepEqual(result.violations, []);
  assert.equal(result.stats.crashes, 0);
  assert.ok(result.stats.snapshotsTaken > 0);
  assert.ok(result.stats.commitIndexMax > 100, `commit index ${result.stats.commitIndexMax}`);
});

/** Runs seeds from 1 until one shows a violation; returns its properties, or [] if none did. */
function firstViolation(factory: NodeFactory, seedCount: number, options: RunOptions = {}): { seed: number; properties: string[] } | null {
  for (let seed = 1; seed <= seedCount; seed++) {
    const result = runSeed(seed, { chaosMs: 3000, lincheck: false, nodeFactory: factory, ...options });
    if (result.violations.length > 0) return { seed, properties: result.violations.map((v) => v.property) };
  }
  return null;
}

/** Sends votes and acknowledgements before the fsync that they promise. */
class SendsBeforePersist extends RaftNode {
  override ready(): Ready {
    const ready = super.ready();
    return { ...ready, messagesNow: [...ready.messagesNow, ...ready.messagesAfterPersist], messagesAfterPersist: [] };
  }
}

test('a core that answers before persisting is caught', () => {
  const found = firstViolation((config, initial) => new SendsBeforePersist(config, initial), 5);
  assert.ok(found !== null, 'no violation found');
  assert.ok(found.properties.includes('persistBeforePromise'), found.properties.join(','));
});

/** Grants every vote asked for: two leaders per term become possible. */
class VotesTwice extends RaftNode {
  protected override canGrantVote(_request: VoteRequest): boolean {
    return true;
  }
}

test('a core that votes twice in a term is caught', () => {
  const found = firstViolation((config, initial) => new VotesTwice(config, initial), 40, { chaosMs: 6000 });
  assert.ok(found !== null, 'no violation found');
  assert.ok(found.properties.some((p) => p === 'voteOnce' || p === 'electionSafety'), found.properties.join(','));
});

/** Commits entries of earlier terms by counting replicas (the bug of the paper's figure 8). */
class CommitsOldTerms extends RaftNode {
  protected override canCommitByCounting(_index: Index): boolean {
    return true;
  }
}

test('a core that commits earlier terms\' entries by counting is caught', () => {
  const found = firstViolation((config, initial) => new CommitsOldTerms(config, initial), 20, { raftConfig: { maxAppendEntries: 1 } });
  assert.ok(found !== null, 'no violation found');
  assert.ok(found.properties.includes('leaderCommitsOwnTerm'), found.properties.join(','));
});

/** Counts a commit with too few voters: entries get applied before a majority holds them. */
class SmallQuorum extends RaftNode {
  protected override quorumMembers(): number[] {
    const voters = super.quorumMembers();
    return voters.slice(0, Math.max(1, voters.length - 2));
  }
}

test('a core that commits without a majority is caught', () => {
  const found = firstViolation((config: RaftConfig, initial: RaftInitialState) => new SmallQuorum(config, initial), 10);
  assert.ok(found !== null, 'no violation found');
  assert.ok(found.properties.includes('committedOnMajority') || found.properties.includes('stateMachineSafety'), found.properties.join(','));
});

/** Serves ReadIndex reads without the heartbeat round that proves it still leads. */
class ReadsWithoutQuorumRound extends RaftNode {
  protected override readNeedsQuorumRound(): boolean {
    return false;
  }
}

test('a core that serves reads without confirming its leadership is caught by the linearizability check', () => {
  // Without check-quorum a cut-off leader keeps leading, and answers reads from a stale state.
  const found = firstViolation((config, initial) => new ReadsWithoutQuorumRound(config, initial), 25, {
    chaosMs: 8000, lincheck: true, readIndexProbability: 1, raftConfig: { checkQuorum: false },
  });
  assert.ok(found !== null, 'no violation found');
  assert.deepEqual(found.properties, ['linearizability']);
});

test('a failover trial measures a plausible, deterministic failover', () => {
  const trial = runFailoverTrial(3);
  assert.ok(trial.failoverMs !== null);
  // At least the minimum election timeout (150 ms), and well within a few election rounds.
  assert.ok(trial.failoverMs >= 150 && trial.failoverMs < 2000, `${trial.failoverMs} ms`);
  assert.ok(trial.rounds >= 1);
  assert.deepEqual(runFailoverTrial(3), trial);
});
