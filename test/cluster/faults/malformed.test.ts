// Scenario 8: malformed input against a node's API (leader and follower), the gateway and the peer
// port. Every answer must be the documented error (README "Errors", src/common/errors.ts), no
// process may crash, everyone else keeps being served (bystanders read throughout), and nothing
// reaches the log: every node's revision, commit and applied index are the same before and after.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERROR_CATALOGUE, isErrorCode } from '../../../src/common/errors.js';
import { encodeValue } from '../../../src/codec/raft-codec.js';
import { encodeFrame, FrameType } from '../../../src/transport/frame.js';
import { PeerClient } from '../../../src/transport/peer-client.js';
import { faultTestOptions, requireNetns } from '../fault-kit.js';
import { waitFor } from '../harness.js';
import { errorCode, exchange, now, type Endpoint } from '../http-probe.js';
import { probeNetns } from '../netns.js';
import { NsCluster, PEER_PORT, type NodeStatus } from '../ns-cluster.js';
import { openIdle, rawHttp, rawSend } from '../raw-wire.js';
import { History, check, read, write } from '../workload.js';

const MAX_VALUE_BYTES = 1024 * 1024;

interface Outcome {
  readonly target: string;
  readonly name: string;
  readonly expected: string;
  readonly got: string;
  readonly ok: boolean;
}

/** Expected answer: a status with its catalogue code. */
function expect(status: number, code: string): string {
  assert.ok(isErrorCode(code), `${code} is in the catalogue`);
  if (status !== 431) assert.equal(ERROR_CATALOGUE[code].status, status, `${code} is documented with status ${ERROR_CATALOGUE[code].status}`);
  return `${status} ${code}`;
}

interface HttpCase {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  readonly expected: string;
  readonly nodesOnly?: boolean;
}

const big = (bytes: number): string => 'v'.repeat(bytes);

