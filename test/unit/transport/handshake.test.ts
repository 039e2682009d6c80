// The handshake: the pure check with every refusal, then the same over real sockets (reply, close,
// logged warning with reason and remote address), deadlines on both sides, and a dialer that finds
// the wrong member at an address.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { encodeFrame, FrameType } from '../../../src/transport/frame.js';
import { checkHello, checkHelloReply, HANDSHAKE_MAGIC, helloFor, type HelloPolicy, PROTOCOL_VERSION } from '../../../src/transport/handshake.js';
import { PeerClient, PeerClientError } from '../../../src/transport/peer-transport.js';
import { CLUSTER, Cluster, heartbeat, RawPeer, waitFor, within } from './helpers.js';

const policy: HelloPolicy = { selfId: 1, clusterId: CLUSTER, servesClients: true };
const good = { magic: HANDSHAKE_MAGIC, protocolVersion: PROTOCOL_VERSION, clusterId: CLUSTER, from: 2, purpose: 'raft' };

test('checkHello accepts members for every purpose and clients for client connections', () => {
  for (const purpose of ['raft', 'snapshot', 'client'] as const) {
    assert.deepEqual(checkHello({ ...good, purpose }, policy), { ok: true, hello: helloFor(CLUSTER, 2, purpose) });
  }
  assert.deepEqual(checkHello({ ...good, from: 'client', purpose: 'client' }, policy), { ok: true, hello: helloFor(CLUSTER, 'client', 'client') });
});

test('checkHello refuses each mismatch with a reason that names it', () => {
  const refusals: Array<[unknown, RegExp, HelloPolicy?]> = [
    ['not a record', /not a record/],
    [[1, 2], /not a record/],
    [{ ...good, magic: 'etcd' }, /wrong magic/],
    [{ ...good, protocolVersion: 2 }, /protocol version 2/],
    [{ ...good, protocolVersion: '1' }, /protocol version/],
    [{ ...good, clusterId: 'other-cluster' }, /cluster id mismatch.*other-cluster/],
    [{ ...good, clusterId: 7 }, /cluster id is not a string/],
    [{ ...good, from: 1 }, /own id 1/],
    [{ ...good, from: 0 }, /neither a member id/],
    [{ ...good, from: -3 }, /neither a member id/],
    [{ ...good, from: 2.5 }, /neither a member id/],
    [{ ...good, from: 'gateway' }, /neither a member id/],
    [{ ...good, purpose: 'admin' }, /unknown purpose/],
    [{ ...good, from: 'client', purpose: 'raft' }, /client may only/],
    [{ ...good, from: 'client', purpose: 'snapshot' }, /client may only/],
    [{ ...good, from: 'client', purpose: 'client' }, /serves no client requests/, { ...policy, servesClients: false }],
  ];
  for (const [hello, reason, withPolicy] of refusals) {
    const check = checkHello(hello, withPolicy ?? policy);
    assert.equal(check.ok, false, JSON.stringify(hello));
    assert.match((check as { reason: string }).reason, reason);
  }
});

test('checkHelloReply reads acceptances and refusals and rejects anything else', () => {
  assert.deepEqual(checkHelloReply({ ok: true, nodeId: 3 }), { ok: true, nodeId: 3 });
  assert.deepEqual(checkHelloReply({ ok: false, reason: 'no' }), { ok: false, reason: 'no' });
  assert.throws(() => checkHelloReply({ ok: true }));
  assert.throws(() => checkHelloReply({ ok: 'yes' }));
  assert.throws(() => checkHelloReply(null));
});

test('over the wire: an acceptable hello is answered with our node id and the connection stays open', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1);
  const peer = await RawPeer.connect(cluster.port(1));
  t.after(() => peer.destroy());
  peer.hello(2, 'raft');
  assert.deepEqual(await peer.reply(), { ok: true, nodeId: 1 });
  peer.sendValue(FrameType.raftMessage, heartbeat(2, 1, 42));
  await waitFor(() => cluster.inbox(1).contexts(2).includes(42), 2000, 'the message after the handshake');
  assert.ok(peer.isOpen);
});

