// Text that is not valid UTF-8 on the peer port: a client request holding some is answered with an
// error and never reaches the handler (decoding it would have changed the text); the connection
// stays usable. A frame whose id is unusable as well, or a Raft message with bad text, ends the
// connection and delivers nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeValue } from '../../../src/codec/raft-codec.js';
import { encodeFrame, FrameType } from '../../../src/transport/frame.js';
import { PeerClient, PeerClientError } from '../../../src/transport/peer-transport.js';
import { CLUSTER, Cluster, RawPeer, within } from './helpers.js';

/** A one-node cluster whose handler records every body it is given and echoes it. */
async function recordingNode(t: { after: (fn: () => Promise<void>) => void }, withAnswer: boolean): Promise<{ address: string; port: number; seen: unknown[]; cluster: Cluster }> {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const seen: unknown[] = [];
  await cluster.start(1, {
    onClientRequest: async (body) => {
      seen.push(body);
      return { echoed: body };
    },
    ...(withAnswer ? { onInvalidClientText: (reason: string) => ({ ok: false, code: 'INVALID_JSON', message: reason }) } : {}),
  });
  return { address: cluster.addresses.get(1) as string, port: cluster.port(1), seen, cluster };
}

test('a request with a lone surrogate gets the configured answer, never reaches the handler, and the connection stays', async (t) => {
  const { address, seen } = await recordingNode(t, true);
  const client = await PeerClient.connect(address, CLUSTER);
  t.after(() => client.close());
  const answer = await client.request({ type: 'put', key: 'k', value: 'a\ud800b' }, 5000) as { ok: boolean; code: string; message: string };
  assert.equal(answer.ok, false);
  assert.equal(answer.code, 'INVALID_JSON');
  assert.match(answer.message, /not valid UTF-8/);
  assert.deepEqual(seen, [], 'the handler saw nothing');
  assert.deepEqual(await client.request({ type: 'put', key: 'k', value: 'café' }, 5000), { echoed: { type: 'put', key: 'k', value: 'café' } }, 'the same connection still serves');
  assert.equal(seen.length, 1);
});

test('without a configured answer, the request fails with a transport error that says why', async (t) => {
  const { address, seen } = await recordingNode(t, false);
  const client = await PeerClient.connect(address, CLUSTER);
  t.after(() => client.close());
  await assert.rejects(client.request({ key: '\udc00' }, 5000), (error: unknown) => error instanceof PeerClientError && error.code === 'REMOTE' && /not valid UTF-8/.test(error.message));
  assert.deepEqual(seen, []);
  assert.deepEqual(await client.request({ key: 'ok' }, 5000), { echoed: { key: 'ok' } });
});

test('a request with bad text and no usable id ends the connection', async (t) => {
  const { port, seen } = await recordingNode(t, true);
  const peer = await RawPeer.connect(port);
  t.after(() => peer.destroy());
  peer.hello('client', 'client');
  await peer.reply();
  peer.socket.write(encodeFrame(FrameType.clientRequest, encodeValue({ id: 'x\ud800', body: { type: 'status' } })));
  await within(peer.closed, 3000, 'the node to close the connection');
  assert.deepEqual(seen, []);
});

test('a Raft message with bad text ends the connection and is not delivered', async (t) => {
  const { port, cluster } = await recordingNode(t, true);
  const peer = await RawPeer.connect(port);
  t.after(() => peer.destroy());
  peer.hello(2, 'raft');
  const reply = await peer.reply();
  assert.equal(reply.ok, true);
  // Well-shaped otherwise: without the check it would be delivered with U+FFFD in the address.
  const bad = encodeValue({ type: 'appendRequest', from: 2, to: 1, term: 1, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0,
    entries: [{ kind: 'config', term: 1, index: 1, membership: { members: [{ id: 2, role: 'voter', peerAddr: 'host\ud800:1', httpAddr: 'h:2' }] } }] });
  peer.socket.write(encodeFrame(FrameType.raftMessage, bad));
  await within(peer.closed, 3000, 'the node to close the connection');
  assert.equal(cluster.inbox(1).has(() => true), false, 'nothing was delivered');
});
