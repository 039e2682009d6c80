// The REST API in-process: every route, status and error code, without sockets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeApiRequest, type ApiResponse } from '../../../src/api/router.js';
import type { ClientStamp, DeleteOutcome, HealthReport, KvBackend, KvRecord, ReadConsistency } from '../../../src/api/backend.js';
import { ApiError } from '../../../src/common/errors.js';
import { ClusterBackendStub } from './cluster-backend-stub.js';

class MemoryBackend extends ClusterBackendStub implements KvBackend {
  readonly maxValueBytes = 100;
  readonly data = new Map<string, string>();
  revision = 1;
  readonly calls: string[] = [];
  async put(key: string, value: string, stamp: ClientStamp | undefined): Promise<KvRecord> {
    this.calls.push(`put ${key} ${stamp ? `${stamp.clientId}/${stamp.seq}/${stamp.ackedSeq}` : '-'}`);
    if (Buffer.byteLength(value) > this.maxValueBytes) throw new ApiError('TOO_LARGE');
    this.data.set(key, value);
    this.revision++;
    return { key, value, createRevision: this.revision, modRevision: this.revision, version: 1, revision: this.revision };
  }
  async delete(key: string): Promise<DeleteOutcome> {
    const deleted = this.data.delete(key);
    if (deleted) this.revision++;
    return { key, deleted, revision: this.revision };
  }
  async get(key: string, consistency: ReadConsistency, revision: number | undefined): Promise<KvRecord | null> {
    this.calls.push(`get ${key} ${consistency} ${revision ?? '-'}`);
    const value = this.data.get(key);
    return value === undefined ? null : { key, value, createRevision: 2, modRevision: 2, version: 1, revision: this.revision };
  }
  async health(): Promise<HealthReport> { return { healthy: true, body: { status: 'healthy', keys: String(this.data.size) } }; }
  async clusterStatus(): Promise<unknown> { return { leader: 1 }; }
}

function call(backend: KvBackend, method: string, url: string, body = '', headers: Record<string, string> = {}): Promise<ApiResponse> {
  return routeApiRequest(backend, { method, url, headers, body: new TextEncoder().encode(body) });
}

function code(response: ApiResponse): string {
  return (response.body as { code: string }).code;
}

test('the seed session: health, put, get, delete, with the documented shapes', async () => {
  const backend = new MemoryBackend();
  assert.deepEqual((await call(backend, 'GET', '/health')).body, { status: 'healthy', keys: '0' });
  const put = await call(backend, 'PUT', '/kv/mykey', '{"value": "myvalue"}');
  assert.equal(put.status, 200);
  assert.equal((put.body as KvRecord).value, 'myvalue');
  const got = await call(backend, 'GET', '/kv/mykey');
  assert.equal(got.status, 200);
  assert.deepEqual({ key: (got.body as KvRecord).key, value: (got.body as KvRecord).value }, { key: 'mykey', value: 'myvalue' });
  const deleted = await call(backend, 'DELETE', '/kv/mykey');
  assert.equal(deleted.status, 200);
  assert.equal((deleted.body as { status: string }).status, 'deleted');
  assert.equal((deleted.body as { key: string }).key, 'mykey');
  const again = await call(backend, 'DELETE', '/kv/mykey');
  assert.equal(again.status, 404);
  assert.equal(code(again), 'KEY_NOT_FOUND');
  const missing = await call(backend, 'GET', '/kv/mykey');
  assert.equal(missing.status, 404);
  assert.equal(code(missing), 'KEY_NOT_FOUND');
});

test('keys are percent-decoded from the path; bad encodings and empty keys are 400 INVALID_KEY', async () => {
  const backend = new MemoryBackend();
  await call(backend, 'PUT', '/kv/a/b', '{"value":"1"}');
  await call(backend, 'PUT', '/kv/caf%C3%A9', '{"value":"2"}');
  assert.deepEqual([...backend.data.keys()], ['a/b', 'café']);
  for (const url of ['/kv/%E0%A4%A', '/kv/%ZZ', '/kv/']) {
    const response = await call(backend, 'GET', url);
    assert.equal(response.status, 400, url);
    assert.equal(code(response), 'INVALID_KEY', url);
  }
});

