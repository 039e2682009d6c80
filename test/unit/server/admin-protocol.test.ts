// Member operations on the wire and on the REST API: parsing of untrusted bodies, routes, the
// live-quorum arithmetic, and validation of a member to add.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeApiRequest, type ApiResponse } from '../../../src/api/router.js';
import type { KvBackend } from '../../../src/api/backend.js';
import { ApiError } from '../../../src/common/errors.js';
import { liveQuorumProblem, normalizeNewMember } from '../../../src/server/cluster-admin.js';
import { changesState, markedForRelay, parseRpcRequest } from '../../../src/server/rpc-protocol.js';
import { ClusterBackendStub } from '../api/cluster-backend-stub.js';

class Backend extends ClusterBackendStub implements KvBackend {
  readonly maxValueBytes = 10;
  put(): never { throw new ApiError('INTERNAL'); }
  delete(): never { throw new ApiError('INTERNAL'); }
  get(): never { throw new ApiError('INTERNAL'); }
  health(): never { throw new ApiError('INTERNAL'); }
  clusterStatus(): never { throw new ApiError('INTERNAL'); }
}

function call(backend: KvBackend, method: string, url: string, body = ''): Promise<ApiResponse> {
  return routeApiRequest(backend, { method, url, headers: {}, body: new TextEncoder().encode(body) });
}

test('member routes reach the backend with the right arguments', async () => {
  const backend = new Backend();
  const list = await call(backend, 'GET', '/cluster/members');
  assert.equal(list.status, 200);
  assert.equal((list.body as { members: unknown[] }).members.length, 1);
  assert.equal((await call(backend, 'POST', '/cluster/members', '{"id": 4, "peerAddr": "d:1", "httpAddr": "d:2"}')).status, 200);
  assert.equal((await call(backend, 'POST', '/cluster/members?force=true', '{"id": 5, "peerAddr": "e:1"}')).status, 200);
  assert.equal((await call(backend, 'DELETE', '/cluster/members/3')).status, 200);
  assert.equal((await call(backend, 'DELETE', '/cluster/members/3?force')).status, 200);
  assert.equal((await call(backend, 'POST', '/cluster/members/4/promote', '{"force": true}')).status, 200);
  assert.equal((await call(backend, 'POST', '/cluster/leader', '{"id": 2}')).status, 200);
  assert.equal((await call(backend, 'POST', '/cluster/leader')).status, 200);
  assert.deepEqual(backend.adminCalls, [
    'members', 'add 4 d:1 d:2 force=false', 'add 5 e:1  force=true', 'remove 3 force=false', 'remove 3 force=true',
    'promote 4 force=true', 'transfer 2', 'transfer any',
  ]);
});

test('bad member requests are 400/404/405 and never reach the backend', async () => {
  const backend = new Backend();
  const cases: [string, string, string, number][] = [
    ['POST', '/cluster/members', '{"id": 0, "peerAddr": "d:1"}', 400],
    ['POST', '/cluster/members', '{"id": 4}', 400],
    ['POST', '/cluster/members', '[1]', 400],
    ['POST', '/cluster/members', 'not json', 400],
    ['DELETE', '/cluster/members/x', '', 400],
    ['DELETE', '/cluster/members/3?force=maybe', '', 400],
    ['GET', '/cluster/members/3', '', 405],
    ['POST', '/cluster/members/3/demote', '', 404],
    ['PUT', '/cluster/leader', '', 405],
    ['POST', '/cluster/leader', '{"id": "2"}', 400],
    ['POST', '/cluster/snapshot', '', 405],
  ];
  for (const [method, url, body, status] of cases) {
    const answer = await call(backend, method, url, body);
    assert.equal(answer.status, status, `${method} ${url} ${body}: ${JSON.stringify(answer.body)}`);
  }
  assert.deepEqual(backend.adminCalls, []);
});

test('GET /cluster/snapshot answers with a stream and a file name', async () => {
  const answer = await call(new Backend(), 'GET', '/cluster/snapshot');
  assert.equal(answer.status, 200);
  assert.equal(answer.stream?.contentType, 'application/octet-stream');
  assert.match(answer.headers?.['content-disposition'] ?? '', /filename="x.backup"/);
  const chunks: number[] = [];
  for await (const chunk of answer.stream?.chunks ?? []) chunks.push(...chunk);
  assert.deepEqual(chunks, [1, 2, 3]);
});

