// The identity rule for founding members, with real processes: a founding member starting for the
// first time joins the cluster the others already formed; one that ran and lost its data directory
// is refused, with a message saying how to remove and re-add it (src/server/identity-check.ts).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { DynamicCluster, voters } from './cluster.js';

const clusters: DynamicCluster[] = [];
after(async () => {
  for (const cluster of clusters) await cluster.stop();
});

test('a founding member started after the others formed the cluster joins it normally', { timeout: 120_000 }, async (t) => {
  const cluster = await DynamicCluster.start({ founders: 3, startLater: [3] });
  clusters.push(cluster);
  try {
    const formed = await cluster.waitForMembers('a leader among nodes 1 and 2', (v) => v.leader === 1 || v.leader === 2, 30_000);
    assert.equal((await cluster.request(formed.leader, 'PUT', '/kv/before-3', { value: 'x' })).status, 200);
    cluster.start(3);
    await cluster.waitForMembers('node 3 live and caught up', (v) => voters(v).length === 3 && v.members.every((m) => m.live === true && m.caughtUp === true && m.httpAddr !== ''), 30_000);
    assert.equal(((await cluster.request(3, 'GET', '/kv/before-3')).body as { value?: string }).value, 'x');
    assert.match(cluster.logsOf(3), /first start of a founding member/);
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('identity-late-founder')}`);
    throw error;
  }
});

test('a founding member that ran and lost its data directory is refused, and the cluster is undisturbed', { timeout: 120_000 }, async (t) => {
  const cluster = await DynamicCluster.start({ founders: 3 });
  clusters.push(cluster);
  try {
    const view = await cluster.waitForMembers('every address recorded', (v) => voters(v).length === 3 && v.members.every((m) => m.httpAddr !== ''), 30_000);
    const victim = [1, 2, 3].find((id) => id !== view.leader) as number;
    for (let i = 0; i < 10; i++) assert.equal((await cluster.request(view.leader, 'PUT', `/kv/k${i}`, { value: `v${i}` })).status, 200);
    await cluster.signal(victim, 'SIGKILL');
    rmSync(cluster.machine(victim).dataDir, { recursive: true, force: true });
    cluster.start(victim);
    assert.equal(await cluster.exited(victim, 30_000), 1, 'it refuses to start');
    assert.match(cluster.logsOf(victim), new RegExp(`node ${victim} has run before as a member of cluster .* is empty: its data is lost.*DELETE /cluster/members/${victim}`));
    assert.equal((await cluster.request(view.leader, 'PUT', '/kv/after', { value: 'fine' })).status, 200);
  } catch (error) {
    t.diagnostic(`logs: ${cluster.dumpLogs('identity-wiped-founder')}`);
    throw error;
  }
});