test('over the wire: every refusal is answered { ok: false, reason }, closed, and logged with the remote address', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['wrong magic', { ...good, magic: 'nope' }, /wrong magic/],
    ['wrong protocol version', { ...good, protocolVersion: 99 }, /protocol version 99/],
    ['wrong cluster id', { ...good, clusterId: 'someone-else' }, /cluster id mismatch/],
    ['our own id', { ...good, from: 1 }, /own id/],
    ['a client asking for raft', { ...good, from: 'client', purpose: 'raft' }, /client may only/],
    ['a client asking for snapshot', { ...good, from: 'client', purpose: 'snapshot' }, /client may only/],
    ['client purpose without a handler', { ...good, from: 'client', purpose: 'client' }, /serves no client requests/],
  ];
  for (const [name, hello, reason] of cases) {
    const before = cluster.warnings(1).length;
    const peer = await RawPeer.connect(cluster.port(1));
    peer.sendValue(FrameType.hello, hello);
    const reply = await peer.reply();
    assert.equal(reply.ok, false, name);
    assert.match(String(reply.reason), reason, name);
    await within(peer.closed, 3000, `the refused connection to close (${name})`);
    const warning = cluster.warnings(1).slice(before).find((line) => line.msg === 'peer connection refused');
    assert.ok(warning !== undefined, `warning logged for ${name}`);
    assert.match(String(warning.fields.remote), /^127\.0\.0\.1:\d+$/);
    assert.match(String(warning.fields.reason), reason);
  }
  assert.equal(cluster.inbox(1).messages.length, 0);
});

test('over the wire: a connection that sends no handshake is closed at the deadline', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1, { handshakeTimeoutMs: 200 });
  const peer = await RawPeer.connect(cluster.port(1));
  t.after(() => peer.destroy());
  const started = performance.now();
  await within(peer.closed, 3000, 'the silent connection to close');
  const elapsed = performance.now() - started;
  t.diagnostic(`closed after ${Math.round(elapsed)} ms (deadline 200 ms)`);
  assert.ok(elapsed >= 150, 'not before the deadline');
  assert.ok(cluster.warnings(1).some((line) => /no handshake before the deadline/.test(line.msg)));
});

test('over the wire: a frame other than the handshake first is a violation and closes the connection', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1);
  const peer = await RawPeer.connect(cluster.port(1));
  t.after(() => peer.destroy());
  peer.sendValue(FrameType.raftMessage, heartbeat(2, 1, 1));
  await within(peer.closed, 3000, 'the connection to close');
  assert.equal(peer.frames.length, 0, 'no reply to a peer that skipped the handshake');
  assert.equal(cluster.inbox(1).messages.length, 0);
});

test('dialer side: a server that never answers the handshake fails the dial at the deadline', async (t) => {
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket.on('error', () => {})));
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const started = performance.now();
  await assert.rejects(PeerClient.connect(`127.0.0.1:${port}`, CLUSTER, { handshakeTimeoutMs: 200 }), (error: unknown) => error instanceof PeerClientError && error.code === 'CONNECT_FAILED' && /within 200 ms/.test(error.message));
  t.diagnostic(`dial failed after ${Math.round(performance.now() - started)} ms (deadline 200 ms)`);
});

test('dialer side: a refusal reaches the caller with its reason', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1, { onClientRequest: async (body) => body });
  await assert.rejects(PeerClient.connect(cluster.addresses.get(1) as string, 'another-cluster'), (error: unknown) => error instanceof PeerClientError && error.code === 'REFUSED' && /cluster id mismatch/.test(error.message));
});

test('dialer side: finding another member at a peer\'s address is a failed dial, not a link', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1, { reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 50 });
  await cluster.start(3);
  // The membership says member 2 lives where member 3 actually listens.
  cluster.addresses.set(2, cluster.addresses.get(3) as string);
  cluster.transport(1).send([heartbeat(1, 2, 1)]);
  await waitFor(() => cluster.warnings(1).some((line) => /expected member 2 at this address, found member 3/.test(String(line.fields.reason))), 3000, 'the mismatch warning');
  assert.equal(cluster.transport(1).peerStatus().get(2)?.connected, false);
  assert.equal(cluster.inbox(3).messages.length, 0, 'member 3 never received member 2\'s message');
});

test('a raw byte stream that is not a frame (an HTTP request) is closed as oversized', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1);
  const peer = await RawPeer.connect(cluster.port(1));
  t.after(() => peer.destroy());
  peer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await within(peer.closed, 3000, 'the connection to close');
  assert.ok(cluster.warnings(1).some((line) => line.fields.reason === 'oversized frame'));
  // And a well-formed hello frame with an undecodable payload.
  const garbled = await RawPeer.connect(cluster.port(1));
  t.after(() => garbled.destroy());
  garbled.socket.write(encodeFrame(FrameType.hello, Buffer.from([0xc1, 0xc1, 0xc1])));
  await within(garbled.closed, 3000, 'the garbled connection to close');
});
