// The frame decoder and the small pure helpers beside it: frames split across reads, packed into
// one read, announced larger than the limit; backoff bounds; address parsing; warning rate limits.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelayMs } from '../../../src/transport/backoff.js';
import { parseHostPort } from '../../../src/transport/address.js';
import { encodeFrame, encodeFrames, FRAME_HEADER_BYTES, type Frame, FrameDecoder, FrameTooLargeError, FrameType } from '../../../src/transport/frame.js';
import { WarnLimiter } from '../../../src/transport/warn-limiter.js';
import { recordingLogger } from './helpers.js';

function drain(decoder: FrameDecoder): Frame[] {
  const frames: Frame[] = [];
  for (let frame = decoder.next(); frame !== null; frame = decoder.next()) frames.push(frame);
  return frames;
}

function payloadOf(size: number, seed: number): Buffer {
  const payload = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 1) payload[i] = (i * 31 + seed) & 0xff;
  return payload;
}

test('a frame is u32 big-endian payload length, u8 type, payload', () => {
  const frame = encodeFrame(FrameType.raftMessage, Buffer.from([9, 8, 7]));
  assert.deepEqual([...frame], [0, 0, 0, 3, FrameType.raftMessage, 9, 8, 7]);
  assert.deepEqual([...encodeFrame(FrameType.ping)], [0, 0, 0, 0, FrameType.ping]);
});

test('frames split at every possible byte boundary are reassembled', () => {
  const payloads = [payloadOf(0, 1), payloadOf(1, 2), payloadOf(300, 3), payloadOf(70_000, 4)];
  const stream = encodeFrames(FrameType.raftMessage, payloads);
  // One byte at a time: every header and every payload is split as finely as TCP could split it.
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  for (let i = 0; i < stream.length; i += 1) {
    decoder.push(stream.subarray(i, i + 1));
    frames.push(...drain(decoder));
  }
  assert.equal(frames.length, payloads.length);
  frames.forEach((frame, i) => {
    assert.equal(frame.type, FrameType.raftMessage);
    assert.ok(frame.payload.equals(payloads[i]), `payload ${i} intact`);
  });
  assert.equal(decoder.buffered, 0);
  // Two pieces, cut at each position in the first 400 bytes (inside headers and payloads alike).
  for (let cut = 1; cut < 400; cut += 1) {
    const split = new FrameDecoder();
    split.push(stream.subarray(0, cut));
    const got = drain(split);
    split.push(stream.subarray(cut));
    got.push(...drain(split));
    assert.deepEqual(got.map((f) => f.payload.length), payloads.map((p) => p.length), `cut at ${cut}`);
  }
});

test('many frames packed into one read come out one by one, in order', () => {
  const payloads = Array.from({ length: 1000 }, (_, i) => payloadOf(i % 50, i));
  const decoder = new FrameDecoder();
  decoder.push(encodeFrames(FrameType.raftMessage, payloads));
  const frames = drain(decoder);
  assert.equal(frames.length, 1000);
  frames.forEach((frame, i) => assert.ok(frame.payload.equals(payloads[i])));
  assert.equal(decoder.next(), null);
});

test('a frame inside one read is a view, not a copy; a large frame in many reads is copied once', () => {
  const chunk = encodeFrames(FrameType.snapshotChunk, [payloadOf(1000, 1), payloadOf(1000, 2)]);
  const decoder = new FrameDecoder();
  decoder.push(chunk);
  const [first] = drain(decoder);
  assert.equal(first.payload.buffer, chunk.buffer, 'the payload shares the received buffer');

  // 16 MiB delivered in 4 KiB reads: a decoder that re-concatenated its buffer on every read would
  // copy about 32 GiB here and never finish in test time.
  const big = payloadOf(16 * 1024 * 1024, 7);
  const stream = encodeFrame(FrameType.snapshotChunk, big);
  const started = performance.now();
  const many = new FrameDecoder();
  let frame: Frame | null = null;
  for (let offset = 0; offset < stream.length; offset += 4096) {
    many.push(stream.subarray(offset, offset + 4096));
    frame = many.next() ?? frame;
  }
  assert.ok(frame !== null && frame.payload.equals(big));
  assert.ok(performance.now() - started < 10_000, 'linear-time reassembly');
});

test('the maximum frame size: exactly the limit passes, one byte more is refused at the header', () => {
  const decoder = new FrameDecoder(1024);
  decoder.push(encodeFrame(FrameType.raftMessage, payloadOf(1024, 0)));
  assert.equal(decoder.next()?.payload.length, 1024);

  const over = new FrameDecoder(1024);
  // Only the header: the refusal must not wait for (or allocate) the announced payload.
  over.push(encodeFrame(FrameType.raftMessage, payloadOf(1025, 0)).subarray(0, FRAME_HEADER_BYTES));
  assert.throws(() => over.next(), (error: unknown) => error instanceof FrameTooLargeError && error.announcedBytes === 1025);
});

test('an absurd announced length (0xFFFFFFFF) is refused with the default limit of 64 MiB', () => {
  const decoder = new FrameDecoder();
  assert.equal(decoder.maxFrameBytes, 64 * 1024 * 1024);
  decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff, FrameType.raftMessage]));
  assert.throws(() => decoder.next(), FrameTooLargeError);
});

test('backoff grows exponentially within [min, max], with jitter', () => {
  const options = (random: number) => ({ backoffMsMin: 50, backoffMsMax: 1000, random: () => random });
  assert.equal(backoffDelayMs(1, options(0)), 50);
  assert.equal(backoffDelayMs(1, options(0.999)), 50);
  assert.equal(backoffDelayMs(2, options(0)), 50);
  assert.equal(backoffDelayMs(2, options(0.999)), 100);
  assert.equal(backoffDelayMs(3, options(0)), 100);
  assert.equal(backoffDelayMs(5, options(0.999)), 800);
  assert.equal(backoffDelayMs(6, options(0)), 500);
  assert.equal(backoffDelayMs(60, options(0.999)), 1000);
  for (let attempt = 1; attempt < 100; attempt += 1) {
    const delay = backoffDelayMs(attempt, { backoffMsMin: 50, backoffMsMax: 1000 });
    assert.ok(delay >= 50 && delay <= 1000, `attempt ${attempt}: ${delay}`);
  }
});

test('addresses are host:port, IPv6 in brackets', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:7000'), { host: '127.0.0.1', port: 7000 });
  assert.deepEqual(parseHostPort('node-1.raft:1'), { host: 'node-1.raft', port: 1 });
  assert.deepEqual(parseHostPort('[::1]:65535'), { host: '::1', port: 65535 });
  for (const bad of ['', 'host', 'host:', ':7000', 'host:0', 'host:65536', 'host:7x', '::1:7000']) {
    assert.throws(() => parseHostPort(bad), RangeError, bad);
  }
});

test('warnings are limited to one line per key per interval, counting the suppressed ones', () => {
  const logger = recordingLogger();
  let now = 0;
  const limiter = new WarnLimiter(logger, 5000, () => now);
  limiter.warn('a', 'bad frame');
  limiter.warn('a', 'bad frame');
  limiter.warn('b', 'bad frame');
  now = 4999;
  limiter.warn('a', 'bad frame');
  assert.equal(logger.lines.length, 2);
  now = 5000;
  limiter.warn('a', 'bad frame', { peer: 'a' });
  assert.equal(logger.lines.length, 3);
  assert.deepEqual(logger.lines[2].fields, { peer: 'a', suppressedSinceLast: 2 });
});
