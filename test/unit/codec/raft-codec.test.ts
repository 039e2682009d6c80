import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodecError, decodeEntry, decodeMessage, encodeEntry, encodeMessage, encodeValue } from '../../../src/codec/raft-codec.js';
import type { Entry, Message } from '../../../src/raft/types.js';

test('entries and messages survive a round trip, payload bytes intact', () => {
  const entry: Entry = { kind: 'command', term: 3, index: 42, data: new Uint8Array([0, 1, 255]) };
  const decoded = decodeEntry(encodeEntry(entry));
  assert.equal(decoded.kind, 'command');
  assert.deepEqual(Array.from((decoded as { data: Uint8Array }).data), [0, 1, 255]);
  const message: Message = { type: 'appendRequest', from: 1, to: 2, term: 3, prevLogIndex: 41, prevLogTerm: 3, entries: [entry, { kind: 'noop', term: 3, index: 43 }], leaderCommit: 40 };
  const back = decodeMessage(encodeMessage(message));
  assert.equal(back.type, 'appendRequest');
  assert.equal((back as { entries: readonly Entry[] }).entries.length, 2);
  const config: Entry = { kind: 'config', term: 1, index: 1, membership: { members: [{ id: 1, role: 'voter', peerAddr: 'a:1', httpAddr: 'a:2' }] } };
  assert.deepEqual(decodeEntry(encodeEntry(config)), config);
});

test('garbage and malformed messages are refused with a CodecError, never a crash', () => {
  assert.throws(() => decodeMessage(new Uint8Array([0xc1, 0xff, 0x00])), CodecError);
  assert.throws(() => decodeMessage(encodeValue({ type: 'voteRequest', from: 1, to: 2 })), CodecError);
  assert.throws(() => decodeMessage(encodeValue({ type: 'nope', from: 1, to: 2, term: 1 })), CodecError);
  assert.throws(() => decodeMessage(encodeValue({ type: 'heartbeatRequest', from: -1, to: 2, term: 1, commitIndex: 0, context: 0 })), CodecError);
  assert.throws(() => decodeMessage(encodeValue([1, 2, 3])), CodecError);
  assert.throws(() => decodeEntry(encodeValue({ kind: 'command', term: 1, index: 1, data: 'not bytes' })), CodecError);
});
