// Real processes under continuous write load, with the linearizability checker on: grow 3 -> 5
// nodes (two joining at once), then shrink 5 -> 3, removing the leader among them. No acknowledged
// write may be lost and the history must be linearizable; the failed client requests of each change
// are counted and reported.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../harness.js';
import { DynamicCluster, voters } from './cluster.js';
import { formatReport, Workload } from './workload.js';

let cluster: DynamicCluster | null = null;
let workload: Workload | null = null;

after(async () => {
  workload?.close();
  await cluster?.stop();
});

test('grow 3 -> 5 (two joining at once) and shrink 5 -> 3 (removing the leader) under load', { timeout: 180_000 }, async (t) => {
  cluster = await DynamicCluster.start({ founders: 3 });
  try {
    await cluster.waitForMembers('three voters with their HTTP addresses recorded', (v) => voters(v).length === 3 && v.members.every((m) => m.httpAddr !== ''), 30_000);
    // Ports of the two future members are known now, so the load can reach them once they serve.
    await cluster.allocate(4, cluster.machine(1).httpPort);
    await cluster.allocate(5, cluster.machine(2).httpPort);
    workload = new Workload({ ports: cluster.httpPorts(), clients: 4, keys: 24 });
    workload.start();
    workload.phase('steady, 3 voters');
    await sleep(1500);

    workload.phase('grow 3 -> 5');
    const growStartedMs = Date.now();
    cluster.start(4);
    cluster.start(5);
    const grown = await cluster.waitForMembers('5 voters', (v) => voters(v).length === 5 && v.members.every((m) => m.caughtUp === true), 60_000);
    t.diagnostic(`grow 3 -> 5 took ${Date.now() - growStartedMs} ms (both joined at once; one waits while the other's change is in flight)`);
    assert.deepEqual(voters(grown), [1, 2, 3, 4, 5]);
    for (const id of [4, 5]) {
      const logs = cluster.logsOf(id);
      assert.match(logs, /JOIN: the cluster added this node as a learner/, `node ${id} asked and was added`);
    }
    const leaderLogs = [...cluster.machines.keys()].map((id) => cluster?.logsOf(id) ?? '').join('');
    // Whichever leader proposed them (an election may come in between), each was added as a learner
    // and then promoted.
    for (const id of [4, 5]) {
      assert.match(leaderLogs, new RegExp(`"change":\\{"kind":"addLearner","member":\\{"id":${id},`), `node ${id} was added as a learner`);
      assert.match(leaderLogs, new RegExp(`"change":\\{"kind":"promote","id":${id}\\}`), `node ${id} was promoted once caught up`);
    }

    workload.phase('steady, 5 voters');
    await sleep(1500);

    workload.phase('shrink 5 -> 3 (leader removed)');
    const shrinkStartedMs = Date.now();
    const oldLeader = await cluster.leader();
    const other = [1, 2, 3, 4, 5].find((id) => id !== oldLeader) as number;
    const via = [1, 2, 3, 4, 5].find((id) => id !== oldLeader && id !== other) as number;
    const removeLeader = await cluster.request(via, 'DELETE', `/cluster/members/${oldLeader}`);
    assert.equal(removeLeader.status, 200, JSON.stringify(removeLeader.body));
    assert.equal((removeLeader.body as { change: string }).change, 'removed');
    const removeOther = await waitFor('the second removal to be accepted', async () => {
      const answer = await cluster?.request(via, 'DELETE', `/cluster/members/${other}`);
      if (answer?.status === 409) return undefined; // the first change is still settling
      return answer;
    }, 20_000, 100);
    assert.equal(removeOther.status, 200, JSON.stringify(removeOther.body));
    const shrunk = await cluster.waitForMembers('3 voters', (v) => voters(v).length === 3, 30_000);
    t.diagnostic(`shrink 5 -> 3 took ${Date.now() - shrinkStartedMs} ms (removed node ${oldLeader}, the leader, then node ${other})`);
    assert.ok(!voters(shrunk).includes(oldLeader) && !voters(shrunk).includes(other));
    assert.notEqual(shrunk.leader, oldLeader, 'the removed leader handed leadership over');
    for (const id of [oldLeader, other]) {
      const code: number | null = await cluster.exited(id, 15_000);
      assert.equal(code, 0, `removed node ${id} exits cleanly`);
      assert.match(cluster.logsOf(id), /removed from the cluster/, `node ${id} says so in its log`);
    }
    assert.match(cluster.logsOf(oldLeader), /leadership handed over before this node's removal/);

    workload.phase('steady, 3 voters again');
    await sleep(1500);
    await workload.stop();
    const survivors = voters(shrunk).map((id) => cluster?.machine(id).httpPort as number);
    await workload.finalReads(survivors);
    t.diagnostic(`membership changes under load (${workload.history.length} operations, ${workload.acknowledgedWrites()} acknowledged writes):`);
    for (const line of formatReport(workload.report())) t.diagnostic(line);
    const verdict = workload.check();
    assert.equal(verdict.verdict, 'linearizable', JSON.stringify(verdict).slice(0, 4000));

    // A removed node started again with its data directory refuses to take part.
    cluster.start(oldLeader);
    assert.equal(await cluster.exited(oldLeader, 15_000), 1);
    assert.match(cluster.logsOf(oldLeader), /was removed from cluster .* does not take part again/);
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('grow-shrink')}`);
    throw error;
  }
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