test('peer-port admin requests are validated like any untrusted input', () => {
  assert.deepEqual(parseRpcRequest({ type: 'members' }), { type: 'members' });
  assert.deepEqual(parseRpcRequest({ type: 'addMember', id: 4, peerAddr: 'd:1', httpAddr: '' }), { type: 'addMember', id: 4, peerAddr: 'd:1', httpAddr: '', force: false });
  assert.deepEqual(parseRpcRequest({ type: 'removeMember', id: 4, force: true }), { type: 'removeMember', id: 4, force: true });
  assert.deepEqual(parseRpcRequest({ type: 'transferLeader', id: null }), { type: 'transferLeader', id: null });
  assert.deepEqual(parseRpcRequest({ type: 'removedNotice', id: 3 }), { type: 'removedNotice', id: 3 });
  assert.equal(parseRpcRequest({ type: 'removedNotice' }), null);
  for (const bad of [
    { type: 'addMember', id: -1, peerAddr: 'd:1', httpAddr: '' },
    { type: 'addMember', id: 4, peerAddr: 5, httpAddr: '' },
    { type: 'addMember', id: 4, peerAddr: 'x'.repeat(400), httpAddr: '' },
    { type: 'removeMember', id: '4' },
    { type: 'promoteMember' },
    { type: 'transferLeader', id: 1.5 },
  ]) assert.equal(parseRpcRequest(bad), null, JSON.stringify(bad));
  assert.equal(changesState({ type: 'removeMember', id: 1, force: false }), true);
  assert.equal(changesState({ type: 'members' }), false);
  assert.equal(changesState({ type: 'status' }), false);
});

test('live quorum of the next configuration\'s voters', () => {
  const membership = (voters: number[], learners: number[] = []) => ({
    members: [...voters.map((id) => ({ id, role: 'voter' as const, peerAddr: '', httpAddr: '' })), ...learners.map((id) => ({ id, role: 'learner' as const, peerAddr: '', httpAddr: '' }))],
  });
  const live = (ids: number[]) => (id: number) => ids.includes(id);
  assert.equal(liveQuorumProblem(membership([1, 2, 3]), live([1, 2])), null);
  assert.equal(liveQuorumProblem(membership([1, 2]), live([1])), '1 live voter(s) of 2, fewer than the 2 a quorum needs');
  assert.equal(liveQuorumProblem(membership([1, 2, 3, 4]), live([1, 2, 3])), null);
  assert.notEqual(liveQuorumProblem(membership([1, 2, 3, 4]), live([1, 2])), null);
  assert.notEqual(liveQuorumProblem(membership([1], [2, 3]), live([2, 3])), null, 'live learners count for nothing');
});

test('a member to add is validated and its addresses normalised', () => {
  assert.deepEqual(normalizeNewMember({ id: 4, peerAddr: 'http://d:1/', httpAddr: 'd:2' }), { id: 4, peerAddr: 'd:1', httpAddr: 'd:2' });
  assert.deepEqual(normalizeNewMember({ id: 4, peerAddr: 'd:1', httpAddr: '' }), { id: 4, peerAddr: 'd:1', httpAddr: '' });
  assert.throws(() => normalizeNewMember({ id: 4, peerAddr: '', httpAddr: '' }), (error: ApiError) => error.code === 'BAD_REQUEST');
  assert.throws(() => normalizeNewMember({ id: 4, peerAddr: 'd:99999', httpAddr: '' }), /out of range/);
  assert.throws(() => normalizeNewMember({ id: 1.5, peerAddr: 'd:1', httpAddr: '' }), /integer/);
});

test('a request marked for relay keeps the mark only where a node may forward it', () => {
  assert.deepEqual(parseRpcRequest({ type: 'put', key: 'k', value: 'v', relay: true }), { type: 'put', key: 'k', value: 'v', relay: true });
  assert.deepEqual(parseRpcRequest({ type: 'removeMember', id: 4, relay: true }), { type: 'removeMember', id: 4, force: false, relay: true });
  // Reads and status need no relay: any node answers them itself.
  assert.deepEqual(parseRpcRequest({ type: 'status', relay: true }), { type: 'status' });
  assert.deepEqual(parseRpcRequest({ type: 'get', key: 'k', consistency: 'stale', relay: true }), { type: 'get', key: 'k', consistency: 'stale' });
  for (const relay of ['yes', 1, false, null]) assert.equal(parseRpcRequest({ type: 'put', key: 'k', value: 'v', relay }), null, String(relay));
  assert.deepEqual(markedForRelay({ type: 'delete', key: 'k' }), { type: 'delete', key: 'k', relay: true });
  assert.deepEqual(markedForRelay({ type: 'get', key: 'k', consistency: 'linearizable' }), { type: 'get', key: 'k', consistency: 'linearizable' });
});