test('malformed bodies are 400 and change nothing', async () => {
  const backend = new MemoryBackend();
  const cases: [string, string][] = [
    ['not json', 'INVALID_JSON'], ['', 'INVALID_JSON'], ['{"value": 5}', 'BAD_REQUEST'], ['{"value": null}', 'BAD_REQUEST'],
    ['{"value": {"a": 1}}', 'BAD_REQUEST'], ['{}', 'BAD_REQUEST'], ['[1]', 'BAD_REQUEST'], ['"str"', 'BAD_REQUEST'],
  ];
  for (const [body, expected] of cases) {
    const response = await call(backend, 'PUT', '/kv/k', body);
    assert.equal(response.status, 400, body);
    assert.equal(code(response), expected, body);
  }
  const invalidUtf8 = await routeApiRequest(backend, { method: 'PUT', url: '/kv/k', headers: {}, body: new Uint8Array([0x7b, 0xff, 0x7d]) });
  assert.equal(code(invalidUtf8), 'INVALID_JSON');
  assert.equal(backend.data.size, 0);
});

test('an oversized body is 413 TOO_LARGE', async () => {
  const backend = new MemoryBackend();
  const response = await call(backend, 'PUT', '/kv/k', JSON.stringify({ value: 'x'.repeat(2000) }));
  assert.equal(response.status, 413);
  assert.equal(code(response), 'TOO_LARGE');
  assert.equal(backend.data.size, 0);
});

test('unknown routes are 404 NOT_FOUND, wrong methods 405 METHOD_NOT_ALLOWED', async () => {
  const backend = new MemoryBackend();
  assert.equal(code(await call(backend, 'GET', '/nope')), 'NOT_FOUND');
  assert.equal((await call(backend, 'GET', '/')).status, 404);
  assert.equal((await call(backend, 'GET', '/../etc/passwd')).status, 404);
  assert.equal(code(await call(backend, 'POST', '/kv/k', '{"value":"v"}')), 'METHOD_NOT_ALLOWED');
  assert.equal((await call(backend, 'DELETE', '/health')).status, 405);
});

test('read options: consistency=stale and revision=N reach the backend; bad ones are 400', async () => {
  const backend = new MemoryBackend();
  await call(backend, 'PUT', '/kv/k', '{"value":"v"}');
  await call(backend, 'GET', '/kv/k?consistency=stale');
  await call(backend, 'GET', '/kv/k?revision=2');
  assert.deepEqual(backend.calls.filter((c) => c.startsWith('get')), ['get k stale -', 'get k linearizable 2']);
  assert.equal(code(await call(backend, 'GET', '/kv/k?consistency=eventual')), 'BAD_REQUEST');
  assert.equal(code(await call(backend, 'GET', '/kv/k?revision=0')), 'INVALID_REVISION');
  assert.equal(code(await call(backend, 'GET', '/kv/k?revision=abc')), 'INVALID_REVISION');
});

test('exactly-once stamps come from X-Client-* headers; malformed ones are 400', async () => {
  const backend = new MemoryBackend();
  await call(backend, 'PUT', '/kv/k', '{"value":"v"}', { 'x-client-id': 'c1', 'x-client-seq': '7', 'x-client-acked-seq': '5' });
  assert.equal(backend.calls[0], 'put k c1/7/5');
  assert.equal(code(await call(backend, 'PUT', '/kv/k', '{"value":"v"}', { 'x-client-id': 'c1' })), 'BAD_REQUEST');
  assert.equal(code(await call(backend, 'PUT', '/kv/k', '{"value":"v"}', { 'x-client-id': 'c1', 'x-client-seq': '3', 'x-client-acked-seq': '3' })), 'BAD_REQUEST');
});

test('backend errors keep their code and status; unknown errors become a bare 500', async () => {
  const backend = new MemoryBackend();
  backend.put = async () => { throw new ApiError('NO_LEADER'); };
  const noLeader = await call(backend, 'PUT', '/kv/k', '{"value":"v"}');
  assert.equal(noLeader.status, 503);
  assert.equal(noLeader.headers?.['retry-after'], '1');
  backend.put = async () => { throw new ApiError('OUTCOME_UNKNOWN'); };
  assert.equal((await call(backend, 'PUT', '/kv/k', '{"value":"v"}')).status, 504);
  backend.put = async () => { throw new TypeError('secret internals'); };
  const internal = await call(backend, 'PUT', '/kv/k', '{"value":"v"}');
  assert.equal(internal.status, 500);
  assert.equal(JSON.stringify(internal.body).includes('secret'), false, 'no internals leak to the client');
});
