import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, encodeValue } from '../../../src/codec/raft-codec.js';
import { CommandDecodeError, decodeCommand, encodeCommand, type KvCommand } from '../../../src/kvstore/commands.js';
import { SeededRandom } from './helpers.js';

const stamp = { clientId: 'client-7', seq: 12, ackedSeq: 9 };

test('every command survives a round trip, with and without a client stamp', () => {
  const commands: KvCommand[] = [
    { v: 1, op: 'put', key: 'a', value: '', proposedAtMs: 0 },
    { v: 1, op: 'put', key: 'clé/ключ/🔑', value: 'valeur 🎉 with "quotes"', client: stamp, proposedAtMs: 1_700_000_000_123 },
    { v: 1, op: 'delete', key: 'a', proposedAtMs: 5 },
    { v: 1, op: 'delete', key: 'b', client: { clientId: 'c', seq: 1, ackedSeq: 0 }, proposedAtMs: 5 },
    { v: 1, op: 'compact', revision: 42, proposedAtMs: 9 },
  ];
  for (const command of commands) assert.deepEqual(decodeCommand(encodeCommand(command)), command);
});

test('an absent client stamp is not encoded as a field', () => {
  const command = { v: 1, op: 'put', key: 'a', value: 'b', client: undefined, proposedAtMs: 1 } as const;
  const decoded = decodeCommand(encodeCommand(command));
  assert.equal('client' in decoded, false);
});

function decodeError(bytes: Uint8Array): CommandDecodeError {
  try {
    decodeCommand(bytes);
  } catch (error) {
    assert.ok(error instanceof CommandDecodeError, `expected a CommandDecodeError, got ${String(error)}`);
    assert.ok(error instanceof CodecError, 'a command decode error is a codec error');
    return error;
  }
  assert.fail('decoding should have failed');
}

test('garbage bytes and malformed shapes are refused with a clear error', () => {
  assert.equal(decodeError(new Uint8Array([0xc1, 0xff, 0x00])).code, 'BAD_REQUEST');
  assert.equal(decodeError(new Uint8Array([])).code, 'BAD_REQUEST');
  assert.equal(decodeError(encodeValue([1, 2, 3])).code, 'BAD_REQUEST');
  assert.equal(decodeError(encodeValue('put')).code, 'BAD_REQUEST');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'put', key: 'a', proposedAtMs: 1 })).code, 'BAD_REQUEST', 'no value');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'put', key: 'a', value: 7, proposedAtMs: 1 })).code, 'BAD_REQUEST', 'value not a string');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'put', key: 7, value: 'x', proposedAtMs: 1 })).code, 'BAD_REQUEST', 'key not a string');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'put', key: 'a', value: 'x' })).code, 'BAD_REQUEST', 'no proposedAtMs');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'put', key: 'a', value: 'x', proposedAtMs: -1 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'put', key: 'a', value: 'x', proposedAtMs: 1.5 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'compact', revision: 0, proposedAtMs: 1 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'compact', revision: 'x', proposedAtMs: 1 })).code, 'BAD_REQUEST');
});

test('a command with an invalid key is refused as INVALID_KEY', () => {
  assert.equal(decodeError(encodeValue({ v: 1, op: 'put', key: '', value: 'x', proposedAtMs: 1 })).code, 'INVALID_KEY');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'delete', key: 'a\u0000b', proposedAtMs: 1 })).code, 'INVALID_KEY');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'delete', key: 'k'.repeat(1025), proposedAtMs: 1 })).code, 'INVALID_KEY');
});

test('unknown format versions and ops are UNSUPPORTED_COMMAND, so newer commands never crash an older replica', () => {
  assert.equal(decodeError(encodeValue({ v: 2, op: 'put', key: 'a', value: 'x', proposedAtMs: 1 })).code, 'UNSUPPORTED_COMMAND');
  assert.equal(decodeError(encodeValue({ op: 'put', key: 'a', value: 'x', proposedAtMs: 1 })).code, 'UNSUPPORTED_COMMAND');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'txn', compare: [], proposedAtMs: 1 })).code, 'UNSUPPORTED_COMMAND');
  assert.equal(decodeError(encodeValue({ v: 1, op: 'lease-grant', ttl: 5, proposedAtMs: 1 })).code, 'UNSUPPORTED_COMMAND');
});

test('client stamps are validated: id present, seq from 1, acknowledged below seq', () => {
  const put = (client: unknown): Uint8Array => encodeValue({ v: 1, op: 'put', key: 'a', value: 'x', client, proposedAtMs: 1 });
  assert.equal(decodeError(put({ seq: 1, ackedSeq: 0 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(put({ clientId: '', seq: 1, ackedSeq: 0 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(put({ clientId: 'c', seq: 0, ackedSeq: 0 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(put({ clientId: 'c', seq: 3, ackedSeq: 3 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(put({ clientId: 'c', seq: 3, ackedSeq: -1 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(put({ clientId: 'c'.repeat(257), seq: 3, ackedSeq: 1 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(put({ clientId: 'bad\u0007id', seq: 3, ackedSeq: 1 })).code, 'BAD_REQUEST');
  assert.equal(decodeError(put('client')).code, 'BAD_REQUEST');
  assert.deepEqual(decodeCommand(put(null)), { v: 1, op: 'put', key: 'a', value: 'x', proposedAtMs: 1 });
});

test('random bytes and random mutations of valid commands only ever produce CommandDecodeError', () => {
  const random = new SeededRandom(20240611);
  const valid = encodeCommand({ v: 1, op: 'put', key: 'some/key', value: 'some value', client: stamp, proposedAtMs: 123 });
  for (let round = 0; round < 5_000; round++) {
    let bytes: Uint8Array;
    if (random.chance(0.5)) {
      bytes = new Uint8Array(random.int(64));
      for (let i = 0; i < bytes.length; i++) bytes[i] = random.int(256);
    } else {
      bytes = Uint8Array.from(valid);
      const flips = 1 + random.int(4);
      for (let i = 0; i < flips; i++) bytes[random.int(bytes.length)] = random.int(256);
      if (random.chance(0.3)) bytes = bytes.subarray(0, random.int(bytes.length));
    }
    try {
      decodeCommand(bytes);
    } catch (error) {
      assert.ok(error instanceof CommandDecodeError, `round ${round}: ${String(error)}`);
    }
  }
});
