// The simulator's KV state machine and command codec.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Entry, Membership } from '../../../src/raft/types.js';
import { decodeCommand, emptyImage, encodeCommand, entryIdentity, KvStateMachine } from '../../sim/kv.js';

const membership: Membership = { members: [{ id: 1, role: 'voter', peerAddr: '', httpAddr: '' }] };

function command(index: number, op: 'put' | 'get' | 'delete', key: string, value?: string): Entry {
  return { kind: 'command', index, term: 1, data: encodeCommand({ op, key, ...(value !== undefined ? { value } : {}), opId: index }) };
}

test('commands round-trip and garbage decodes to null', () => {
  const data = encodeCommand({ op: 'put', key: 'a', value: 'x', opId: 9 });
  assert.deepEqual(decodeCommand(data), { op: 'put', key: 'a', value: 'x', opId: 9 });
  assert.equal(decodeCommand(new TextEncoder().encode('not json')), null);
  assert.equal(decodeCommand(new TextEncoder().encode('{"op":"drop","key":"a","opId":1}')), null);
});

test('outputs are decided at apply time, in log order', () => {
  const machine = new KvStateMachine(emptyImage(membership));
  assert.deepEqual(machine.apply(command(1, 'get', 'a')), { op: 'get', value: null });
  assert.deepEqual(machine.apply(command(2, 'put', 'a', 'x')), { op: 'put' });
  assert.deepEqual(machine.apply(command(3, 'get', 'a')), { op: 'get', value: 'x' });
  assert.deepEqual(machine.apply(command(4, 'delete', 'a')), { op: 'delete', deleted: true });
  assert.deepEqual(machine.apply(command(5, 'delete', 'a')), { op: 'delete', deleted: false });
  assert.equal(machine.apply({ kind: 'noop', index: 6, term: 2 }), null);
  assert.equal(machine.appliedIndex, 6);
  assert.equal(machine.appliedTerm, 2);
});

test('an image restores the same state and does not change afterwards', () => {
  const machine = new KvStateMachine(emptyImage(membership));
  machine.apply(command(1, 'put', 'b', '2'));
  machine.apply(command(2, 'put', 'a', '1'));
  const image = machine.image();
  machine.apply(command(3, 'put', 'a', 'changed'));
  assert.deepEqual(image.pairs, [['a', '1'], ['b', '2']]);
  const restored = new KvStateMachine(image);
  assert.equal(restored.get('a'), '1');
  assert.equal(restored.appliedIndex, 2);
});

test('entry identity is the content, not the term or index', () => {
  const a = command(1, 'put', 'k', 'v');
  const b = { ...command(1, 'put', 'k', 'v') };
  assert.equal(entryIdentity(a), entryIdentity(b));
  assert.notEqual(entryIdentity(a), entryIdentity(command(1, 'put', 'k', 'w')));
  assert.equal(entryIdentity({ kind: 'noop', index: 1, term: 1 }), 'noop');
});
