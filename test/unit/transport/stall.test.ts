// An event-loop stall on our side must not be mistaken for a silent peer. After a stall the liveness
// timer fires before the loop has read what arrived meanwhile; the connection deserves that read
// before it is judged. The peer runs in a worker thread so it keeps sending while we are stalled.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { Cluster, waitFor } from './helpers.js';

test('a stall of our own event loop longer than the liveness timeout does not condemn a live inbound connection', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  await cluster.start(1, { pingIntervalMs: 50, livenessTimeoutMs: 300 });
  const worker = new Worker(new URL('./stall-peer.js', import.meta.url), { workerData: { role: 'stall-peer', selfId: 2, targetId: 1, targetAddress: cluster.addresses.get(1) } });
  t.after(async () => {
    worker.postMessage('stop');
    await once(worker, 'exit');
  });
  await once(worker, 'message');
  await waitFor(() => cluster.inbox(1).messages.length > 5, 5000, 'messages from the worker peer');

  // Stall from a setImmediate callback: the next loop iteration then starts with the timers phase,
  // so the liveness check runs before the poll phase reads what the peer sent during the stall.
  await new Promise<void>((resolve) => setImmediate(() => {
    const until = performance.now() + 1000;
    while (performance.now() < until) { /* a deliberate stall of 1 s, more than 3 liveness timeouts */ }
    resolve();
  }));
  const countAfterStall = cluster.inbox(1).messages.length;
  await waitFor(() => cluster.inbox(1).messages.length > countAfterStall + 5, 5000, 'messages after the stall');
  const silent = cluster.warnings(1).filter((line) => line.msg === 'peer connection is silent; closing it' && line.fields.side === 'acceptor');
  assert.deepEqual(silent, [], 'the inbound connection was not judged silent because of our own stall');
});
