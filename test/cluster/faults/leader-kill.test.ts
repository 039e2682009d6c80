// Scenario 1: SIGKILL of the leader under load. A new leader takes over, writes resume, nothing
// acknowledged is lost, and the history is linearizable; the killed node comes back and catches up.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { faultTestOptions, measureRecovery, scenario } from '../fault-kit.js';
import { now } from '../http-probe.js';

test('SIGKILL of the leader under load: a new leader takes over, nothing acknowledged is lost', faultTestOptions(), (t) => scenario(t, { name: 'leader-kill' }, async (s) => {
  const { cluster, history } = s;
  for (let round = 1; round <= 2; round++) {
    const leader = await cluster.waitForLeader();
    await cluster.verifyPid(leader);
    const killedAt = s.mark(`SIGKILL leader ${leader}`);
    await cluster.kill(leader);
    const survivors = cluster.ids.filter((id) => id !== leader);
    const newLeader = await cluster.waitForLeader(15_000, survivors);
    assert.notEqual(newLeader, leader);
    const electedMs = now() - killedAt;
    const survivingApis = cluster.endpoints().filter((e) => e.name !== `node${leader}`);
    s.recoveries.push(await measureRecovery(cluster, history, `SIGKILL of leader ${leader} (round ${round})`, killedAt, survivingApis));
    s.notes.push(`round${round}: node${newLeader} led ${Math.round(electedMs)}ms after the kill`);
    await history.waitForAckedWrites(100, now(), 30_000, 'writes to resume under the new leader');
    const restartedAt = s.mark(`restart node ${leader}`);
    cluster.startNode(leader);
    s.recoveries.push(await measureRecovery(cluster, history, `restart of node ${leader} (round ${round})`, restartedAt));
    await history.waitForAckedWrites(50, now(), 30_000);
  }
}));
