// Raft messages between real transports on loopback: both directions of a pair, a full mesh of
// three, batching a send() into one socket write, and what send() refuses to send.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import type { AppendRequest, CommandEntry, Entry, Message } from '../../../src/raft/types.js';
import { Cluster, heartbeat, snapshotRequest, waitFor } from './helpers.js';

test('two transports exchange Raft messages in both directions, each on its own connection', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const one = await cluster.start(1);
  const two = await cluster.start(2);
  const entry: Entry = { kind: 'command', term: 1, index: 1, data: new Uint8Array([1, 2, 3]) };
  const append: Message = { type: 'appendRequest', from: 1, to: 2, term: 1, prevLogIndex: 0, prevLogTerm: 0, entries: [entry], leaderCommit: 0 };
  one.send([append]);
  two.send([{ type: 'appendResponse', from: 2, to: 1, term: 1, success: true, matchIndex: 1, conflictIndex: 0, conflictTerm: 0, rejectedIndex: 0 }]);
  await waitFor(() => cluster.inbox(2).messages.length === 1 && cluster.inbox(1).messages.length === 1, 5000, 'one message each way');
  const received = cluster.inbox(2).messages[0];
  assert.equal(received.type, 'appendRequest');
  const [got] = (received as AppendRequest).entries;
  assert.equal(got.kind, 'command');
  assert.deepEqual(Array.from((got as CommandEntry).data), [1, 2, 3]);
  assert.equal(cluster.inbox(1).messages[0].type, 'appendResponse');
  assert.equal(one.peerStatus().get(2)?.connected, true);
  assert.equal(two.peerStatus().get(1)?.connected, true);
  assert.equal(cluster.errors().length, 0);
});

test('three transports: every member reaches every other, messages keep their order per pair', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const ids = [1, 2, 3];
  for (const id of ids) await cluster.start(id);
  for (const from of ids) {
    for (const to of ids) {
      if (from === to) continue;
      for (let context = 0; context < 20; context += 1) cluster.transport(from).send([heartbeat(from, to, context)]);
    }
  }
  await waitFor(() => ids.every((id) => cluster.inbox(id).messages.length === 40), 5000, '40 messages at each member');
  for (const to of ids) {
    for (const from of ids) {
      if (from === to) continue;
      assert.deepEqual(cluster.inbox(to).contexts(from), Array.from({ length: 20 }, (_, i) => i), `${from} -> ${to} in order`);
    }
    assert.ok(cluster.inbox(to).messages.every((m) => m.to === to));
  }
});

/**
 * Two connected transports with pings slowed to one a minute (keepalive writes stay out of the
 * count), and a spy counting the socket writes to member 2 until `stop()` or the end of the test.
 */
async function pairWithWriteSpy(t: TestContext): Promise<{ cluster: Cluster; one: Awaited<ReturnType<Cluster['start']>>; before: number; writes: number[]; stop: () => void }> {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const slowPings = { pingIntervalMs: 60_000, livenessTimeoutMs: 120_000 };
  const one = await cluster.start(1, slowPings);
  await cluster.start(2, slowPings);
  await cluster.roundTrip(1, 2);
  const before = cluster.inbox(2).messages.length;
  const writes: number[] = [];
  const originalWrite = Socket.prototype.write;
  const port2 = cluster.port(2);
  Socket.prototype.write = function spy(this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (this.remotePort === port2) writes.push(Buffer.byteLength(args[0] as Buffer));
    return originalWrite.apply(this, args);
  } as Socket['write'];
  const stop = (): void => {
    Socket.prototype.write = originalWrite;
  };
  t.after(stop);
  return { cluster, one, before, writes, stop };
}

const contexts = (messages: readonly Message[]): number[] => messages.map((m) => (m as { context: number }).context);

