// History retention on real processes: with HISTORY_RETENTION_REVISIONS=20, the leader proposes
// compactions as writes go on, every replica applies them (reads below the compacted revision get
// 410 COMPACTED everywhere), no more than 20 revisions stay readable and at least 18 (the policy's
// slack) do, and followers never propose.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster, http, waitFor } from '../harness.js';

const RETENTION = 20;
const SLACK = 2; // retentionSlack(20)
const WRITES = 120;

test('the leader compacts history down to the retention, on every replica', async () => {
  const cluster = await LocalCluster.start({ nodes: 3, gateway: false, extraEnv: { HISTORY_RETENTION_REVISIONS: String(RETENTION) } });
  try {
    const leader = await cluster.waitForLeader();
    const leaderPort = cluster.handle(leader).httpPort;
    let revision = 0;
    for (let i = 0; i < WRITES; i++) {
      const answer = await http(leaderPort, 'PUT', '/kv/history-key', JSON.stringify({ value: `v${i}` }));
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      revision = (answer.body as { revision: number }).revision;
    }
    // Only puts and compactions were applied: the revision counts the puts.
    assert.equal(revision, WRITES + 1);
    const tooOld = revision - RETENTION; // keeping it would make RETENTION + 1 readable
    const mustStay = revision - RETENTION + 1 + SLACK;
    for (const id of cluster.nodes.keys()) {
      const port = cluster.handle(id).httpPort;
      const compacted = await waitFor(`node ${id} to compact revision ${tooOld}`, async () => {
        const answer = await http(port, 'GET', `/kv/history-key?consistency=stale&revision=${tooOld}`);
        return answer.status === 410 ? answer : undefined;
      }, 20_000);
      assert.equal((compacted.body as { code: string }).code, 'COMPACTED');
      const kept = await http(port, 'GET', `/kv/history-key?consistency=stale&revision=${mustStay}`);
      assert.equal(kept.status, 200, `node ${id}: revision ${mustStay} must still be readable: ${JSON.stringify(kept.body)}`);
      // Revision r holds the put of write r - 2 (the store starts at revision 1).
      assert.equal((kept.body as { value: string }).value, `v${mustStay - 2}`);
    }
    const stillLeader = await cluster.waitForLeader();
    const proposers = [...cluster.nodes.keys()].filter((id) => cluster.logsOf(id).includes('history compacted by retention'));
    if (stillLeader === leader) assert.deepEqual(proposers, [leader], 'only the leader proposes compactions');
    console.log(`# history retention: ${WRITES} writes, revision ${revision}; revision ${tooOld} compacted and ${mustStay} readable on all 3 nodes; compactions proposed by node(s) ${proposers.join(',')}`);
  } finally {
    await cluster.stop();
  }
});
