// Links that break and heal: a peer that stops and comes back on the same port, a half-open link
// (a proxy that goes silent without closing), a queue toward a dead peer that must stay bounded,
// and hostile input that must cost only the offending connection while honest peers carry on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, encodeValue } from '../../../src/codec/raft-codec.js';
import type { Message } from '../../../src/raft/types.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameType } from '../../../src/transport/frame.js';
import { Cluster, heartbeat, RawPeer, StallableProxy, unusedPort, waitFor, within } from './helpers.js';

const fast = { reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 200 };

test('reconnect: after a peer stops and restarts on the same port, messages flow again', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const one = await cluster.start(1, fast);
  await cluster.start(2, fast);
  await cluster.roundTrip(1, 2);
  await cluster.roundTrip(2, 1);

  await cluster.stop(2);
  await waitFor(() => one.peerStatus().get(2)?.connected === false, 3000, 'member 1 to notice member 2 is gone');
  // Traffic while the peer is down: queued (bounded), redialed with backoff, refused by the OS.
  for (let context = 0; context < 10; context += 1) one.send([heartbeat(1, 2, context)]);
  await waitFor(() => (one.peerStatus().get(2)?.reconnects ?? 0) >= 2, 3000, 'redial attempts');

  await cluster.start(2, fast);
  await cluster.roundTrip(1, 2);
  await cluster.roundTrip(2, 1);
  // The messages queued during the outage were delivered on the new connection, in order.
  const early = cluster.inbox(2).contexts(1).filter((context) => context < 10);
  assert.deepEqual(early, Array.from({ length: 10 }, (_, i) => i));
  const status = one.peerStatus().get(2);
  assert.equal(status?.connected, true);
  t.diagnostic(`reconnects counted: ${status?.reconnects}`);
});

test('half-open link: a silent peer is detected within livenessTimeoutMs on both sides, and the link heals', async (t) => {
  const cluster = new Cluster();
  const proxies = [new StallableProxy(), new StallableProxy()];
  t.after(async () => {
    await cluster.stopAll();
    await Promise.all(proxies.map((proxy) => proxy.close()));
  });
  const timing = { ...fast, pingIntervalMs: 50, livenessTimeoutMs: 300, handshakeTimeoutMs: 500 };
  await cluster.start(1, timing);
  await cluster.start(2, timing);
  // Each member reaches the other only through a proxy, so both directions can be cut.
  const toTwo = await proxies[0].listen(cluster.port(2));
  const toOne = await proxies[1].listen(cluster.port(1));
  cluster.addresses.set(2, `127.0.0.1:${toTwo}`);
  cluster.addresses.set(1, `127.0.0.1:${toOne}`);
  await cluster.roundTrip(1, 2);
  await cluster.roundTrip(2, 1);
  const one = cluster.transport(1);
  const two = cluster.transport(2);

  const cutAt = performance.now();
  for (const proxy of proxies) proxy.stall();
  // Keep Raft traffic going during the cut, as a leader would.
  const traffic = setInterval(() => {
    one.send([heartbeat(1, 2, 0)]);
    two.send([heartbeat(2, 1, 0)]);
  }, 20);
  t.after(() => clearInterval(traffic));
  await waitFor(() => one.peerStatus().get(2)?.connected === false && two.peerStatus().get(1)?.connected === false, 3000, 'both dialers to declare their link dead');
  const detectedMs = performance.now() - cutAt;
  t.diagnostic(`dead links detected ${Math.round(detectedMs)} ms after the cut (livenessTimeoutMs 300)`);
  assert.ok(detectedMs < 300 + 1000, 'within livenessTimeoutMs plus scheduling slack');
  // The acceptors noticed too: each side's inbound connection went silent and was closed.
  await waitFor(() => [1, 2].every((node) => cluster.warnings(node).some((line) => line.msg === 'peer connection is silent; closing it' && line.fields.side === 'acceptor')), 3000, 'the acceptors to close their silent connections');

  for (const proxy of proxies) proxy.resume();
  const healStarted = performance.now();
  await cluster.roundTrip(1, 2);
  await cluster.roundTrip(2, 1);
  t.diagnostic(`link healed ${Math.round(performance.now() - healStarted)} ms after the proxies resumed`);
  clearInterval(traffic);
});

