import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MAX_VALUE_BYTES, MAX_KEY_BYTES, validateKey, validateValue } from '../../../src/kvstore/limits.js';

test('keys: ordinary text is fine, empty is not', () => {
  assert.equal(validateKey('a'), null);
  assert.equal(validateKey('/config/service-a/timeout'), null);
  assert.equal(validateKey('with spaces and ~!@#$%^&*()'), null);
  assert.equal(validateKey('')?.code, 'INVALID_KEY');
});

test('keys: exactly 1,024 bytes of UTF-8 pass, 1,025 do not', () => {
  assert.equal(MAX_KEY_BYTES, 1024);
  assert.equal(validateKey('k'.repeat(1024)), null);
  assert.equal(validateKey('k'.repeat(1025))?.code, 'INVALID_KEY');
});

test('keys: the limit counts UTF-8 bytes, not characters', () => {
  // é is 2 bytes, € is 3, 🔑 is 4 (a surrogate pair: 2 UTF-16 units).
  assert.equal(validateKey('é'.repeat(512)), null);
  assert.equal(validateKey('é'.repeat(512) + 'a')?.code, 'INVALID_KEY');
  assert.equal(validateKey('€'.repeat(341) + 'a'), null); // 1,023 + 1
  assert.equal(validateKey('€'.repeat(342))?.code, 'INVALID_KEY'); // 1,026
  assert.equal(validateKey('🔑'.repeat(256)), null);
  assert.equal(validateKey('🔑'.repeat(256) + 'a')?.code, 'INVALID_KEY');
  assert.equal(validateKey('a'.repeat(1021) + '🔑')?.code, 'INVALID_KEY'); // 1,025 bytes, 1,023 UTF-16 units
});

test('keys: lone surrogates are not valid Unicode', () => {
  assert.equal(validateKey('a\ud800')?.code, 'INVALID_KEY');
  assert.equal(validateKey('\udc00a')?.code, 'INVALID_KEY');
  assert.equal(validateKey('a\ud800b')?.code, 'INVALID_KEY');
  assert.equal(validateKey('\ud83d\udd11'), null);
  assert.equal(validateKey('\udd11\ud83d')?.code, 'INVALID_KEY');
});

test('keys: C0 controls, DEL and C1 controls are refused, their neighbours are not', () => {
  for (let code = 0x00; code <= 0x1f; code++) assert.equal(validateKey(`a${String.fromCharCode(code)}b`)?.code, 'INVALID_KEY', `U+${code.toString(16)}`);
  for (let code = 0x7f; code <= 0x9f; code++) assert.equal(validateKey(`a${String.fromCharCode(code)}b`)?.code, 'INVALID_KEY', `U+${code.toString(16)}`);
  assert.equal(validateKey('a\u0020b'), null);
  assert.equal(validateKey('a\u007eb'), null);
  assert.equal(validateKey('a\u00a0b'), null);
  assert.match(validateKey('a\tb')?.message ?? '', /U\+0009/);
});

test('values: strings up to 1 MiB of UTF-8 by default', () => {
  assert.equal(DEFAULT_MAX_VALUE_BYTES, 1_048_576);
  assert.equal(validateValue(''), null);
  assert.equal(validateValue('x'.repeat(DEFAULT_MAX_VALUE_BYTES)), null);
  assert.equal(validateValue('x'.repeat(DEFAULT_MAX_VALUE_BYTES + 1))?.code, 'TOO_LARGE');
  // 349,525 three-byte characters are 1,048,575 bytes; one more is over.
  assert.equal(validateValue('€'.repeat(349_525)), null);
  assert.equal(validateValue('€'.repeat(349_526))?.code, 'TOO_LARGE');
  assert.equal(validateValue('a\u0000b\tc'), null, 'values are opaque: control characters are allowed');
});

test('values: the limit is a parameter', () => {
  assert.equal(validateValue('abcd', 4), null);
  assert.equal(validateValue('abcde', 4)?.code, 'TOO_LARGE');
  assert.equal(validateValue('éé', 4), null);
  assert.equal(validateValue('éé!', 4)?.code, 'TOO_LARGE');
});

test('values: anything but a string is a bad request; lone surrogates are not valid text', () => {
  for (const value of [undefined, null, 1, true, {}, [], ['a']]) assert.equal(validateValue(value)?.code, 'BAD_REQUEST', JSON.stringify(value));
  assert.equal(validateValue('a\ud800')?.code, 'INVALID_JSON');
  assert.equal(validateValue('\udc00')?.code, 'INVALID_JSON');
  assert.equal(validateValue('ok 🔑'), null);
});
