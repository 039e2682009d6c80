// Connections that never say hello must not lock members out of the peer port: they have a budget
// of their own (the oldest waiting one is evicted when it is full) and a short deadline, while
// established connections count against maxInboundConnections.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { DEFAULT_ACCEPT_HANDSHAKE_TIMEOUT_MS } from '../../../src/transport/handshake.js';
import { DEFAULT_MAX_PENDING_HANDSHAKES } from '../../../src/transport/inbound.js';
import { Cluster, RawPeer, waitFor, within } from './helpers.js';

const fast = { reconnectBackoffMsMin: 20, reconnectBackoffMsMax: 200 };

/** Opens `count` plain TCP connections that never send a byte, and counts those the server closes. */
async function openIdle(port: number, count: number): Promise<{ closedByServer: () => number; destroy: () => void }> {
  const sockets: Socket[] = [];
  let closed = 0;
  for (let opened = 0; opened < count; opened += 50) {
    const batch = Array.from({ length: Math.min(50, count - opened) }, () => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      socket.on('close', () => {
        closed += 1;
      });
      sockets.push(socket);
      return once(socket, 'connect');
    });
    await Promise.all(batch);
  }
  return { closedByServer: () => closed, destroy: () => sockets.forEach((socket) => socket.destroy()) };
}

test('when the waiting budget is full, a new connection evicts the oldest waiting one', async (t) => {
  const cluster = new Cluster();
  const peers: RawPeer[] = [];
  t.after(async () => {
    for (const peer of peers) peer.destroy();
    await cluster.stopAll();
  });
  await cluster.start(1, { ...fast, maxPendingHandshakes: 3, acceptHandshakeTimeoutMs: 60_000 });
  for (let i = 0; i < 3; i += 1) peers.push(await RawPeer.connect(cluster.port(1)));
  await waitFor(() => cluster.transport(1).inboundCounts().pending === 3, 3000, 'three connections waiting');
  peers.push(await RawPeer.connect(cluster.port(1)));
  await within(peers[0].closed, 3000, 'the oldest waiting connection to be evicted');
  assert.ok(peers[1].isOpen && peers[2].isOpen && peers[3].isOpen, 'only the oldest went');
  await waitFor(() => cluster.transport(1).inboundCounts().pending === 3, 3000, 'the newcomer waiting in its place');
  assert.ok(cluster.warnings(1).some((line) => /too many connections waiting for a handshake/.test(line.msg)));
  // The newcomer can still complete its handshake.
  peers[3].hello(2, 'raft');
  assert.equal((await peers[3].reply()).ok, true);
  assert.deepEqual(cluster.transport(1).inboundCounts(), { pending: 2, established: 1 });
});

test('a connection that never says hello is closed at the acceptor deadline, by default about 2 s', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1, fast);
  const peer = await RawPeer.connect(cluster.port(1));
  t.after(() => peer.destroy());
  const started = performance.now();
  await within(peer.closed, DEFAULT_ACCEPT_HANDSHAKE_TIMEOUT_MS + 2000, 'the silent connection to close');
  const elapsed = performance.now() - started;
  t.diagnostic(`closed after ${Math.round(elapsed)} ms (deadline ${DEFAULT_ACCEPT_HANDSHAKE_TIMEOUT_MS} ms)`);
  assert.ok(elapsed >= DEFAULT_ACCEPT_HANDSHAKE_TIMEOUT_MS - 50, 'not before the deadline');
});

test('1,100 idle connections do not lock a member out, and are all shed within the deadline', async (t) => {
  const cluster = new Cluster();
  let idle: { closedByServer: () => number; destroy: () => void } | undefined;
  t.after(async () => {
    idle?.destroy();
    await cluster.stopAll();
  });
  // Default limits: 1,024 established, 256 waiting; before, 1,100 idle connections took all 1,024
  // slots for the whole 5 s handshake deadline and every member was refused meanwhile.
  await cluster.start(1, fast);
  await cluster.start(2, fast);
  const started = performance.now();
  idle = await openIdle(cluster.port(2), 1100);
  t.diagnostic(`1,100 idle connections opened in ${Math.round(performance.now() - started)} ms; ${idle.closedByServer()} already evicted`);
  assert.ok(cluster.transport(2).inboundCounts().pending <= DEFAULT_MAX_PENDING_HANDSHAKES);
  // A member dials in now, while they are held, and gets through at once.
  const dialed = performance.now();
  // Well inside the time the first idle connections still have (before, all slots stayed taken
  // for 5 s after the first was opened, and opening them takes about 2 s here).
  await cluster.roundTrip(1, 2, 1500);
  t.diagnostic(`member 1 reached member 2 ${Math.round(performance.now() - dialed)} ms after the flood`);
  const counted = idle;
  await waitFor(() => counted.closedByServer() === 1100, DEFAULT_ACCEPT_HANDSHAKE_TIMEOUT_MS + 3000, 'every idle connection to be shed');
  t.diagnostic(`all 1,100 shed ${Math.round(performance.now() - started)} ms after the first was opened`);
  assert.deepEqual(cluster.transport(2).inboundCounts(), { pending: 0, established: 1 });
});