function httpCases(): HttpCase[] {
  const json = (value: unknown): string => JSON.stringify(value);
  const put = (name: string, body: string | Buffer, expected: string, path = '/kv/malformed-a'): HttpCase => ({ name, method: 'PUT', path, body, expected });
  const get = (name: string, path: string, expected: string): HttpCase => ({ name, method: 'GET', path, expected });
  const badJson = expect(400, 'INVALID_JSON');
  const badRequest = expect(400, 'BAD_REQUEST');
  const badKey = expect(400, 'INVALID_KEY');
  const noRoute = expect(404, 'NOT_FOUND');
  const noKey = expect(404, 'KEY_NOT_FOUND');
  const noMethod = expect(405, 'METHOD_NOT_ALLOWED');
  const stamp = (headers: Record<string, string>): HttpCase => ({ name: `stamp ${JSON.stringify(headers)}`, method: 'PUT', path: '/kv/malformed-a', body: json({ value: 'x' }), headers, expected: badRequest });
  return [
    put('truncated JSON', '{"value":', badJson),
    put('not JSON', 'value=hello', badJson),
    put('empty body', '', badJson),
    put('invalid UTF-8 in the body', Buffer.from([0x7b, 0x22, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), badJson),
    put('lone surrogate in the value', '{"value":"\\ud800"}', badJson),
    put('value is a number', json({ value: 3 }), badRequest),
    put('value is null', json({ value: null }), badRequest),
    put('value is an object', json({ value: { a: 1 } }), badRequest),
    put('value is an array', json({ value: ['x'] }), badRequest),
    put('value is a boolean', json({ value: true }), badRequest),
    put('value missing', json({}), badRequest),
    put('value misspelt', json({ val: 'x' }), badRequest),
    put('body is an array', json(['x']), badRequest),
    put('body is a string', json('x'), badRequest),
    put('body is null', 'null', badRequest),
    put('body is a number', '42', badRequest),
    put('value one byte over the limit', json({ value: big(MAX_VALUE_BYTES + 1) }), expect(413, 'TOO_LARGE')),
    put('empty key', json({ value: 'x' }), badKey, '/kv/'),
    put('no key at all', json({ value: 'x' }), badKey, '/kv'),
    put('1,025-byte key', json({ value: 'x' }), badKey, `/kv/${'k'.repeat(1025)}`),
    put('1,026-byte key of two-byte characters', json({ value: 'x' }), badKey, `/kv/${'%C3%A9'.repeat(513)}`),
    put('key with NUL', json({ value: 'x' }), badKey, '/kv/a%00b'),
    put('key with U+0001', json({ value: 'x' }), badKey, '/kv/a%01b'),
    put('key with TAB', json({ value: 'x' }), badKey, '/kv/a%09b'),
    put('key with LF', json({ value: 'x' }), badKey, '/kv/a%0Ab'),
    put('key with DEL', json({ value: 'x' }), badKey, '/kv/a%7Fb'),
    put('key with C1 U+0085', json({ value: 'x' }), badKey, '/kv/a%C2%85b'),
    put('lone % in the key', json({ value: 'x' }), badKey, '/kv/a%'),
    put('bad hex escape', json({ value: 'x' }), badKey, '/kv/a%ZZb'),
    put('truncated UTF-8 escape', json({ value: 'x' }), badKey, '/kv/a%E0%A4'),
    put('invalid UTF-8 escape', json({ value: 'x' }), badKey, '/kv/a%C3%28'),
    put('encoded surrogate', json({ value: 'x' }), badKey, '/kv/a%ED%A0%80'),
    { name: 'DELETE of an empty key', method: 'DELETE', path: '/kv/', expected: badKey },
    { name: 'DELETE of a key with NUL', method: 'DELETE', path: '/kv/%00', expected: badKey },
    get('GET of a 1,025-byte key', `/kv/${'k'.repeat(1025)}`, badKey),
    get('GET of a bad escape', '/kv/%', badKey),
    get('traversal in the key', '/kv/../../etc/passwd', noKey),
    get('encoded traversal in the key', '/kv/..%2F..%2Fetc%2Fpasswd', noKey),
    get('dot-encoded traversal in the key', '/kv/%2e%2e/%2e%2e/etc/passwd', noKey),
    get('traversal outside /kv', '/../../etc/passwd', noRoute),
    get('encoded traversal outside /kv', '/%2e%2e/%2e%2e/etc/passwd', noRoute),
    get('traversal from the data directory', '/kv/../../../../../../proc/self/environ', noKey),
    get('root', '/', noRoute),
    get('unknown route', '/nope', noRoute),
    get('near-miss route', '/kvx/a', noRoute),
    get('etcd-style route', '/v3/kv/range', noRoute),
    get('health with a suffix', '/health/x', noRoute),
    { name: 'POST on a key', method: 'POST', path: '/kv/malformed-a', body: json({ value: 'x' }), expected: noMethod },
    { name: 'PATCH on a key', method: 'PATCH', path: '/kv/malformed-a', body: json({ value: 'x' }), expected: noMethod },
    { name: 'OPTIONS on a key', method: 'OPTIONS', path: '/kv/malformed-a', expected: noMethod },
    { name: 'DELETE on /health', method: 'DELETE', path: '/health', expected: noMethod },
    { name: 'PUT on /health', method: 'PUT', path: '/health', body: json({ value: 'x' }), expected: noMethod },
    { name: 'POST on /cluster/status', method: 'POST', path: '/cluster/status', expected: noMethod },
    get('unknown consistency', '/kv/malformed-a?consistency=eventual', badRequest),
    get('revision 0', '/kv/malformed-a?revision=0', expect(400, 'INVALID_REVISION')),
    get('negative revision', '/kv/malformed-a?revision=-1', expect(400, 'INVALID_REVISION')),
    get('revision not a number', '/kv/malformed-a?revision=abc', expect(400, 'INVALID_REVISION')),
    get('revision in exponent form', '/kv/malformed-a?revision=1e3', expect(400, 'INVALID_REVISION')),
    get('revision from the future', '/kv/malformed-a?revision=999999999999', expect(400, 'FUTURE_REVISION')),
    stamp({ 'x-client-id': 'c1' }),
    stamp({ 'x-client-id': 'c1', 'x-client-seq': 'abc' }),
    stamp({ 'x-client-id': 'c1', 'x-client-seq': '0' }),
    stamp({ 'x-client-id': 'c1', 'x-client-seq': '5', 'x-client-acked-seq': '5' }),
    stamp({ 'x-client-id': 'c'.repeat(200), 'x-client-seq': '1' }),
  ];
}

interface RawCase {
  readonly name: string;
  readonly pieces: (string | Buffer)[];
  readonly expected: string;
  readonly endAfterWrite?: boolean;
}

function rawCases(): RawCase[] {
  const tail = 'Host: x\r\nConnection: close\r\n\r\n';
  const badRequest = expect(400, 'BAD_REQUEST');
  const tooLarge = expect(413, 'TOO_LARGE');
  const chunkedOverLimit: (string | Buffer)[] = ['PUT /kv/malformed-a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'];
  const chunk = Buffer.from(`10000\r\n${'v'.repeat(0x10000)}\r\n`);
  for (let sent = 0; sent < 2 * MAX_VALUE_BYTES + 1024 + 2 * 0x10000; sent += 0x10000) chunkedOverLimit.push(chunk);
  return [
    { name: 'control character in the request line', pieces: [`GET /kv/a\x01b HTTP/1.1\r\n${tail}`], expected: badRequest },
    { name: 'space in the path', pieces: [`GET /kv/a b HTTP/1.1\r\n${tail}`], expected: badRequest },
    { name: 'unknown method', pieces: [`FROB /kv/a HTTP/1.1\r\n${tail}`], expected: badRequest },
    { name: 'not HTTP at all', pieces: ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n'], expected: badRequest },
    { name: 'huge header (20 KiB)', pieces: [`GET /kv/a HTTP/1.1\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n${tail}`], expected: expect(431, 'TOO_LARGE') },
    { name: '3,000 headers (42 KiB)', pieces: [`GET /kv/a HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${String(i).padStart(4, '0')}: v`).join('\r\n')}\r\nConnection: close\r\n\r\n`], expected: expect(431, 'TOO_LARGE') },
    { name: 'declared body over the limit', pieces: [`PUT /kv/malformed-a HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${3 * MAX_VALUE_BYTES}\r\n${tail}`], expected: tooLarge },
    { name: 'chunked body over the limit', pieces: chunkedOverLimit, expected: tooLarge },
    { name: 'bad Content-Length', pieces: [`PUT /kv/malformed-a HTTP/1.1\r\nContent-Length: abc\r\n${tail}{"value":"x"}`], expected: badRequest },
    { name: 'two Content-Lengths', pieces: [`PUT /kv/malformed-a HTTP/1.1\r\nContent-Length: 13\r\nContent-Length: 12\r\n${tail}{"value":"x"}`], expected: badRequest },
    { name: 'headers cut off, then FIN', pieces: ['PUT /kv/malformed-a HTTP/1.1\r\nHost: x\r\nContent-Le'], endAfterWrite: true, expected: 'closed, or 400 BAD_REQUEST' },
    { name: 'body cut off, then FIN', pieces: [`PUT /kv/malformed-a HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 40\r\n${tail}{"value":"tr`], endAfterWrite: true, expected: 'closed, or 400 BAD_REQUEST' },
  ];
}

function describeRaw(answer: { status?: number; code?: string; closed: boolean; text: string }): string {
  if (answer.status !== undefined) return `${answer.status} ${answer.code ?? `(no code: ${answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4, 80)})`}`;
  return answer.closed ? 'closed' : 'no answer';
}

let cluster: NsCluster | undefined;

async function shared(): Promise<NsCluster> {
  if (!probeNetns().ok) requireNetns();
  cluster ??= await NsCluster.start({ name: 'malformed', env: { MAX_VALUE_BYTES: String(MAX_VALUE_BYTES) } });
  return cluster;
}

after(async () => {
  await cluster?.stop();
});

/** Runs `run` on the shared cluster; if it fails, keeps the logs. */
async function keepingLogs(label: string, run: (c: NsCluster) => Promise<void>): Promise<void> {
  const c = await shared();
  try {
    await run(c);
  } catch (error) {
    console.error(`# ${label}: logs kept in ${c.dumpLogs(label)}`);
    throw error;
  }
}

test('malformed input at the node APIs, the gateway and the peer port: documented errors only, nothing reaches the log', faultTestOptions(),
  () => keepingLogs('malformed', body));

// Regression tests for bugs this suite found (each once a todo): the gateway and a missing Host
// header answered without the documented code, and the peer port stored U+FFFD for bad UTF-8.

test('the gateway refuses a value with a lone surrogate, as the node API does', faultTestOptions(), () => keepingLogs('malformed-gateway-surrogate', async (c) => {
  const before = await c.status(await c.waitForLeader());
  for (const { label, endpoint } of [{ label: 'node1', endpoint: c.node(1).api }, { label: 'gateway', endpoint: c.gateway as Endpoint }]) {
    const answer = await exchange(endpoint, 'PUT', '/kv/malformed-surrogate', { body: '{"value":"\\ud800"}', timeoutMs: 10_000 });
    const got = answer.kind === 'answer' ? `${answer.status} ${errorCode(answer.body) ?? answer.text.slice(0, 80)}` : answer.kind;
    console.log(`# ${label}: PUT {"value":"\\ud800"} -> ${got}`);
    assert.equal(got, '400 INVALID_JSON', `${label} answers 400 INVALID_JSON`);
  }
  const afterStatus = await c.status(await c.waitForLeader());
  assert.equal(afterStatus?.revision, before?.revision, 'nothing was applied');
}));

test('the peer port refuses strings that are not valid UTF-8 instead of storing U+FFFD', faultTestOptions(), () => keepingLogs('malformed-peer-utf8', async (c) => {
  const leader = await c.waitForLeader();
  const follower = c.ids.find((id) => id !== leader) as number;
  const before = await c.status(leader);
  // msgpackr writes a lone surrogate as the bytes ED A0 80, which are not UTF-8; without the check
  // they were decoded to U+FFFD and the put applied with a different value or key.
  const bad: { name: string; request: unknown }[] = [
    { name: 'value with a lone surrogate', request: { type: 'put', key: 'malformed-utf8', value: '\ud800' } },
    { name: 'key with a lone surrogate', request: { type: 'put', key: 'malformed-\udc00', value: 'x' } },
    { name: 'delete of a key with a lone surrogate', request: { type: 'delete', key: 'malformed-\ud800' } },
    { name: 'client id with a lone surrogate', request: { type: 'put', key: 'malformed-utf8', value: 'x', client: { clientId: 'c\ud800', seq: 1, ackedSeq: 0 } } },
  ];
  for (const target of [leader, follower]) {
    const client = await PeerClient.connect(c.node(target).peerAddress, c.clusterId);
    try {
      for (const { name, request } of bad) {
        const answer = await client.request(request, 10_000) as { ok?: boolean; code?: string };
        console.log(`# node${target} peer port ${name} -> ${JSON.stringify(answer).slice(0, 160)}`);
        assert.equal(answer.ok, false, `node${target} ${name}: refused`);
        assert.equal(answer.code, 'INVALID_JSON', `node${target} ${name}: documented code`);
      }
      // The same connection still serves a valid request.
      const status = await client.request({ type: 'status' }, 10_000) as { ok?: boolean };
      assert.equal(status.ok, true, `node${target}: the connection still serves after the refusals`);
    } finally {
      client.close();
    }
  }
  const afterStatus = await c.status(await c.waitForLeader());
  assert.equal(afterStatus?.revision, before?.revision, 'nothing was applied');
  const read = await exchange(c.node(leader).api, 'GET', '/kv/malformed-utf8', { timeoutMs: 10_000 });
  assert.equal(read.kind === 'answer' ? read.status : read.kind, 404, 'the key was not written');
}));

test('an HTTP/1.1 request without a Host header gets a JSON error with a code', faultTestOptions(), () => keepingLogs('malformed-no-host', async (c) => {
  for (const endpoint of c.endpoints()) {
    const answer = await rawHttp(endpoint, ['GET /kv/a HTTP/1.1\r\nConnection: close\r\n\r\n'], { timeoutMs: 5000 });
    console.log(`# ${endpoint.name}: GET without Host -> ${JSON.stringify(answer.text.slice(0, 120))}`);
    assert.equal(describeRaw(answer), '400 BAD_REQUEST', endpoint.name);
  }
}));

async function indexes(c: NsCluster): Promise<NodeStatus[]> {
  return Promise.all(c.ids.map(async (id) => {
    const status = await c.status(id);
    assert.ok(status, `node ${id} answers /cluster/status`);
    return status;
  }));
}

async function body(c: NsCluster): Promise<void> {
  const history = new History();
  const leader = await c.waitForLeader();
  const follower = c.ids.find((id) => id !== leader) as number;
  const otherFollower = c.ids.find((id) => id !== leader && id !== follower) as number;
  const targets: { label: string; endpoint: Endpoint }[] = [
    { label: `leader node${leader}`, endpoint: c.node(leader).api },
    { label: `follower node${follower}`, endpoint: c.node(follower).api },
    { label: 'gateway', endpoint: c.gateway as Endpoint },
  ];
  // Known state for the bystanders, then quiescence.
  for (let i = 0; i < 4; i++) {
    const op = await write('put', `bystander-${i}`, `before-${i}`, { history, clientId: 1, endpoint: () => c.node(leader).api, timeoutMs: 5000 });
    assert.equal(op.status, 'ok');
  }
  const pids = c.ids.map((id) => c.node(id).process?.pid);
  // Let the cluster's own start-up entries settle first: where members' HTTP addresses are recorded
  // in the membership (one config entry each), wait for that, and for every node to agree.
  await waitFor('the membership to record every HTTP address and the nodes to agree', async () => {
    const all = await indexes(c);
    const settled = all.every((s) => s.commitIndex === all[0].commitIndex && s.appliedIndex === s.commitIndex)
      && (all[0].membership?.members ?? []).every((m) => m.httpAddr !== '');
    return settled ? true : undefined;
  }, 15_000, 200).catch(() => console.log('# malformed: the membership did not record every HTTP address; comparing anyway'));
  const before = await indexes(c);

  // Bystanders: linearizable reads through every API all along; each must be served.
  let stopBystanders = false;
  const bystanderLatencies: number[] = [];
  const bystanderFailures: string[] = [];
  const endpoints = c.endpoints();
  const bystanders = endpoints.map(async (endpoint, n) => {
    while (!stopBystanders) {
      const started = now();
      const op = await read(`bystander-${n % 4}`, { history, clientId: 100 + n, endpoint, timeoutMs: 8000 });
      bystanderLatencies.push(now() - started);
      if (op.status !== 'ok') bystanderFailures.push(`${endpoint.name}: ${history.details.get(op.id)?.attempts.at(-1)?.outcome}`);
      await sleep(50);
    }
  });

  // Slow clients run through the whole barrage: headers one byte at a time, and a body that trickles.
  const slowStarted = now();
  const slow = targets.flatMap(({ label, endpoint }) => [
    rawHttp(endpoint, [...'GET /kv/bystander-0 HTTP/1.1\r\nHost: x\r\nX-Slow: '].map((ch) => ch).concat(Array.from({ length: 200 }, () => 'a')), { timeoutMs: 75_000, delayMs: 1000 })
      .then((answer) => ({ label, what: 'slow headers', answer })),
    rawHttp(endpoint, ['PUT /kv/malformed-slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"value":"', ...Array.from({ length: 200 }, () => 's')], { timeoutMs: 75_000, delayMs: 1000 })
      .then((answer) => ({ label, what: 'slow body', answer })),
  ]);

  const outcomes: Outcome[] = [];
  const record = (target: string, name: string, expected: string, got: string, ok = got === expected): void => {
    outcomes.push({ target, name, expected, got, ok });
  };

  // ---- HTTP through node:http --------------------------------------------------------------------
  for (const { label, endpoint } of targets) {
    for (const item of httpCases()) {
      if (item.nodesOnly && label === 'gateway') continue;
      const answer = await exchange(endpoint, item.method, item.path, { timeoutMs: 10_000, ...(item.body !== undefined ? { body: item.body } : {}), ...(item.headers ? { headers: item.headers } : {}) });
      const got = answer.kind === 'answer' ? `${answer.status} ${errorCode(answer.body) ?? `(not a JSON error: ${answer.text.slice(0, 60)})`}` : answer.kind;
      record(label, item.name, item.expected, got, got === item.expected && !(answer.kind === 'answer' && answer.text.includes('root:')));
    }
    for (const item of rawCases()) {
      const answer = await rawHttp(endpoint, item.pieces, { timeoutMs: 10_000, ...(item.endAfterWrite ? { endAfterWrite: true } : {}) });
      const got = describeRaw(answer);
      const ok = item.expected.startsWith('closed')
        ? (answer.status === undefined ? answer.closed : got === '400 BAD_REQUEST')
        : got === item.expected;
      record(label, item.name, item.expected, got, ok);
    }
  }

  // ---- idle connections ----------------------------------------------------------------------------
  const idleHttp = await openIdle(c.node(follower).address, c.node(follower).api.port, 1000);
  const idleGateway = await openIdle((c.gateway as Endpoint).host, (c.gateway as Endpoint).port, 300);
  const idlePeer = await openIdle(c.node(follower).address, PEER_PORT, 1100);
  // Served meanwhile: a fresh request to every API.
  for (const endpoint of endpoints) {
    const op = await read('bystander-0', { history, clientId: 200, endpoint, timeoutMs: 8000 });
    record(endpoint.name, 'read while 2,400 idle connections are open', '200', op.status === 'ok' ? '200' : history.details.get(op.id)?.attempts.at(-1)?.outcome ?? '?');
  }
  // The peer port ends connections that never say hello: the oldest are evicted once 256 wait, the
  // rest at the acceptor's handshake deadline (2 s).
  const idlePeerClosedMs = await waitFor('the follower to close idle peer-port connections', async () => (idlePeer.closedByServer() >= 1100 ? now() : undefined), 20_000, 100).then((t) => t, () => Infinity);
  record(`node${follower} peer port`, '1,100 connections that never say hello are closed', 'all closed', idlePeer.closedByServer() >= 1100 ? 'all closed' : `${idlePeer.closedByServer()} closed`);
  idleHttp.close();
  idleGateway.close();
  idlePeer.close();

  // ---- the peer port -------------------------------------------------------------------------------
  // Stands for "a hello from the very node it is sent to", filled in per target below.
  const SELF = -1;
  const SELF_HELLO = Buffer.from('self-hello');
  const hello = (fields: Record<string, unknown>): Buffer => fields.from === SELF ? SELF_HELLO : encodeFrame(FrameType.hello, encodeValue({ magic: 'raft-kv', protocolVersion: 1, clusterId: c.clusterId, from: 'client', purpose: 'client', ...fields }));
  const absurd = Buffer.alloc(5);
  absurd.writeUInt32BE(0xffffffff, 0);
  absurd.writeUInt8(FrameType.hello, 4);
  const maxFrame = Buffer.alloc(5 + 16);
  maxFrame.writeUInt32BE(64 * 1024 * 1024, 0);
  maxFrame.writeUInt8(FrameType.hello, 4);
  const random = Buffer.alloc(64 * 1024);
  for (let i = 0; i < random.length; i++) random[i] = Math.floor(Math.random() * 256);
  const peerCases: { name: string; pieces: Buffer[]; expected: 'closed' | 'refused'; withinMs: number }[] = [
    { name: '64 KiB of random bytes', pieces: [random], expected: 'closed', withinMs: 6000 },
    { name: 'frame length 0xFFFFFFFF', pieces: [absurd], expected: 'closed', withinMs: 2000 },
    { name: 'frame of the maximum length that never arrives', pieces: [maxFrame], expected: 'closed', withinMs: 8000 },
    { name: 'empty hello frame', pieces: [encodeFrame(FrameType.hello)], expected: 'closed', withinMs: 2000 },
    { name: 'hello that is not MessagePack', pieces: [encodeFrame(FrameType.hello, Buffer.from([0xc1, 0xc1, 0xc1]))], expected: 'closed', withinMs: 2000 },
    { name: 'a Raft message before any hello', pieces: [encodeFrame(FrameType.raftMessage, encodeValue({ type: 'heartbeatRequest' }))], expected: 'closed', withinMs: 2000 },
    { name: 'unknown frame type', pieces: [encodeFrame(200, Buffer.from('x'))], expected: 'closed', withinMs: 2000 },
    { name: 'hello of another cluster', pieces: [hello({ clusterId: 'not-this-cluster' })], expected: 'refused', withinMs: 3000 },
    { name: 'hello with another protocol version', pieces: [hello({ protocolVersion: 99 })], expected: 'refused', withinMs: 3000 },
    { name: 'a client asking for a Raft connection', pieces: [hello({ purpose: 'raft' })], expected: 'refused', withinMs: 3000 },
    { name: 'hello claiming to be the node itself', pieces: [hello({ from: SELF, purpose: 'raft' })], expected: 'refused', withinMs: 3000 },
    { name: 'client hello, then garbage request', pieces: [hello({}), encodeFrame(FrameType.clientRequest, Buffer.from([0xc1]))], expected: 'closed', withinMs: 3000 },
    { name: 'client hello, then a request without an id', pieces: [hello({}), encodeFrame(FrameType.clientRequest, encodeValue({ body: { type: 'status' } }))], expected: 'closed', withinMs: 3000 },
    { name: 'client hello, then a Raft message', pieces: [hello({}), encodeFrame(FrameType.raftMessage, encodeValue({ type: 'heartbeatRequest', from: 1, to: 2, term: 999 }))], expected: 'closed', withinMs: 3000 },
    { name: `spoofed member ${otherFollower}, then a malformed Raft message`, pieces: [hello({ from: otherFollower, purpose: 'raft' }), encodeFrame(FrameType.raftMessage, encodeValue({ type: 'appendRequest', from: otherFollower, to: follower, term: 'x' }))], expected: 'closed', withinMs: 3000 },
  ];
  for (const target of [follower, leader]) {
    for (const item of peerCases) {
      const pieces = item.pieces.map((piece) => (piece === SELF_HELLO ? hello({ from: target, purpose: 'raft' }) : piece));
      const answer = await rawSend(c.node(target).address, PEER_PORT, pieces, { timeoutMs: item.withinMs + 2000 });
      const refused = answer.bytes.length > 5 && answer.bytes.readUInt8(4) === FrameType.helloReply && answer.bytes.includes(Buffer.from('reason'));
      const got = !answer.closed ? `still open after ${Math.round(answer.ms)} ms` : refused ? 'refused' : 'closed';
      record(`node${target} peer port`, item.name, `${item.expected} within ${item.withinMs} ms`, `${got} after ${Math.round(answer.ms)} ms`, got === item.expected && answer.ms <= item.withinMs);
    }
  }

  // Well-framed client requests with malformed bodies: each answered with its code, none proposed.
  const rpcCases: { name: string; request: unknown; code: string }[] = [
    { name: 'put with a number value', request: { type: 'put', key: 'malformed-a', value: 5 }, code: 'BAD_REQUEST' },
    { name: 'put without a value', request: { type: 'put', key: 'malformed-a' }, code: 'BAD_REQUEST' },
    { name: 'put with an empty key', request: { type: 'put', key: '', value: 'x' }, code: 'INVALID_KEY' },
    { name: 'put with a 1,025-byte key', request: { type: 'put', key: 'k'.repeat(1025), value: 'x' }, code: 'INVALID_KEY' },
    { name: 'put with a NUL in the key', request: { type: 'put', key: 'a\u0000b', value: 'x' }, code: 'INVALID_KEY' },
    { name: 'put with a value over the limit', request: { type: 'put', key: 'malformed-a', value: big(MAX_VALUE_BYTES + 1) }, code: 'TOO_LARGE' },
    { name: 'delete with an empty key', request: { type: 'delete', key: '' }, code: 'INVALID_KEY' },
    { name: 'get with a key that is a number', request: { type: 'get', key: 5, consistency: 'linearizable' }, code: 'BAD_REQUEST' },
    { name: 'get with an unknown consistency', request: { type: 'get', key: 'a', consistency: 'eventual' }, code: 'BAD_REQUEST' },
    { name: 'get with a negative revision', request: { type: 'get', key: 'a', consistency: 'stale', revision: -1 }, code: 'BAD_REQUEST' },
    { name: 'put with an empty client id', request: { type: 'put', key: 'a', value: 'x', client: { clientId: '', seq: 1, ackedSeq: 0 } }, code: 'BAD_REQUEST' },
    { name: 'put with sequence 0', request: { type: 'put', key: 'a', value: 'x', client: { clientId: 'c', seq: 0, ackedSeq: 0 } }, code: 'BAD_REQUEST' },
    { name: 'unknown request type', request: { type: 'compact' }, code: 'BAD_REQUEST' },
    { name: 'a bare string', request: 'status', code: 'BAD_REQUEST' },
    { name: 'null', request: null, code: 'BAD_REQUEST' },
  ];
  for (const target of [follower, leader]) {
    const client = await PeerClient.connect(c.node(target).peerAddress, c.clusterId);
    try {
      for (const item of rpcCases) {
        let got: string;
        try {
          const answer = await client.request(item.request, 10_000) as { ok?: boolean; code?: string };
          got = answer?.ok === false ? String(answer.code) : `ok ${JSON.stringify(answer).slice(0, 60)}`;
        } catch (error) {
          got = `error ${(error as Error).message}`;
        }
        record(`node${target} peer port`, `request: ${item.name}`, item.code, got);
      }
    } finally {
      client.close();
    }
  }

  // ---- slow clients: the server must end them ---------------------------------------------------------
  const slowAnswers = await Promise.all(slow);
  // The headers must arrive within 5 s, the whole request within 30 s; node:http checks twice a second.
  const slowBoundMs: Record<string, number> = { 'slow headers': 10_000, 'slow body': 40_000 };
  for (const { label, what, answer } of slowAnswers) {
    const got = answer.status !== undefined ? `${describeRaw(answer)} after ${Math.round(answer.ms / 1000)} s` : answer.closed ? `closed after ${Math.round(answer.ms / 1000)} s` : 'still open after 75 s';
    const boundMs = slowBoundMs[what] ?? 75_000;
    record(label, what, `ended by the server with ${expect(408, 'REQUEST_TIMEOUT')} within ${boundMs / 1000} s`, got, answer.closed && describeRaw(answer) === '408 REQUEST_TIMEOUT' && answer.ms <= boundMs);
  }
  const slowSeconds = Math.round((now() - slowStarted) / 1000);
  const slowSummary = slowAnswers.map(({ label, what, answer }) => `${label} ${what}: ${describeRaw(answer)} after ${Math.round(answer.ms / 1000)}s`).join('; ');

  stopBystanders = true;
  await Promise.all(bystanders);

  // ---- nothing reached the log, no process died, everyone was served ------------------------------------
  const after = await indexes(c);
  const alive = c.ids.map((id) => c.node(id).process?.pid);
  const sortedLatencies = [...bystanderLatencies].sort((a, b) => a - b);
  const maxLatency = Math.round(sortedLatencies.at(-1) ?? 0);
  const p99 = Math.round(sortedLatencies[Math.floor(sortedLatencies.length * 0.99)] ?? 0);

  // ---- then the API still writes, including the odd-but-valid keys ------------------------------------------
  const valid: { key: string; value: string }[] = [
    { key: 'k'.repeat(1024), value: 'longest key' },
    { key: '../../etc/passwd', value: 'just a key' },
    { key: 'café/ключ/键', value: 'unicode' },
    { key: 'bystander-0', value: big(MAX_VALUE_BYTES) },
  ];
  for (const { key, value } of valid) {
    for (const target of targets) {
      const op = await write('put', key, `${value}`, { history, clientId: 300, endpoint: () => target.endpoint, timeoutMs: 10_000 });
      record(target.label, `valid write of ${key.length > 20 ? `${key.slice(0, 12)}...(${Buffer.byteLength(key)} bytes)` : key}`, '200', op.status === 'ok' ? '200' : history.details.get(op.id)?.attempts.at(-1)?.outcome ?? '?');
    }
  }
  for (const { key } of valid) await read(key, { history, clientId: 301, endpoint: c.node(follower).api, timeoutMs: 8000 });
  const verdict = check(history);
  const finalFailed = outcomes.filter((o) => !o.ok);

  console.log(`# SUMMARY malformed: ops=${outcomes.length} (malformed or hostile requests and checks) ok=${outcomes.length - finalFailed.length} failed=${finalFailed.length} unknown=0 longest-ack-gap=n/a (no writes during the barrage) bystander-reads=${bystanderLatencies.length} bystander-failures=${bystanderFailures.length} bystander-latency p99=${p99}ms max=${maxLatency}ms slow-clients-ended-after=${slowSeconds}s idle-peer-connections-closed-after=${Number.isFinite(idlePeerClosedMs) ? Math.round(idlePeerClosedMs - slowStarted) : 'never'}ms revision/commit before=${JSON.stringify(before.map((s) => [s.revision, s.commitIndex]))} after=${JSON.stringify(after.map((s) => [s.revision, s.commitIndex]))} checker=${verdict.result.verdict === 'linearizable' ? verdict.text : verdict.result.verdict.toUpperCase()}`);
  console.log(`# slow clients: ${slowSummary}`);
  for (const o of finalFailed) console.log(`# UNDOCUMENTED ANSWER ${o.target} | ${o.name} | expected ${o.expected} | got ${o.got}`);

  assert.deepEqual(alive, pids, 'no node process died or was replaced');
  for (let i = 0; i < before.length; i++) {
    const node = before[i].nodeId;
    assert.equal(after[i].revision, before[i].revision, `node ${node}: the store revision is unchanged (nothing was applied)`);
    // An election (two busy cores can cause one) adds at most one no-op entry per new term; nothing else may appear.
    // The cluster's own entries may appear meanwhile: a no-op per new term, a config entry per
    // member address the leader records. Nothing else may.
    const newTerms = after[i].term - before[i].term;
    const addressChanges = (after[i].membership?.members ?? []).filter((m) => before[i].membership?.members.find((b) => b.id === m.id)?.httpAddr !== m.httpAddr).length;
    const allowed = newTerms + addressChanges;
    if (allowed > 0) console.log(`# malformed: node ${node} saw ${newTerms} new term(s) and ${addressChanges} recorded address(es) during the barrage`);
    assert.ok(after[i].commitIndex - before[i].commitIndex <= allowed, `node ${node}: commit index ${before[i].commitIndex} -> ${after[i].commitIndex} with ${newTerms} new terms and ${addressChanges} address records: something reached the log`);
    assert.ok(after[i].appliedIndex - before[i].appliedIndex <= allowed, `node ${node}: applied index ${before[i].appliedIndex} -> ${after[i].appliedIndex}`);
  }
  assert.deepEqual(bystanderFailures, [], 'every bystander read was served during the barrage');
  assert.equal(verdict.result.verdict, 'linearizable', verdict.text);
  assert.deepEqual(finalFailed.map((o) => `${o.target} | ${o.name} | expected ${o.expected} | got ${o.got}`), [], 'every malformed request got its documented answer');
}
