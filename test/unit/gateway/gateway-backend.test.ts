// The gateway's routing, against a fake pool of peer connections: it sends to the node that says it
// leads, and when it cannot reach the leader, through a follower that knows the leader (followers
// forward), never to a node that knows no leader.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../../src/common/errors.js';
import { silentLogger } from '../../../src/common/logger.js';
import { GatewayBackend } from '../../../src/gateway/gateway-backend.js';
import type { PeerClientPool } from '../../../src/server/peer-client-pool.js';
import type { RpcRequest, RpcResponse } from '../../../src/server/rpc-protocol.js';

interface FakeNode {
  readonly id: number;
  state: 'leader' | 'follower' | 'candidate';
  term: number;
  leader: number;
  reachable: boolean;
}

/** Nodes at addresses n1..nN; records which address each non-status request went to. */
class FakePool {
  readonly sent: { address: string; type: string; relay?: true }[] = [];
  constructor(readonly nodes: FakeNode[]) {}

  async request(address: string, request: RpcRequest): Promise<RpcResponse> {
    const node = this.nodes.find((n) => `n${n.id}` === address);
    if (node === undefined || !node.reachable) throw new ApiError('NO_LEADER', `Could not reach ${address}; the request was not sent.`);
    if (request.type === 'status') {
      return {
        ok: true,
        result: {
          nodeId: node.id, state: node.state, term: node.term, leader: node.leader, commitIndex: 1, appliedIndex: 1, lastIndex: 1,
          snapshotIndex: 0, revision: 1, membership: { members: [] } as never, membershipIndex: 0, diskFull: false,
          httpAddr: '', peerAddr: address, keys: 0,
        },
      };
    }
    const relay = 'relay' in request ? request.relay : undefined;
    this.sent.push(relay ? { address, type: request.type, relay } : { address, type: request.type });
    // Like a real node: one that does not lead forwards only requests marked for relay.
    if (node.state !== 'leader' && (relay !== true || node.leader === 0)) return { ok: false, code: 'NO_LEADER', message: 'not the leader' };
    if (request.type === 'put') return { ok: true, result: { key: request.key, value: request.value, createRevision: 2, modRevision: 2, version: 1 } as never };
    return { ok: false, code: 'INTERNAL', message: 'unexpected request in this fake' };
  }
}

function gateway(pool: FakePool, requestTimeoutMs = 2000): GatewayBackend {
  return new GatewayBackend(pool as unknown as PeerClientPool, {
    seedAddresses: pool.nodes.map((n) => `n${n.id}`), requestTimeoutMs, maxValueBytes: 1024, retryIntervalMs: 5,
  }, silentLogger);
}

test('writes go to the node that says it leads', async () => {
  const pool = new FakePool([
    { id: 1, state: 'follower', term: 3, leader: 2, reachable: true },
    { id: 2, state: 'leader', term: 3, leader: 2, reachable: true },
    { id: 3, state: 'follower', term: 3, leader: 2, reachable: true },
  ]);
  const record = await gateway(pool).put('k', 'v', undefined);
  assert.equal(record.value, 'v');
  assert.deepEqual(pool.sent, [{ address: 'n2', type: 'put' }]);
});

test('when the leader is unreachable, writes go through a follower that knows it', async () => {
  const pool = new FakePool([
    { id: 1, state: 'leader', term: 4, leader: 1, reachable: false },
    { id: 2, state: 'follower', term: 3, leader: 3, reachable: true },
    { id: 3, state: 'follower', term: 4, leader: 1, reachable: true },
  ]);
  const gw = gateway(pool);
  await gw.put('k', 'v1', undefined);
  await gw.put('k', 'v2', undefined);
  // Node 3 knows the leader of the newer term; node 2's view is older.
  assert.deepEqual(pool.sent, [{ address: 'n3', type: 'put', relay: true }, { address: 'n3', type: 'put', relay: true }]);
});

test('a route through a follower is dropped as soon as that follower cannot forward', async () => {
  const nodes: FakeNode[] = [
    { id: 1, state: 'leader', term: 4, leader: 1, reachable: false },
    { id: 2, state: 'follower', term: 4, leader: 1, reachable: true },
    { id: 3, state: 'follower', term: 4, leader: 1, reachable: false },
  ];
  const pool = new FakePool(nodes);
  const gw = gateway(pool);
  await gw.put('k', 'v1', undefined);
  // Node 2 loses the leader; node 3 becomes reachable and leads.
  nodes[1].leader = 0;
  nodes[2].reachable = true;
  nodes[2].state = 'leader';
  nodes[2].term = 5;
  nodes[2].leader = 3;
  await gw.put('k', 'v2', undefined);
  assert.deepEqual(pool.sent, [{ address: 'n2', type: 'put', relay: true }, { address: 'n2', type: 'put', relay: true }, { address: 'n3', type: 'put' }]);
});

test('nodes that know no leader are never used for writes; the request fails with NO_LEADER, not proposed', async () => {
  const pool = new FakePool([
    { id: 1, state: 'candidate', term: 5, leader: 0, reachable: true },
    { id: 2, state: 'follower', term: 5, leader: 0, reachable: true },
    { id: 3, state: 'leader', term: 4, leader: 3, reachable: false },
  ]);
  await assert.rejects(gateway(pool, 200).put('k', 'v', undefined), (error: unknown) => error instanceof ApiError && error.code === 'NO_LEADER');
  assert.deepEqual(pool.sent, []);
});
