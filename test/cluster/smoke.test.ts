// Real-process smoke test: three raft-node processes and a kv-gateway on loopback; the seed's curl
// session through the gateway and through every node; SIGKILL of the leader under writes.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster, http, waitFor } from './harness.js';

let cluster: LocalCluster;

before(async () => {
  cluster = await LocalCluster.start({ nodes: 3 });
  await cluster.waitForLeader();
  await cluster.waitForGateway();
});

after(async () => {
  await cluster?.stop();
});

test('the seed session works through the gateway', async () => {
  const port = cluster.gatewayPort;
  const health = await http(port, 'GET', '/health');
  assert.equal(health.status, 200);
  assert.equal((health.body as { status: string }).status, 'healthy');
  assert.equal(typeof (health.body as { keys: unknown }).keys, 'string');
  for (let i = 1; i <= 10; i++) {
    const put = await http(port, 'PUT', `/kv/key${i}`, JSON.stringify({ value: `value${i}` }));
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal((put.body as { value: string }).value, `value${i}`);
  }
  const got = await http(port, 'GET', '/kv/key1');
  assert.equal(got.status, 200);
  assert.equal((got.body as { key: string }).key, 'key1');
  assert.equal((got.body as { value: string }).value, 'value1');
  const deleted = await http(port, 'DELETE', '/kv/key1');
  assert.deepEqual({ key: (deleted.body as { key: string }).key, status: (deleted.body as { status: string }).status }, { key: 'key1', status: 'deleted' });
  assert.equal((await http(port, 'GET', '/kv/key1')).status, 404);
  assert.equal((await http(port, 'DELETE', '/kv/key1')).status, 404);
  assert.equal((await http(port, 'GET', '/health')).status, 200);
});

test('every node serves every call: followers forward writes and serve linearizable reads', async () => {
  for (const [id, handle] of cluster.nodes) {
    const key = `node-${id}-key`;
    const put = await http(handle.httpPort, 'PUT', `/kv/${key}`, JSON.stringify({ value: `from ${id}` }));
    assert.equal(put.status, 200, `PUT via node ${id}: ${JSON.stringify(put.body)}`);
    for (const [otherId, other] of cluster.nodes) {
      const got = await http(other.httpPort, 'GET', `/kv/${key}`);
      assert.equal(got.status, 200, `GET via node ${otherId}`);
      assert.equal((got.body as { value: string }).value, `from ${id}`, `linearizable read on node ${otherId} sees the write made via node ${id}`);
    }
    const deleted = await http(handle.httpPort, 'DELETE', `/kv/${key}`);
    assert.equal(deleted.status, 200);
  }
  const bad = await http(cluster.handle(2).httpPort, 'PUT', '/kv/x', '{"value": 3}');
  assert.equal(bad.status, 400);
});

test('SIGKILL of the leader: a new leader takes over and writes continue through the gateway', async () => {
  const leader = await cluster.waitForLeader();
  const acknowledged = new Map<string, string>();
  for (let i = 0; i < 20; i++) {
    const answer = await http(cluster.gatewayPort, 'PUT', `/kv/before-${i}`, JSON.stringify({ value: `v${i}` }));
    assert.equal(answer.status, 200);
    acknowledged.set(`before-${i}`, `v${i}`);
  }
  const killedAt = Date.now();
  await cluster.signal(leader, 'SIGKILL');
  // The gateway holds the request through the election; the first acknowledged write marks recovery.
  const firstAfter = await waitFor('a write acknowledged after the kill', async () => {
    const answer = await http(cluster.gatewayPort, 'PUT', '/kv/after-kill', JSON.stringify({ value: 'ok' }), 10_000);
    return answer.status === 200 ? Date.now() : undefined;
  }, 20_000);
  acknowledged.set('after-kill', 'ok');
  console.log(`# failover: first write acknowledged ${firstAfter - killedAt} ms after SIGKILL of leader ${leader} (election timeout 300-600 ms in this test)`);
  const survivors = [...cluster.nodes.keys()].filter((id) => id !== leader);
  const newLeader = await cluster.waitForLeader(15_000, survivors);
  assert.notEqual(newLeader, leader);
  for (let i = 0; i < 10; i++) {
    const answer = await http(cluster.gatewayPort, 'PUT', `/kv/after-${i}`, JSON.stringify({ value: `w${i}` }));
    assert.equal(answer.status, 200);
    acknowledged.set(`after-${i}`, `w${i}`);
  }
  // Bring the old leader back: it rejoins as a follower and catches up.
  cluster.startNode(leader);
  await waitFor('the restarted node to catch up', async () => {
    const answer = await http(cluster.handle(leader).httpPort, 'GET', '/kv/after-9?consistency=stale', undefined, 1000);
    return answer.status === 200 ? true : undefined;
  }, 20_000);
  for (const [key, value] of acknowledged) {
    const got = await http(cluster.gatewayPort, 'GET', `/kv/${key}`);
    assert.equal((got.body as { value?: string }).value, value, `acknowledged write ${key} is readable`);
  }
});
