// The codec refuses strings that are not valid UTF-8 wherever they sit in a value (map key, map
// value, array element, any length class), and accepts every valid one unchanged. The property test
// at the end compares the walk against the WHATWG decoder in fatal mode on random byte strings.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, decodeMessage, decodeValue, encodeMessage, encodeValue, InvalidTextError } from '../../../src/codec/raft-codec.js';
import { findInvalidText, MalformedPackError } from '../../../src/codec/utf8-check.js';
import type { Message } from '../../../src/raft/types.js';

/** A MessagePack string header for `length` bytes, in the smallest form (as msgpackr writes it). */
function strHeader(length: number): Buffer {
  if (length < 32) return Buffer.from([0xa0 | length]);
  if (length < 0x100) return Buffer.from([0xd9, length]);
  if (length < 0x10000) return Buffer.from([0xda, length >> 8, length & 0xff]);
  const header = Buffer.alloc(5);
  header[0] = 0xdb;
  header.writeUInt32BE(length, 1);
  return header;
}

function str(payload: Buffer): Buffer {
  return Buffer.concat([strHeader(payload.length), payload]);
}

/** `{ key: value }` as a fixmap with one pair, both given as encoded values. */
function map1(key: Buffer, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x81]), key, value]);
}

/** The error `run` throws (assert.throws checks a kind but does not hand the error back). */
function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  assert.fail('expected an error');
}

const fatal = new TextDecoder('utf-8', { fatal: true });
function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    fatal.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

const INVALID_SEQUENCES: [string, number[]][] = [
  ['a lone high surrogate, as msgpackr writes "\\ud800"', [0xed, 0xa0, 0x80]],
  ['a lone low surrogate', [0xed, 0xbf, 0xbf]],
  ['0xFF', [0xff]],
  ['0xFE', [0xfe]],
  ['a bare continuation byte', [0x80]],
  ['overlong NUL (C0 80)', [0xc0, 0x80]],
  ['overlong slash (E0 80 AF)', [0xe0, 0x80, 0xaf]],
  ['above U+10FFFF (F4 90 80 80)', [0xf4, 0x90, 0x80, 0x80]],
  ['a lead byte with a non-continuation byte (C3 41, which msgpackr reads as "Á")', [0xc3, 0x41]],
  ['a truncated two-byte sequence at the end', [0x61, 0xc3]],
  ['a truncated four-byte sequence', [0xf0, 0x9f, 0x98]],
];

test('valid strings of every length class and script round-trip unchanged', () => {
  const values: unknown[] = [
    '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65_535), 'x'.repeat(65_536),
    'café', 'ключ', '键', '😀', '\u{10FFFF}', '\uFFFD', 'é'.repeat(300), '😀'.repeat(20_000),
    { 'клю': 'ч', nested: [{ deep: ['a', 'é', 1, null, true, 1.5, -3, 2 ** 40] }] },
    { data: Buffer.from([0xff, 0xed, 0xa0, 0x80]), text: 'bytes are not text' },
    { missing: undefined, when: new Date(0) },
    Array.from({ length: 70_000 }, (_, i) => `item ${i}`),
  ];
  for (const value of values) {
    const bytes = encodeValue(value);
    assert.equal(findInvalidText(bytes), -1, `valid: ${JSON.stringify(value)?.slice(0, 40)}`);
    assert.deepEqual(decodeValue(bytes), value);
  }
});

test('an invalid sequence is refused in a value, a map key, an array and every string length class', () => {
  for (const [name, sequence] of INVALID_SEQUENCES) {
    const bad = Buffer.from(sequence);
    for (const padding of [0, 40, 300, 70_000]) {
      const payload = Buffer.concat([Buffer.alloc(padding, 0x61), bad]);
      const asValue = map1(str(Buffer.from('key')), str(payload));
      const asKey = map1(str(payload), str(Buffer.from('value')));
      const inArray = Buffer.concat([Buffer.from([0x93, 0x01]), str(Buffer.from('ok')), str(payload)]);
      for (const [where, bytes, offset] of [['value', asValue, 5], ['key', asKey, 1], ['array', inArray, 5]] as const) {
        const error = thrown(() => decodeValue(bytes));
        assert.ok(error instanceof InvalidTextError, `${name}, ${padding} bytes before it, as a ${where}: ${String(error)}`);
        assert.ok(error instanceof CodecError, 'an InvalidTextError is a CodecError, so every caller already handles it');
        assert.equal(error.offset, offset, `${name} as a ${where}: offset of the string's header`);
      }
    }
  }
});

