// A deterministic digest of the live key space, so replicas can compare their states at the same
// applied index. It covers what clients can observe now (every live key with its value, revisions
// and version) plus the store revision and the compacted revision; it does not cover history that
// compaction has yet to remove physically, nor the engine's page layout, which may differ.

import { createHash } from 'node:crypto';
import type { BinaryDb } from './engine.js';
import { decodeLive, HISTORY_PUT, u64Key, U64_BYTES, writeU64 } from './encoding.js';
import { KvInvariantError } from './errors.js';

const HASH_DOMAIN = Buffer.from('raft-kv live-state hash v1\n', 'utf8');
/** A history put record: kind | createRevision | version | key length | key | value. */
const HISTORY_HEADER_BYTES = 1 + U64_BYTES + U64_BYTES + 4;

export function hashLiveState(live: BinaryDb, history: BinaryDb, revision: number, compactedRevision: number): string {
  const digest = createHash('sha256');
  const numbers = Buffer.allocUnsafe(4 * U64_BYTES);
  writeU64(numbers, 0, revision);
  writeU64(numbers, 8, compactedRevision);
  digest.update(HASH_DOMAIN);
  digest.update(numbers.subarray(0, 16));
  const lengths = Buffer.allocUnsafe(8);
  for (const { key, value } of live.getRange({})) {
    const record = decodeLive(value);
    const stored = history.getBinaryFast(u64Key(record.modRevision));
    if (stored === undefined || stored[0] !== HISTORY_PUT) throw new KvInvariantError(`the live key's revision ${record.modRevision} has no put in history`);
    const keyLength = stored.readUInt32BE(17);
    const valueBytes = stored.subarray(HISTORY_HEADER_BYTES + keyLength);
    // Lengths first, so that no two different states can feed the digest the same bytes.
    lengths.writeUInt32BE(key.length, 0);
    lengths.writeUInt32BE(valueBytes.length, 4);
    writeU64(numbers, 0, record.createRevision);
    writeU64(numbers, 8, record.modRevision);
    writeU64(numbers, 16, record.version);
    digest.update(lengths);
    digest.update(key);
    digest.update(numbers.subarray(0, 24));
    digest.update(valueBytes);
  }
  return digest.digest('hex');
}
