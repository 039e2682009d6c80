// Membership changes, snapshot transfers cut off midway, and the measurements built on them, in
// simulation with the real core.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeId } from '../../../src/raft/types.js';
import { Cluster } from '../../sim/cluster.js';
import { ms } from '../../sim/events.js';
import { runReadRounds } from '../../sim/readrounds.js';
import { rootRng } from '../../sim/rng.js';
import { runSeed } from '../../sim/run.js';
import type { NodeRuntime } from '../../sim/runtime.js';
import { runTransferTrial } from '../../sim/transfer.js';
import { Workload } from '../../sim/workload.js';

function member(id: NodeId) {
  return { id, peerAddr: `n${id}:7001`, httpAddr: `n${id}:8001` };
}

function leaderOf(cluster: Cluster): NodeRuntime {
  const leader = cluster.leader();
  assert.ok(leader !== undefined && leader.node !== null, 'no leader');
  return leader;
}

function roles(runtime: NodeRuntime): string {
  const node = runtime.node;
  assert.ok(node !== null);
  return [...node.membership.members].sort((a, b) => a.id - b.id).map((m) => `${m.id}${m.role === 'learner' ? 'L' : ''}`).join(',');
}

test('a node joins with an empty disk as a learner, gets a snapshot, and is promoted; one change at a time', () => {
  const rng = rootRng(7);
  const cluster = new Cluster({ nodeCount: 3, rng, trace: false, runtime: { snapshotIntervalEntries: 0 } });
  const workload = new Workload(cluster, rng.fork('workload'), { clientCount: 3 });
  cluster.startAll();
  workload.start();
  cluster.sim.runUntil(ms(1500));
  let leader = leaderOf(cluster);
  // The leader compacts everything: the newcomer can only catch up from a snapshot.
  leader.compactNow(0);
  const id = cluster.allocateId();
  assert.equal(id, 4);
  cluster.provision(id, leader.node);
  assert.equal(cluster.runtime(id).node?.role, 'follower');
  const added = leader.proposeMembershipChange({ kind: 'addLearner', member: member(id) });
  assert.ok(added?.ok === true, JSON.stringify(added));
  // At most one uncommitted change: the next one waits.
  const early = leader.proposeMembershipChange({ kind: 'promote', id });
  assert.deepEqual(early, { ok: false, reason: 'membershipChangePending' });
  cluster.sim.runUntil(cluster.sim.now + ms(500));
  const newcomer = cluster.runtime(id);
  assert.ok(newcomer.stats.snapshotsInstalled >= 1, 'the learner installed a snapshot');
  assert.equal(roles(newcomer), '1,2,3,4L');
  assert.ok(newcomer.stateMachine.appliedIndex >= added.index);
  leader = leaderOf(cluster);
  const promoted = leader.proposeMembershipChange({ kind: 'promote', id });
  assert.ok(promoted?.ok === true, JSON.stringify(promoted));
  cluster.sim.runUntil(cluster.sim.now + ms(500));
  assert.equal(roles(leaderOf(cluster)), '1,2,3,4');
  assert.equal(roles(newcomer), '1,2,3,4');
  assert.deepEqual(cluster.checker.violations, []);
});

test('removing the leader: it keeps leading until the change commits, then steps down for good', () => {
  const rng = rootRng(8);
  const cluster = new Cluster({ nodeCount: 3, rng, trace: false });
  const workload = new Workload(cluster, rng.fork('workload'), { clientCount: 2 });
  cluster.startAll();
  workload.start();
  cluster.sim.runUntil(ms(1000));
  const leader = leaderOf(cluster);
  const removed = leader.proposeMembershipChange({ kind: 'remove', id: leader.id });
  assert.ok(removed?.ok === true);
  cluster.sim.runUntil(cluster.sim.now + ms(1000));
  cluster.retire(leader.id);
  cluster.sim.runUntil(cluster.sim.now + ms(1000));
  const next = leaderOf(cluster);
  assert.notEqual(next.id, leader.id);
  assert.equal(roles(next).split(',').length, 2);
  assert.deepEqual(cluster.checker.violations, []);
});

