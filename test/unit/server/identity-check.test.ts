// The identity rule for founding members (src/server/identity-check.ts): a founding member with an
// empty data directory founds only when no other founding member shows that it ran before.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { silentLogger } from '../../../src/common/logger.js';
import type { Membership } from '../../../src/raft/types.js';
import { evidenceOfPriorRun, refuseIfFoundedBefore } from '../../../src/server/identity-check.js';
import { loadNodeConfig } from '../../../src/server/node-config.js';
import type { NodeStatusWithAddresses } from '../../../src/server/rpc-protocol.js';
import { PeerTransport } from '../../../src/transport/peer-transport.js';

function membership(httpAddrOf3: string, ids = [1, 2, 3]): Membership {
  return { members: ids.map((id) => ({ id, role: 'voter' as const, peerAddr: `127.0.0.1:${id}`, httpAddr: id === 3 ? httpAddrOf3 : '' })) };
}

function status(fields: Partial<NodeStatusWithAddresses>): NodeStatusWithAddresses {
  return {
    nodeId: 1, state: 'follower', term: 2, leader: 2, commitIndex: 5, appliedIndex: 5, lastIndex: 5, snapshotIndex: 0, revision: 3,
    membership: membership(''), membershipIndex: 0, diskFull: false, httpAddr: '127.0.0.1:8081', peerAddr: '127.0.0.1:1', keys: 0, ...fields,
  };
}

test('what shows that a founding member ran before, and what does not', () => {
  assert.equal(evidenceOfPriorRun(3, status({})), null, 'a founding membership without its address: it may never have run');
  assert.equal(evidenceOfPriorRun(3, status({ membership: { members: [] } })), null, 'a member that knows no membership');
  assert.match(evidenceOfPriorRun(3, status({ membership: membership('127.0.0.1:8083'), membershipIndex: 4 })) ?? '', /records its HTTP address 127\.0\.0\.1:8083/);
  assert.match(evidenceOfPriorRun(3, status({ membership: membership('', [1, 2]), membershipIndex: 9 })) ?? '', /no longer holds it: it was removed/);
  const leading = { state: 'leader' as const, leader: 1, followers: [{ id: 2, matchIndex: 5, lag: 0, state: 'replicate' }, { id: 3, matchIndex: 2, lag: 3, state: 'probe' }] };
  assert.match(evidenceOfPriorRun(3, status(leading)) ?? '', /acknowledged the log up to index 2/);
  assert.equal(evidenceOfPriorRun(3, status({ ...leading, followers: [{ id: 3, matchIndex: 0, lag: 5, state: 'probe' }] })), null);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Founding members 1 and 2 answering `status` like nodes do (or not at all), and node 3's config. */
async function foundingPeers(t: { after: (fn: () => Promise<void>) => void }, answers: Map<number, NodeStatusWithAddresses>) {
  const ports = [await freePort(), await freePort(), await freePort()];
  const config = loadNodeConfig({ NODE_ID: '3', CLUSTER_NODES: ports.map((port) => `127.0.0.1:${port}`).join(','), DATA_DIR: '/nonexistent' }, '/');
  const transports: PeerTransport[] = [];
  t.after(async () => {
    for (const transport of transports) await transport.stop();
  });
  for (const [id, answer] of answers) {
    const transport = new PeerTransport({
      selfId: id, clusterId: config.clusterId, listenHost: '127.0.0.1', listenPort: ports[id - 1],
      peerAddress: () => undefined, onMessage: () => {}, onSnapshot: async () => {}, logger: silentLogger,
      onClientRequest: async () => ({ ok: true, result: answer }),
    });
    await transport.start();
    transports.push(transport);
  }
  return config;
}

test('a founding member that ran is refused when another founding member says so', async (t) => {
  const config = await foundingPeers(t, new Map([[1, status({ nodeId: 1, membership: membership('127.0.0.1:8083'), membershipIndex: 4 })]]));
  await assert.rejects(refuseIfFoundedBefore(config, silentLogger), /node 3 has run before as a member of cluster .*records its HTTP address.*DATA_DIR \/nonexistent is empty.*DELETE \/cluster\/members\/3.*JOIN=/s);
});

test('a first start founds: the others know it without an address, or do not answer yet', async (t) => {
  const config = await foundingPeers(t, new Map([[1, status({ nodeId: 1 })]]));
  await refuseIfFoundedBefore(config, silentLogger);
});

test('an answer from another node at a founding member\'s address is no evidence', async (t) => {
  const config = await foundingPeers(t, new Map([[2, status({ nodeId: 7, membership: membership('127.0.0.1:8083') })]]));
  await refuseIfFoundedBefore(config, silentLogger);
});