test('the lone surrogate a peer-port client sends is refused, and the lenient decoding rides along for the id', () => {
  const bytes = encodeValue({ id: 7, body: { type: 'put', key: 'malformed-utf8', value: '\ud800' } });
  const error = thrown(() => decodeValue(bytes));
  assert.ok(error instanceof InvalidTextError);
  assert.equal((error.decoded as { id: number }).id, 7);
  // What the decoder would have stored without the check: a different value.
  assert.equal((error.decoded as { body: { value: string } }).body.value, '\uFFFD\uFFFD\uFFFD');
});

test('a string cut short whose next header completes the sequence is still refused', () => {
  // "é" is C3 A9; a one-byte string holding C3 followed by a fixstr header A9 makes valid UTF-8 of
  // the bytes from the string on, yet the first string alone is not.
  const bytes = Buffer.concat([Buffer.from([0x92]), str(Buffer.from([0xc3])), Buffer.from([0xa9]), Buffer.alloc(9, 0x62)]);
  assert.ok(isValidUtf8(bytes.subarray(2)), 'the bytes from the first string on are valid UTF-8');
  assert.throws(() => decodeValue(bytes), InvalidTextError);
});

test('Raft messages with invalid text in a member address are refused', () => {
  const message: Message = { type: 'appendRequest', from: 1, to: 2, term: 1, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0, entries: [{ kind: 'config', term: 1, index: 1, membership: { members: [{ id: 1, role: 'voter', peerAddr: 'a:1', httpAddr: 'b:2' }] } }] };
  const good = Buffer.from(encodeMessage(message));
  assert.deepEqual(decodeMessage(good), message);
  const at = good.indexOf('b:2');
  const bad = Buffer.from(good);
  bad[at] = 0xff;
  assert.throws(() => decodeMessage(bad), InvalidTextError);
});

test('extensions that carry nested values, and broken layouts, are refused as malformed', () => {
  // msgpackr would decode 0x65 into an Error built from the following values, 0x73 into a Set.
  for (const extension of [0x65, 0x73, 0x78, 0x69, 0x70, 0x62, 0x74]) {
    const bytes = Buffer.from([0xd4, extension, 0x00]);
    assert.throws(() => findInvalidText(bytes), MalformedPackError, `extension 0x${extension.toString(16)}`);
  }
  assert.throws(() => findInvalidText(Buffer.from([0xc1])), MalformedPackError);
  assert.throws(() => findInvalidText(Buffer.from([0x92, 0x01])), MalformedPackError, 'an array missing an element');
  assert.throws(() => findInvalidText(Buffer.from([0xa5, 0x61])), MalformedPackError, 'a string cut off');
  assert.throws(() => findInvalidText(Buffer.from([0xdb, 0xff, 0xff])), MalformedPackError, 'a string header cut off');
  assert.throws(() => findInvalidText(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])), MalformedPackError, 'an absurd array length');
  assert.throws(() => findInvalidText(Buffer.from([0x01, 0x02])), MalformedPackError, 'bytes after the value');
  assert.throws(() => findInvalidText(Buffer.alloc(0)), MalformedPackError);
  // Through decodeValue, these are CodecErrors but not InvalidTextErrors.
  const error = thrown(() => decodeValue(Buffer.from([0xd4, 0x65, 0x00, 0xa1, 0x61])));
  assert.ok(error instanceof CodecError && !(error instanceof InvalidTextError), String(error));
});

/** A small seeded generator (mulberry32), so a failure names a seed that reproduces it. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

test('property: a string is refused exactly when the WHATWG decoder in fatal mode refuses its bytes', () => {
  const next = random(20261127);
  // Bytes biased towards the interesting ranges: ASCII, continuation bytes, lead bytes, the edges.
  const pool = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xf8, 0xfe, 0xff];
  let refused = 0;
  for (let round = 0; round < 20_000; round++) {
    const length = Math.floor(next() * (next() < 0.1 ? 400 : 8));
    const payload = Buffer.alloc(length);
    for (let i = 0; i < length; i++) payload[i] = next() < 0.5 ? pool[Math.floor(next() * pool.length)] : Math.floor(next() * 256);
    const bytes = map1(str(Buffer.from('k')), str(payload));
    const expectedValid = isValidUtf8(payload);
    assert.equal(findInvalidText(bytes), expectedValid ? -1 : 3, `round ${round}: ${payload.toString('hex')}`);
    if (!expectedValid) refused += 1;
  }
  assert.ok(refused > 1000 && refused < 19_000, `both outcomes are exercised (${refused} refused)`);
});