test('bounded queue toward a dead peer: memory stops at the limit and drops are counted', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const limit = 64 * 1024;
  const one = await cluster.start(1, { ...fast, maxQueuedBytesPerPeer: limit });
  cluster.addresses.set(2, `127.0.0.1:${await unusedPort()}`);
  // Every message the same size, so the queue's byte count converts to a message count.
  const append: Message = { type: 'appendRequest', from: 1, to: 2, term: 1, prevLogIndex: 7, prevLogTerm: 1, entries: [{ kind: 'command', term: 1, index: 8, data: new Uint8Array(1000) }], leaderCommit: 0 };
  const frameBytes = FRAME_HEADER_BYTES + encodeMessage(append).byteLength;
  let sent = 0;
  for (let round = 0; round < 5; round += 1) {
    for (let i = 0; i < 1000; i += 1, sent += 1) one.send([append]);
    const status = one.peerStatus().get(2);
    assert.ok(status !== undefined);
    assert.ok(status.queuedBytes <= limit, `queued ${status.queuedBytes} <= ${limit}`);
    // Let the event loop turn (flushes, failed dials) between rounds.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const status = one.peerStatus().get(2);
  assert.ok(status !== undefined);
  assert.equal(status.connected, false);
  assert.equal(status.queuedBytes, Math.floor(limit / frameBytes) * frameBytes, 'the queue holds as many messages as fit, no more');
  assert.equal(status.dropped + status.queuedBytes / frameBytes, sent, 'every message is either queued or counted as dropped');
  t.diagnostic(`${sent} sent, ${status.queuedBytes / frameBytes} queued (${status.queuedBytes} bytes), ${status.dropped} dropped`);
  assert.ok(cluster.warnings(1).some((line) => /queue full/.test(line.msg)));
});

test('hostile input is cut off connection by connection while honest members keep talking', async (t) => {
  const cluster = new Cluster();
  const attackers: RawPeer[] = [];
  t.after(async () => {
    for (const attacker of attackers) attacker.destroy();
    await cluster.stopAll();
  });
  await cluster.start(1, fast);
  await cluster.start(2, fast);
  await cluster.roundTrip(1, 2);
  await cluster.roundTrip(2, 1);
  const port = cluster.port(2);
  const attack = async (name: string, act: (peer: RawPeer) => Promise<void> | void): Promise<void> => {
    const peer = await RawPeer.connect(port);
    attackers.push(peer);
    await act(peer);
    await within(peer.closed, 3000, `${name}: the connection to be closed`);
    await cluster.roundTrip(1, 2);
    await cluster.roundTrip(2, 1);
  };

  // Each attacker claims a different member id: warnings are rate-limited per peer, and each
  // reason should be seen in the log.
  await attack('garbage bytes', (peer) => {
    peer.socket.write(Buffer.from('\x00\x00\x00\x03\x63garbage that is not a frame stream at all'));
  });
  await attack('an absurd frame length after a valid handshake', async (peer) => {
    peer.hello(4);
    assert.equal((await peer.reply()).ok, true);
    peer.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, FrameType.raftMessage]));
  });
  await attack('a wrong cluster id', async (peer) => {
    peer.hello(5, 'raft', 'other-cluster');
    assert.equal((await peer.reply()).ok, false);
  });
  await attack('a spoofed from', async (peer) => {
    peer.hello(6);
    assert.equal((await peer.reply()).ok, true);
    peer.sendValue(FrameType.raftMessage, heartbeat(1, 2, 777));
  });
  await attack('a message for another member', async (peer) => {
    peer.hello(7);
    await peer.reply();
    peer.sendValue(FrameType.raftMessage, heartbeat(7, 1, 778));
  });
  await attack('an undecodable message', async (peer) => {
    peer.hello(8);
    await peer.reply();
    peer.socket.write(encodeFrame(FrameType.raftMessage, Buffer.from([0xd9, 0x10, 0x41])));
  });
  await attack('a malformed message', async (peer) => {
    peer.hello(9);
    await peer.reply();
    peer.sendValue(FrameType.raftMessage, { type: 'voteRequest', from: 9, to: 2 });
  });
  await attack('an unknown frame type', async (peer) => {
    peer.hello(10);
    await peer.reply();
    peer.socket.write(encodeFrame(200, Buffer.from([1])));
  });
  await attack('a snapshot request on a raft connection', async (peer) => {
    peer.hello(11);
    await peer.reply();
    peer.sendValue(FrameType.raftMessage, { type: 'snapshotRequest', from: 11, to: 2, term: 1, snapshot: { index: 1, term: 1, membership: { members: [] } } });
  });

  assert.ok(!cluster.inbox(2).has((m) => m.from >= 3 || (m as { context?: number }).context === 777), 'nothing from the attackers reached the core');
  const reasons = cluster.warnings(2).map((line) => String(line.fields.reason));
  for (const expected of [/oversized frame/, /cluster id mismatch/, /claims to be from member 1/, /addressed to member 1/, /undecodable/, /unknown frame type 200/, /without its snapshot/]) {
    assert.ok(reasons.some((reason) => expected.test(reason)), `a warning matching ${expected}`);
  }
  assert.equal(cluster.errors().length, 0, 'no errors: hostile input is a warning, not a failure');
  assert.equal(cluster.transport(1).peerStatus().get(2)?.reconnects, 0, 'the honest link 1 -> 2 was never dropped');
  assert.equal(cluster.transport(2).peerStatus().get(1)?.reconnects, 0, 'the honest link 2 -> 1 was never dropped');
});