/** Provisioned ids and retirements from a run's trace, in order. */
function lifecycle(trace: readonly string[]): { provisioned: NodeId[]; retired: NodeId[]; reused: NodeId[] } {
  const provisioned: NodeId[] = [];
  const retired: NodeId[] = [];
  const reused: NodeId[] = [];
  for (const line of trace) {
    const joined = /\bn(\d+) provisioned with an empty disk/.exec(line);
    if (joined !== null) {
      const id = Number(joined[1]);
      if (retired.includes(id) || provisioned.includes(id)) reused.push(id);
      provisioned.push(id);
    }
    const gone = /\bn(\d+) retired/.exec(line);
    if (gone !== null) retired.push(Number(gone[1]));
  }
  return { provisioned, retired, reused };
}

test('the operator grows, shrinks and replaces members under faults; removed ids are never reused', () => {
  let reached = 0;
  let retired = 0;
  let learnersAdded = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const result = runSeed(seed, { chaosMs: 6000, membership: seed % 2 === 0 ? 'aggressive' : 'steady', trace: true });
    assert.deepEqual(result.violations, [], `seed ${seed}`);
    assert.equal(result.stats.lincheck, 'linearizable');
    const { provisioned, reused } = lifecycle(result.trace);
    assert.deepEqual(reused, [], `seed ${seed}: ids reused`);
    // New ids count up from the founding members'.
    assert.deepEqual(provisioned, [...provisioned].sort((a, b) => a - b));
    assert.ok(provisioned.every((id) => id > result.stats.nodeCount));
    reached += result.stats.membership.goalsReached;
    retired += result.stats.cluster.nodesRetired;
    learnersAdded += result.stats.membership.added;
  }
  assert.ok(reached >= 6, `${reached} goals reached`);
  assert.ok(retired >= 3, `${retired} nodes retired`);
  assert.ok(learnersAdded >= 6, `${learnersAdded} learners added`);
});

test('snapshot transfers cut off midway are retried, and the half-received images are never used', () => {
  let brokenOff = 0;
  let installed = 0;
  for (const seed of [1, 2, 3, 4]) {
    const result = runSeed(seed, {
      chaosMs: 4000, snapshotIntervalEntries: 15, membership: 'steady',
      snapshotStream: { resetProbability: 0.5, ackLostProbability: 0.2, chunkCountMax: 5 },
    });
    assert.deepEqual(result.violations, [], `seed ${seed}`);
    brokenOff += result.stats.cluster.snapshotStreamsBrokenOff;
    installed += result.stats.snapshotsInstalled;
  }
  assert.ok(brokenOff >= 5, `${brokenOff} transfers broke off`);
  assert.ok(installed >= 5, `${installed} snapshots installed`);
});

test('a leadership transfer trial measures a short, deterministic client-visible pause', () => {
  const trial = runTransferTrial(3);
  assert.ok(trial.pauseMs !== null && trial.leaderReadyMs !== null);
  assert.ok(trial.reachedTarget);
  // No election timeout is waited for: well under the 150 ms minimum.
  assert.ok(trial.leaderReadyMs > 0 && trial.leaderReadyMs < 150, `${trial.leaderReadyMs} ms`);
  assert.ok(trial.pauseMs >= trial.leaderReadyMs && trial.pauseMs < 500, `${trial.pauseMs} ms`);
  assert.deepEqual(runTransferTrial(3), trial);
});

test('ReadIndex rounds are counted, and many concurrent reads share rounds', () => {
  const one = runReadRounds(1, { clientCount: 1, durationMs: 2000 });
  assert.ok(one.readsServed > 30, JSON.stringify(one));
  assert.ok(one.readRounds > 0 && one.readRounds <= one.readsServed + 5, JSON.stringify(one));
  const many = runReadRounds(1, { clientCount: 64, durationMs: 2000 });
  assert.ok(many.roundsPerThousandReads < one.roundsPerThousandReads, JSON.stringify({ one, many }));
});
