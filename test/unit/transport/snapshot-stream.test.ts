// The receiver's chunk stream on its own: pause at the high-water mark, resume at the low-water
// mark, end after the buffered chunks, fail at once, and let a consumer stop early.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotChunkStream, SnapshotStreamError } from '../../../src/transport/snapshot-stream.js';

function hooks(): { events: string[]; pause: () => void; resume: () => void } {
  const events: string[] = [];
  return { events, pause: () => events.push('pause'), resume: () => events.push('resume') };
}

test('the socket is paused at the high-water mark and resumed at half of it', async () => {
  const h = hooks();
  const stream = new SnapshotChunkStream(h, 400);
  for (let i = 0; i < 3; i += 1) stream.push(new Uint8Array(100));
  assert.deepEqual(h.events, []);
  stream.push(new Uint8Array(100));
  assert.deepEqual(h.events, ['pause']);
  stream.push(new Uint8Array(100));
  assert.equal(stream.bufferedBytes, 500);
  const iterator = stream[Symbol.asyncIterator]();
  await iterator.next();
  await iterator.next();
  assert.deepEqual(h.events, ['pause'], 'still above the low-water mark (300 > 200)');
  await iterator.next();
  assert.deepEqual(h.events, ['pause', 'resume']);
  assert.equal(stream.bufferedBytes, 200);
});

test('end() lets the consumer finish the buffered chunks, then done', async () => {
  const stream = new SnapshotChunkStream(hooks());
  stream.push(Uint8Array.of(1));
  stream.push(Uint8Array.of(2));
  stream.end();
  const seen: number[] = [];
  for await (const chunk of stream) seen.push(chunk[0]);
  assert.deepEqual(seen, [1, 2]);
  assert.equal(stream.complete, true);
});

test('a waiting consumer is woken by a chunk, by the end, and by a failure', async () => {
  const stream = new SnapshotChunkStream(hooks());
  const iterator = stream[Symbol.asyncIterator]();
  const first = iterator.next();
  stream.push(Uint8Array.of(7));
  assert.deepEqual((await first).value, Uint8Array.of(7));
  const second = iterator.next();
  stream.fail(new SnapshotStreamError('connection lost'));
  await assert.rejects(second, /connection lost/);
  await assert.rejects(iterator.next(), /connection lost/, 'it keeps failing');

  const ending = new SnapshotChunkStream(hooks());
  const waiting = ending[Symbol.asyncIterator]().next();
  ending.end();
  assert.equal((await waiting).done, true);
});

test('fail() drops buffered chunks: a broken stream never looks complete', async () => {
  const h = hooks();
  const stream = new SnapshotChunkStream(h, 100);
  stream.push(new Uint8Array(150));
  stream.fail(new SnapshotStreamError('cut'));
  assert.equal(stream.bufferedBytes, 0);
  assert.deepEqual(h.events, ['pause', 'resume']);
  await assert.rejects(stream[Symbol.asyncIterator]().next(), /cut/);
  stream.end();
  assert.equal(stream.complete, false);
});

test('a consumer that breaks early releases the buffer and the socket; the stream reads only once', async () => {
  const h = hooks();
  const stream = new SnapshotChunkStream(h, 100);
  stream.push(new Uint8Array(60));
  stream.push(new Uint8Array(60));
  for await (const chunk of stream) {
    void chunk;
    break;
  }
  assert.equal(stream.consumerAbandoned, true);
  assert.equal(stream.bufferedBytes, 0);
  assert.deepEqual(h.events, ['pause', 'resume']);
  stream.push(new Uint8Array(500));
  assert.equal(stream.bufferedBytes, 0, 'later chunks are discarded');
  assert.throws(() => stream[Symbol.asyncIterator](), SnapshotStreamError);
});
