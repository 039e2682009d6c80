// Snapshot streaming on a connection of its own: a large image through a slow consumer with memory
// held down by backpressure, and every way a transfer can fail (sender gone, receiver gone, network
// silent, receiver refuses, receiver stops reading early) ending in `false` and, on the receiving
// side, an iterable that throws rather than a truncated snapshot that looks whole.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { SnapshotRequest } from '../../../src/raft/types.js';
import { SnapshotChunkStream } from '../../../src/transport/snapshot-stream.js';
import { Cluster, heartbeat, snapshotRequest, StallableProxy, unusedPort, waitFor, within } from './helpers.js';

const CHUNK_BYTES = 64 * 1024;

function chunkOf(index: number): Buffer {
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  chunk.fill(index & 0xff);
  chunk.writeUInt32BE(index, 0);
  return chunk;
}

/** A source that yields `count` chunks (or forever) and records how far it got. */
function source(count: number, progress: { produced: number }): AsyncIterable<Uint8Array> {
  return (async function* generate() {
    for (let index = 0; index < count; index += 1) {
      progress.produced += CHUNK_BYTES;
      yield chunkOf(index);
    }
  })();
}

test('a 50 MiB snapshot in 64 KiB chunks reaches a slow consumer intact, with memory held down by backpressure', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const count = 800;
  const progress = { produced: 0 };
  let consumed = 0;
  let maxInFlight = 0;
  let maxBuffered = 0;
  let received: SnapshotRequest | null = null;
  const receivedHash = createHash('sha256');
  await cluster.start(1);
  await cluster.start(2, {
    onSnapshot: async (request, chunks) => {
      received = request;
      assert.ok(chunks instanceof SnapshotChunkStream);
      for await (const chunk of chunks) {
        consumed += chunk.byteLength;
        receivedHash.update(chunk);
        maxInFlight = Math.max(maxInFlight, progress.produced - consumed);
        maxBuffered = Math.max(maxBuffered, chunks.bufferedBytes);
        // A consumer much slower than loopback: about a millisecond per chunk.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
  });
  const expectedHash = createHash('sha256');
  for (let index = 0; index < count; index += 1) expectedHash.update(chunkOf(index));

  // Heartbeats keep flowing on the Raft connection while the snapshot streams.
  const heartbeats = setInterval(() => cluster.transport(1).send([heartbeat(1, 2, 5)]), 20);
  t.after(() => clearInterval(heartbeats));
  const started = performance.now();
  const ok = await within(cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2, 4242), source(count, progress)), 60_000, 'the snapshot transfer');
  clearInterval(heartbeats);
  const elapsedMs = performance.now() - started;

  assert.equal(ok, true);
  assert.equal(consumed, count * CHUNK_BYTES);
  assert.equal(receivedHash.digest('hex'), expectedHash.digest('hex'), 'every byte arrived, in order');
  assert.equal((received as SnapshotRequest | null)?.snapshot.index, 4242);
  // Without backpressure the sender would be ~50 MiB ahead of this consumer; with it, the gap is
  // the receive queue (1 MiB) plus what the kernel's socket buffers hold.
  assert.ok(maxBuffered <= 1024 * 1024 + 2 * CHUNK_BYTES, `receiver buffered at most ${maxBuffered} bytes`);
  assert.ok(maxInFlight <= 20 * 1024 * 1024, `sender ran at most ${maxInFlight} bytes ahead of the consumer`);
  assert.ok(cluster.inbox(2).messages.length > 0, 'heartbeats were delivered during the transfer');
  t.diagnostic(`50 MiB in ${Math.round(elapsedMs)} ms; receiver queue peak ${(maxBuffered / 1024).toFixed(0)} KiB; sender ahead of consumer by at most ${(maxInFlight / 1024 / 1024).toFixed(1)} MiB`);
});

test('a snapshot cut off midway (sender destroyed): the receiver\'s iterable throws and sendSnapshot resolves false', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  let consumedChunks = 0;
  let receiverError: unknown = null;
  let receiverFinished = false;
  await cluster.start(1);
  await cluster.start(2, {
    onSnapshot: async (_request, chunks) => {
      try {
        for await (const chunk of chunks) {
          void chunk;
          consumedChunks += 1;
        }
      } catch (error) {
        receiverError = error;
        throw error;
      } finally {
        receiverFinished = true;
      }
    },
  });
  const sending = cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2), source(Number.MAX_SAFE_INTEGER, { produced: 0 }));
  await waitFor(() => consumedChunks >= 20, 10_000, 'the receiver to consume some chunks');
  await cluster.stop(1);
  assert.equal(await within(sending, 5000, 'sendSnapshot to settle'), false);
  await waitFor(() => receiverFinished, 5000, 'the receiver to finish');
  assert.ok(receiverError instanceof Error, 'the iterable threw');
  assert.match(receiverError.message, /broke before its end/);
  assert.ok(cluster.logs.some((line) => line.msg === 'snapshot not installed' && line.fields.node === 2));
});

