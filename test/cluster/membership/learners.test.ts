// A learner never counts toward a quorum, with real processes: a one-voter cluster with learners
// commits on its voter alone and stops when the voter dies; with the voters' majority dead, live
// learners do not make a quorum; with only learners alive, nothing is ever elected or committed.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { DynamicCluster, learners, voters } from './cluster.js';

const clusters: DynamicCluster[] = [];
after(async () => {
  for (const cluster of clusters) await cluster.stop();
});

const ENV = { AUTO_PROMOTE: 'false', REQUEST_TIMEOUT_MS: '1500' };
/** Several election timeouts of the test timing (300-600 ms). */
const QUIET_MS = 3000;
/** Time for check-quorum and the health check's leader silence (2 election timeouts) to notice. */
const GRACE_MS = 1500;

test('a 1-voter cluster with learners: the voter alone commits; with only learners alive nothing is elected', { timeout: 180_000 }, async (t) => {
  const cluster = await DynamicCluster.start({ founders: 1, env: ENV });
  clusters.push(cluster);
  try {
    await cluster.leader();
    await cluster.join(2, 1);
    await cluster.join(3, 1);
    const view = await cluster.waitForMembers('two caught-up learners', (v) => learners(v).length === 2 && v.members.every((m) => m.caughtUp === true), 30_000);
    assert.deepEqual(voters(view), [1]);
    for (let i = 0; i < 10; i++) {
      const answer = await cluster.request(2 + (i % 2), 'PUT', `/kv/one-voter-${i}`, { value: `v${i}` });
      assert.equal(answer.status, 200, `a write through a learner is committed by the lone voter: ${JSON.stringify(answer.body)}`);
    }
    for (const id of [2, 3]) {
      const answer = await cluster.request(id, 'GET', '/kv/one-voter-9');
      assert.equal((answer.body as { value?: string }).value, 'v9', `learner ${id} serves a linearizable read of it`);
    }

    await cluster.signal(1, 'SIGKILL');
    const killedMs = Date.now();
    const write = await cluster.request(2, 'PUT', '/kv/after-voter-died', { value: 'x' });
    assert.ok(write.status === 503 || write.status === 504, `no write commits with only learners alive: ${write.status} ${JSON.stringify(write.body)}`);
    await sleep(GRACE_MS);
    while (Date.now() - killedMs < QUIET_MS) {
      for (const id of [2, 3]) {
        const health = await cluster.health(id);
        assert.notEqual(health?.status, 'healthy', `learner ${id} does not claim a working cluster`);
        assert.notEqual(health?.state, 'leader', `learner ${id} never leads`);
        assert.notEqual(health?.state, 'candidate', `learner ${id} never campaigns`);
      }
      await sleep(200);
    }
    for (const id of [2, 3]) assert.doesNotMatch(cluster.logsOf(id), /became leader/);
    const stale = await cluster.request(3, 'GET', '/kv/after-voter-died?consistency=stale');
    assert.equal(stale.status, 404, 'the refused write is nowhere');
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('learners-one-voter')}`);
    throw error;
  }
});

test('3 voters and 2 learners: with two voters dead, the live learners do not make a quorum', { timeout: 180_000 }, async (t) => {
  const cluster = await DynamicCluster.start({ founders: 3, env: ENV });
  clusters.push(cluster);
  try {
    await cluster.leader();
    await cluster.join(4, 1);
    await cluster.join(5, 2);
    await cluster.waitForMembers('two caught-up learners', (v) => learners(v).length === 2 && v.members.every((m) => m.caughtUp === true), 30_000);
    const before = await cluster.request(4, 'PUT', '/kv/before', { value: 'b' });
    assert.equal(before.status, 200);

    // Three of five processes stay up (a majority of processes), but only one of three voters.
    const leader = await cluster.leader();
    const survivor = [1, 2, 3].find((id) => id !== leader) as number;
    for (const id of [1, 2, 3]) if (id !== survivor) await cluster.signal(id, 'SIGKILL');
    const survivorCommit = Number((await cluster.health(survivor))?.commitIndex);
    const write = await cluster.request(4, 'PUT', '/kv/no-quorum', { value: 'x' });
    assert.ok(write.status === 503 || write.status === 504, `no commit without a quorum of voters: ${write.status} ${JSON.stringify(write.body)}`);
    // A leader without a quorum steps down within an election timeout (check-quorum); then nobody
    // may claim a working cluster.
    await sleep(GRACE_MS);
    const quietUntil = Date.now() + QUIET_MS;
    while (Date.now() < quietUntil) {
      for (const id of [survivor, 4, 5]) {
        const health = await cluster.health(id);
        assert.notEqual(health?.status, 'healthy', `node ${id} cannot claim a working cluster`);
        assert.ok(Number(health?.commitIndex ?? 0) <= survivorCommit, `node ${id}: nothing commits (commit ${String(health?.commitIndex)} vs ${survivorCommit})`);
      }
      await sleep(200);
    }
    for (const id of [4, 5]) assert.equal((await cluster.request(id, 'GET', '/kv/no-quorum?consistency=stale')).status, 404);

    // Now only learners are alive.
    await cluster.signal(survivor, 'SIGKILL');
    const onlyLearnersUntil = Date.now() + QUIET_MS;
    while (Date.now() < onlyLearnersUntil) {
      for (const id of [4, 5]) assert.notEqual((await cluster.health(id))?.state, 'leader');
      await sleep(200);
    }
    for (const id of [4, 5]) assert.doesNotMatch(cluster.logsOf(id), /became leader/);

    // The voters come back: the cluster serves again, with the learners still learners.
    for (const id of [1, 2, 3]) cluster.start(id);
    const view = await cluster.waitForMembers('the voters back', (v) => v.members.every((m) => m.live === true), 30_000);
    assert.deepEqual(voters(view), [1, 2, 3]);
    assert.deepEqual(learners(view), [4, 5]);
    assert.equal((await cluster.request(5, 'GET', '/kv/before')).status, 200);
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('learners-no-quorum')}`);
    throw error;
  }
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