test('a newer Raft connection from a member replaces its older one', async (t) => {
  const cluster = new Cluster();
  const peers: RawPeer[] = [];
  t.after(async () => {
    for (const peer of peers) peer.destroy();
    await cluster.stopAll();
  });
  await cluster.start(2);
  const older = await RawPeer.connect(cluster.port(2));
  peers.push(older);
  older.hello(3);
  assert.equal((await older.reply()).ok, true);
  const newer = await RawPeer.connect(cluster.port(2));
  peers.push(newer);
  newer.hello(3);
  assert.equal((await newer.reply()).ok, true);
  await within(older.closed, 3000, 'the older connection to be closed');
  newer.sendValue(FrameType.raftMessage, heartbeat(3, 2, 31));
  await waitFor(() => cluster.inbox(2).contexts(3).includes(31), 3000, 'a message on the newer connection');
  assert.ok(newer.isOpen);
});

test('inbound connections beyond maxInboundConnections established ones are refused and logged', async (t) => {
  const cluster = new Cluster();
  const peers: RawPeer[] = [];
  t.after(async () => {
    for (const peer of peers) peer.destroy();
    await cluster.stopAll();
  });
  await cluster.start(1, fast);
  // A long liveness deadline: these raw clients answer no pings, and must stay while the test looks.
  await cluster.start(2, { ...fast, maxInboundConnections: 2, livenessTimeoutMs: 60_000, onClientRequest: async (body) => body });
  // Established client connections take the slots (connections still waiting for a hello have a
  // budget of their own: see pending-handshakes.test.ts).
  for (let i = 0; i < 2; i += 1) {
    const peer = await RawPeer.connect(cluster.port(2));
    peers.push(peer);
    peer.hello('client', 'client');
    assert.equal((await peer.reply()).ok, true);
  }
  const third = await RawPeer.connect(cluster.port(2));
  peers.push(third);
  await within(third.closed, 3000, 'the connection over the limit to be closed');
  assert.ok(cluster.warnings(2).some((line) => /too many inbound connections/.test(line.msg)));
  assert.ok(peers[0].isOpen && peers[1].isOpen);
  // Once the established connections go, a member gets in again.
  peers[0].destroy();
  peers[1].destroy();
  await waitFor(() => cluster.transport(2).inboundCounts().established === 0, 3000, 'the slots to free up');
  await cluster.roundTrip(1, 2);
});

test('random bytes on fresh connections never crash the node', async (t) => {
  const cluster = new Cluster();
  const peers: RawPeer[] = [];
  t.after(async () => {
    for (const peer of peers) peer.destroy();
    await cluster.stopAll();
  });
  await cluster.start(1, { ...fast, handshakeTimeoutMs: 300 });
  await cluster.start(2, { ...fast, handshakeTimeoutMs: 300 });
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let round = 0; round < 40; round += 1) {
    const peer = await RawPeer.connect(cluster.port(2));
    peers.push(peer);
    // Half the rounds start with a valid handshake, so the garbage reaches the per-purpose handlers.
    if (round % 2 === 0) peer.hello(3, (['raft', 'snapshot', 'client'] as const)[round % 3]);
    const bytes = Buffer.alloc(1 + Math.floor(random() * 200));
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(random() * 256);
    // Small frames with random types and payloads, then raw noise.
    peer.socket.write(encodeFrame(Math.floor(random() * 16), bytes.subarray(0, Math.floor(bytes.length / 2))));
    peer.socket.write(encodeFrame(FrameType.raftMessage, encodeValue({ type: 'heartbeatRequest', from: 3, to: 2, term: -1 })));
    peer.socket.write(bytes);
  }
  for (const peer of peers) await within(peer.closed, 5000, 'every fuzzed connection to close');
  await cluster.roundTrip(1, 2);
  await cluster.roundTrip(2, 1);
  assert.equal(cluster.errors().length, 0);
});
