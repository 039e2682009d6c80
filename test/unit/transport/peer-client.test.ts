// PeerClient against a real transport: many requests in flight answered out of order, a deadline,
// a handler that fails, the in-flight bound, and what happens to pending requests on close.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerClient, PeerClientError } from '../../../src/transport/peer-transport.js';
import { CLUSTER, Cluster, within } from './helpers.js';

interface Echo {
  readonly value: number;
  readonly delayMs?: number;
  readonly fail?: string;
  readonly hold?: boolean;
}

function isCode(code: string): (error: unknown) => boolean {
  return (error: unknown) => error instanceof PeerClientError && error.code === code;
}

/** A node whose client handler echoes, after a delay, fails on request, or holds until released. */
async function echoNode(t: { after: (fn: () => Promise<void> | void) => void }): Promise<{ cluster: Cluster; address: string; release: () => void; held: () => number }> {
  const cluster = new Cluster();
  const holds: Array<() => void> = [];
  t.after(async () => {
    for (const release of holds.splice(0)) release();
    await cluster.stopAll();
  });
  await cluster.start(1, {
    onClientRequest: async (body) => {
      const request = body as Echo;
      if (request.hold === true) await new Promise<void>((resolve) => holds.push(resolve));
      if (request.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, request.delayMs));
      if (request.fail !== undefined) throw new Error(request.fail);
      return { echoed: request.value };
    },
  });
  return {
    cluster,
    address: cluster.addresses.get(1) as string,
    release: () => {
      for (const release of holds.splice(0)) release();
    },
    held: () => holds.length,
  };
}

test('several requests in flight on one connection, answered out of order, each to its caller', async (t) => {
  const { address } = await echoNode(t);
  const client = await PeerClient.connect(address, CLUSTER);
  t.after(() => client.close());
  assert.equal(client.nodeId, 1);
  const finished: number[] = [];
  const delays = [120, 10, 80, 40, 0];
  const answers = await Promise.all(delays.map(async (delayMs, value) => {
    const answer = await client.request({ value, delayMs }, 5000);
    finished.push(value);
    return answer;
  }));
  assert.deepEqual(answers, delays.map((_, value) => ({ echoed: value })));
  assert.notDeepEqual(finished, [0, 1, 2, 3, 4], 'answers came back in completion order, not send order');
  assert.equal(client.inFlight, 0);
});

test('a request without an answer in time fails with TIMEOUT; the connection stays usable', async (t) => {
  const { address, release, held } = await echoNode(t);
  const client = await PeerClient.connect(address, CLUSTER);
  t.after(() => client.close());
  const started = performance.now();
  await assert.rejects(client.request({ value: 1, hold: true }, 100), isCode('TIMEOUT'));
  t.diagnostic(`timed out after ${Math.round(performance.now() - started)} ms (deadline 100 ms)`);
  assert.equal(held(), 1);
  release();
  // The late answer to the timed-out request is ignored; the next request is answered normally.
  assert.deepEqual(await client.request({ value: 2 }, 5000), { echoed: 2 });
});

test('a failing handler answers REMOTE with its message', async (t) => {
  const { address } = await echoNode(t);
  const client = await PeerClient.connect(address, CLUSTER);
  t.after(() => client.close());
  await assert.rejects(client.request({ value: 1, fail: 'not the leader' }, 5000), (error: unknown) => isCode('REMOTE')(error) && (error as Error).message === 'not the leader');
  assert.deepEqual(await client.request({ value: 3 }, 5000), { echoed: 3 });
});

test('closing fails the requests in flight with CLOSED, and later requests too', async (t) => {
  const { address, held } = await echoNode(t);
  const client = await PeerClient.connect(address, CLUSTER);
  const pending = [client.request({ value: 1, hold: true }, 5000), client.request({ value: 2, hold: true }, 5000)];
  await within((async () => {
    while (held() < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  })(), 5000, 'both requests to reach the handler');
  client.close();
  await Promise.all(pending.map((request) => assert.rejects(request, isCode('CLOSED'))));
  await assert.rejects(client.request({ value: 3 }, 5000), isCode('CLOSED'));
  assert.equal(client.closed, true);
  await within(client.whenClosed(), 2000, 'the socket to close');
});

test('the node going away fails requests in flight with CLOSED', async (t) => {
  const { cluster, address, held } = await echoNode(t);
  const client = await PeerClient.connect(address, CLUSTER);
  t.after(() => client.close());
  const pending = client.request({ value: 1, hold: true }, 5000);
  await within((async () => {
    while (held() < 1) await new Promise((resolve) => setTimeout(resolve, 5));
  })(), 5000, 'the request to reach the handler');
  const failed = assert.rejects(pending, isCode('CLOSED'));
  await cluster.stop(1);
  await failed;
});

test('requests beyond maxInFlight fail at once with OVERLOADED', async (t) => {
  const { address, release } = await echoNode(t);
  const client = await PeerClient.connect(address, CLUSTER, { maxInFlight: 2 });
  t.after(() => client.close());
  const first = client.request({ value: 1, hold: true }, 5000);
  const second = client.request({ value: 2, hold: true }, 5000);
  await assert.rejects(client.request({ value: 3 }, 5000), isCode('OVERLOADED'));
  await within((async () => {
    // The handler may not have seen both requests yet; release until both are answered.
    for (;;) {
      release();
      if (client.inFlight === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })(), 5000, 'the held requests to be answered');
  assert.deepEqual(await Promise.all([first, second]), [{ echoed: 1 }, { echoed: 2 }]);
});

test('connecting to nothing fails with CONNECT_FAILED', async () => {
  await assert.rejects(PeerClient.connect('127.0.0.1:1', CLUSTER, { handshakeTimeoutMs: 2000 }), isCode('CONNECT_FAILED'));
  await assert.rejects(PeerClient.connect('not-an-address', CLUSTER), isCode('CONNECT_FAILED'));
});
