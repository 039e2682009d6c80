// History retention policy: the compaction target arithmetic, and the proposer's rules (leader
// only, one proposal in flight, bounded steps, waits for physical compaction, never throws into
// the Ready loop), driven against a model store that applies what it proposes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/logger.js';
import type { KvCommand } from '../../../src/kvstore/commands.js';
import type { CommandResult } from '../../../src/kvstore/results.js';
import { HistoryRetention, retentionSlack, retentionTarget, STEP_REVISIONS_MAX } from '../../../src/server/history-retention.js';

test('retentionTarget: nothing within the retention; beyond it, compact to leave retention minus slack', () => {
  // [revision, compactedRevision, retention, expected]
  const table: [number, number, number, number | null][] = [
    [1, 0, 1, null], // the empty store
    [100, 0, 100, null], // revisions 1..100 readable: exactly the retention
    [101, 0, 100, 101 - 100 + 1 + 10], // one over: leave 90
    [101, 1, 100, 12],
    [1000, 901, 100, null], // 901..1000: exactly the retention
    [1000, 900, 100, 911], // 900..1000: one over
    [5, 0, 1, 5], // retention 1: only the current revision stays readable
    [10_000_000, 0, 100_000, 1 + STEP_REVISIONS_MAX], // far behind: one bounded step
    [10_000_000, 9_800_000, 100_000, 9_810_000],
  ];
  for (const [revision, compactedRevision, retention, expected] of table) {
    assert.equal(retentionTarget({ revision, compactedRevision }, retention), expected, `revision ${revision}, compacted ${compactedRevision}, retention ${retention}`);
  }
  assert.equal(retentionSlack(100_000), 10_000);
  assert.equal(retentionSlack(1_000_000), STEP_REVISIONS_MAX);
  assert.equal(retentionSlack(9), 0);
  assert.throws(() => retentionTarget({ revision: 5, compactedRevision: 0 }, 0), RangeError);
});

test('retentionTarget, exhaustively on small stores: readable revisions end within [retention - slack, retention], one step at a time', () => {
  for (let retention = 1; retention <= 30; retention++) {
    for (let revision = 1; revision <= 80; revision++) {
      for (let compacted = 0; compacted <= revision; compacted++) {
        const target = retentionTarget({ revision, compactedRevision: compacted }, retention);
        const readable = revision - Math.max(compacted, 1) + 1;
        if (target === null) {
          assert.ok(readable <= retention, `${revision}/${compacted}/${retention}: over the retention, yet no target`);
          continue;
        }
        assert.ok(target > compacted && target <= revision, 'a target moves forward and never past the store');
        assert.ok(target - Math.max(compacted, 1) <= STEP_REVISIONS_MAX, 'one bounded step');
        const left = revision - target + 1;
        assert.ok(left >= retention - retentionSlack(retention), `${revision}/${compacted}/${retention}: leaves ${left}, too few`);
        assert.ok(left <= retention || target - Math.max(compacted, 1) === STEP_REVISIONS_MAX, 'leaves at most the retention (unless stepping)');
      }
    }
  }
});

/** A store that applies the compactions proposed to it (after `lagWrites` more writes), like a log would. */
class ModelStore {
  revision = 1;
  compactedRevision = 0;
  pending = false;
  leader = true;
  readonly proposals: KvCommand[] = [];
  private waiting: { command: KvCommand; resolve: (result: CommandResult) => void; reject: (error: Error) => void }[] = [];

  propose(command: KvCommand): Promise<CommandResult> {
    this.proposals.push(command);
    return new Promise((resolve, reject) => this.waiting.push({ command, resolve, reject }));
  }

  /** Commit and apply everything proposed so far. */
  applyProposed(): void {
    for (const { command, resolve } of this.waiting.splice(0)) {
      assert.equal(command.op, 'compact');
      if (command.op !== 'compact') continue;
      if (command.revision <= this.compactedRevision || command.revision > this.revision) {
        resolve({ kind: 'error', code: 'COMPACTED', message: 'no' });
        continue;
      }
      this.compactedRevision = command.revision;
      resolve({ kind: 'compact', compactedRevision: command.revision, revision: this.revision });
    }
  }

  failProposed(): void {
    for (const { reject } of this.waiting.splice(0)) reject(new Error('not the leader'));
  }
}

function retentionFor(store: ModelStore, retentionRevisions: number): HistoryRetention {
  return new HistoryRetention({
    retentionRevisions,
    logger: silentLogger,
    isLeader: () => store.leader,
    state: () => ({ revision: store.revision, compactedRevision: store.compactedRevision }),
    compactionPending: () => store.pending,
    propose: (command) => store.propose(command),
    nowMs: () => 42,
  });
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('the leader keeps history within the retention under a steady write load, one proposal at a time', async () => {
  const store = new ModelStore();
  const retention = retentionFor(store, 50);
  for (let write = 0; write < 2000; write++) {
    store.revision++;
    retention.afterReady();
    retention.afterReady(); // a second Ready before the first compaction commits: no second proposal
    assert.ok(store.proposals.length <= retention.proposed);
    if (write % 3 === 0) {
      store.applyProposed();
      await settle();
    }
  }
  store.applyProposed();
  await settle();
  retention.afterReady();
  store.applyProposed();
  const readable = store.revision - store.compactedRevision + 1;
  assert.ok(readable <= 50 && readable >= 50 - retentionSlack(50), `readable ${readable}`);
  // One compaction per slack + 1 writes or so, not one per write.
  assert.ok(store.proposals.length < 2000 / 3, `${store.proposals.length} proposals`);
  for (const command of store.proposals) assert.deepEqual(Object.keys(command).sort(), ['op', 'proposedAtMs', 'revision', 'v']);
});

test('only the leader proposes, and a failed proposal is retried at a later Ready', async () => {
  const store = new ModelStore();
  store.revision = 500;
  store.leader = false;
  const retention = retentionFor(store, 100);
  retention.afterReady();
  assert.equal(store.proposals.length, 0, 'a follower never proposes');
  store.leader = true;
  retention.afterReady();
  assert.equal(store.proposals.length, 1);
  store.failProposed();
  await settle();
  retention.afterReady();
  assert.equal(store.proposals.length, 2, 'retried after the failure');
  store.applyProposed();
  await settle();
  assert.equal(store.compactedRevision, 500 - 100 + 1 + 10);
});

test('the next step waits until the last one is removed physically', async () => {
  const store = new ModelStore();
  store.revision = 3 * STEP_REVISIONS_MAX + 100;
  const retention = retentionFor(store, 100);
  retention.afterReady();
  store.applyProposed();
  await settle();
  assert.equal(store.compactedRevision, 1 + STEP_REVISIONS_MAX);
  store.pending = true;
  retention.afterReady();
  assert.equal(store.proposals.length, 1, 'no new step while compaction is pending');
  store.pending = false;
  retention.afterReady();
  store.applyProposed();
  await settle();
  assert.equal(store.compactedRevision, 1 + 2 * STEP_REVISIONS_MAX);
  retention.stop();
  retention.afterReady();
  assert.equal(store.proposals.length, 2, 'stopped: nothing more');
});