test('the receiver going away mid-transfer makes sendSnapshot resolve false', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  let consumedChunks = 0;
  await cluster.start(1);
  await cluster.start(2, {
    onSnapshot: async (_request, chunks) => {
      for await (const chunk of chunks) {
        void chunk;
        consumedChunks += 1;
      }
    },
  });
  const sending = cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2), source(Number.MAX_SAFE_INTEGER, { produced: 0 }));
  await waitFor(() => consumedChunks >= 20, 10_000, 'some chunks to arrive');
  await cluster.stop(2);
  assert.equal(await within(sending, 5000, 'sendSnapshot to settle'), false);
});

test('a network that goes silent mid-transfer fails the snapshot on both sides within the liveness timeout', async (t) => {
  const cluster = new Cluster();
  const proxy = new StallableProxy();
  t.after(async () => {
    await cluster.stopAll();
    await proxy.close();
  });
  const timing = { pingIntervalMs: 50, livenessTimeoutMs: 300 };
  let consumedChunks = 0;
  let receiverError: unknown = null;
  await cluster.start(1, timing);
  await cluster.start(2, {
    ...timing,
    onSnapshot: async (_request, chunks) => {
      try {
        for await (const chunk of chunks) {
          void chunk;
          consumedChunks += 1;
        }
      } catch (error) {
        receiverError = error;
        throw error;
      }
    },
  });
  cluster.addresses.set(2, `127.0.0.1:${await proxy.listen(cluster.port(2))}`);
  const sending = cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2), source(Number.MAX_SAFE_INTEGER, { produced: 0 }));
  await waitFor(() => consumedChunks >= 20, 10_000, 'some chunks to arrive');
  const cutAt = performance.now();
  proxy.stall();
  assert.equal(await within(sending, 5000, 'sendSnapshot to settle'), false);
  t.diagnostic(`sender gave up ${Math.round(performance.now() - cutAt)} ms after the cut (livenessTimeoutMs 300)`);
  await waitFor(() => receiverError !== null, 5000, 'the receiver\'s iterable to throw');
  assert.match((receiverError as Error).message, /broke before its end.*no frame received/);
});

test('a consumer slower than the liveness timeout does not kill a healthy transfer', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const timing = { pingIntervalMs: 50, livenessTimeoutMs: 300 };
  await cluster.start(1, timing);
  let chunksSeen = 0;
  await cluster.start(2, {
    ...timing,
    snapshotHighWaterBytes: 2 * CHUNK_BYTES,
    onSnapshot: async (_request, chunks) => {
      for await (const chunk of chunks) {
        void chunk;
        chunksSeen += 1;
        // Twice a long stall, while the socket is paused and while the install "finishes".
        if (chunksSeen === 10) await new Promise((resolve) => setTimeout(resolve, 700));
      }
      await new Promise((resolve) => setTimeout(resolve, 700));
    },
  });
  const ok = await within(cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2), source(100, { produced: 0 })), 20_000, 'the transfer');
  assert.equal(ok, true);
  assert.equal(chunksSeen, 100);
});

test('a receiver that rejects, or stops reading early, answers false', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  let mode: 'reject' | 'early' = 'reject';
  await cluster.start(1);
  await cluster.start(2, {
    onSnapshot: async (_request, chunks) => {
      let seen = 0;
      for await (const chunk of chunks) {
        void chunk;
        seen += 1;
        if (seen === 5 && mode === 'reject') throw new Error('disk full');
        if (seen === 5 && mode === 'early') break;
      }
    },
  });
  assert.equal(await within(cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2), source(1000, { produced: 0 })), 10_000, 'the rejected transfer'), false);
  assert.ok(cluster.warnings(1).some((line) => line.fields.reason === 'disk full'), 'the sender logs the receiver\'s reason');
  mode = 'early';
  assert.equal(await within(cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2), source(1000, { produced: 0 })), 10_000, 'the abandoned transfer'), false);
  assert.ok(cluster.logs.some((line) => line.fields.reason === 'the receiver finished before the end of the stream'));
  // A small snapshot afterwards still works: failures cost only their own connection.
  mode = 'reject';
  const small = await cluster.transport(1).sendSnapshot(2, snapshotRequest(1, 2), source(3, { produced: 0 }));
  assert.equal(small, true);
});

test('sendSnapshot refuses bad requests and unreachable members, and closes the unread source', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.stopAll());
  const one = await cluster.start(1);
  cluster.addresses.set(3, `127.0.0.1:${await unusedPort()}`);
  let closedSources = 0;
  // A source that counts how often it was closed without being read (as a file stream would be).
  const tracked = (): AsyncIterable<Uint8Array> => ({
    [Symbol.asyncIterator]: () => ({
      next: async () => ({ value: chunkOf(0), done: false }),
      return: async () => {
        closedSources += 1;
        return { value: undefined, done: true };
      },
    }),
  });
  assert.equal(await one.sendSnapshot(2, snapshotRequest(3, 2), tracked()), false, 'not from us');
  assert.equal(await one.sendSnapshot(2, snapshotRequest(1, 3), tracked()), false, 'not to the target');
  assert.equal(await one.sendSnapshot(9, snapshotRequest(1, 9), tracked()), false, 'unknown member');
  assert.equal(await one.sendSnapshot(1, snapshotRequest(1, 1), tracked()), false, 'ourselves');
  assert.equal(await one.sendSnapshot(3, snapshotRequest(1, 3), tracked()), false, 'nobody listening');
  await waitFor(() => closedSources === 5, 2000, 'every unread source to be closed');
});