test('batching: the 100 messages of one send() arrive in order, in one socket write made before send() returns', async (t) => {
  const { cluster, one, before, writes, stop } = await pairWithWriteSpy(t);
  one.send(Array.from({ length: 100 }, (_, i) => heartbeat(1, 2, 1000 + i)));
  assert.equal(writes.length, 1, 'send() wrote them at once, not a turn of the event loop later');
  await waitFor(() => cluster.inbox(2).messages.length === before + 100, 5000, '100 messages');
  stop();
  assert.deepEqual(contexts(cluster.inbox(2).messages.slice(before)), Array.from({ length: 100 }, (_, i) => 1000 + i));
  assert.equal(writes.length, 1, `one write for 100 messages, got ${writes.length}`);
  t.diagnostic(`100 messages in ${writes.length} write(s) of ${writes.join(', ')} bytes`);
});

test('send(..., { writeNow: false }) leaves its messages for the end of the turn, behind which a later send() keeps their order', async (t) => {
  const { cluster, one, before, writes, stop } = await pairWithWriteSpy(t);
  one.send([heartbeat(1, 2, 1), heartbeat(1, 2, 2)], { writeNow: false });
  assert.equal(writes.length, 0, 'nothing written yet');
  await waitFor(() => cluster.inbox(2).messages.length === before + 2, 5000, 'the deferred messages');
  assert.equal(writes.length, 1, 'written together at the end of the turn');
  one.send([heartbeat(1, 2, 3)], { writeNow: false });
  one.send([heartbeat(1, 2, 4)]);
  assert.equal(writes.length, 2, 'the next send() wrote the queue, the deferred message first');
  await waitFor(() => cluster.inbox(2).messages.length === before + 4, 5000, 'all four');
  stop();
  assert.deepEqual(contexts(cluster.inbox(2).messages.slice(before)), [1, 2, 3, 4]);
});

test('messages to ourselves, to unknown members, or not from us are dropped; send() never throws', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const one = await cluster.start(1);
  await cluster.start(2);
  one.send([heartbeat(1, 1, 1), heartbeat(1, 9, 2), heartbeat(5, 2, 3), snapshotRequest(1, 2)]);
  one.send([heartbeat(1, 2, 4)]);
  await waitFor(() => cluster.inbox(2).messages.length === 1, 5000, 'the one valid message');
  assert.equal(cluster.inbox(2).contexts()[0], 4);
  assert.equal(cluster.inbox(1).messages.length, 0);
  assert.deepEqual([...one.peerStatus().keys()], [2], 'no link for ourselves or unknown members');
  assert.ok(cluster.warnings(1).some((line) => /not from this node/.test(line.msg)));
  assert.ok(cluster.warnings(1).some((line) => /sendSnapshot/.test(line.msg)));
});

test('an exception thrown by onMessage is logged and the connection carries on', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  let calls = 0;
  await cluster.start(1);
  await cluster.start(2, {
    onMessage: (message) => {
      calls += 1;
      if ((message as { context: number }).context === 1) throw new Error('bug in the runtime');
      cluster.inbox(2).push(message);
    },
  });
  cluster.transport(1).send([heartbeat(1, 2, 1), heartbeat(1, 2, 2)]);
  await waitFor(() => cluster.inbox(2).messages.length === 1, 5000, 'the message after the throwing one');
  assert.equal(calls, 2);
  assert.ok(cluster.errors().some((line) => /onMessage threw/.test(line.msg)));
  assert.equal(cluster.transport(1).peerStatus().get(2)?.reconnects, 0, 'the connection was not dropped');
});

test('stop() is idempotent, and send() after stop is a no-op', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const one = await cluster.start(1);
  await cluster.start(2);
  await cluster.roundTrip(1, 2);
  const first = one.stop();
  assert.equal(one.stop(), first);
  await first;
  one.send([heartbeat(1, 2, 5)]);
  assert.equal(await one.sendSnapshot(2, snapshotRequest(1, 2), (async function* () {})()), false);
});
