// The state machine's own bookkeeping, stored in the `meta` database in the same transaction as
// the data it describes: the applied index, the store revision and the compaction state. The
// schema record (magic and format version) is written once, when an environment is created.

import { decodeValue, encodeValue } from '../codec/raft-codec.js';
import type { BinaryDb } from './engine.js';
import { EngineFormatError } from './errors.js';
import { readU64, U64_BYTES, writeU64 } from './encoding.js';
import type { Transaction } from 'lmdb';

export const ENGINE_MAGIC = 'raft-kv-state-machine';
/**
 * 2: graves and previousRevision links to tombstones replace version 1's per-key revision index.
 * A version-1 engine is migrated in place when it is opened (format-migration.ts).
 */
export const ENGINE_FORMAT_VERSION = 2;

const STATE_KEY = Buffer.from('state');
const SCHEMA_KEY = Buffer.from('schema');

export interface StateMeta {
  /** The last log index whose effects are in this state. */
  readonly appliedIndex: number;
  /** The store revision: 1 when empty, +1 per change. */
  readonly revision: number;
  /** Reads below this revision fail; 0 before the first compaction. */
  readonly compactedRevision: number;
  /** History below this revision has been physically compacted (<= compactedRevision + 1). */
  readonly compactionCursor: number;
  /** The newest leader timestamp applied so far: the clock of session expiry. */
  readonly newestProposedAtMs: number;
}

export const INITIAL_META: StateMeta = { appliedIndex: 0, revision: 1, compactedRevision: 0, compactionCursor: 1, newestProposedAtMs: 0 };

const STATE_FIELDS = 5;

export function encodeMeta(meta: StateMeta): Buffer {
  const value = Buffer.allocUnsafe(STATE_FIELDS * U64_BYTES);
  writeU64(value, 0, meta.appliedIndex);
  writeU64(value, 8, meta.revision);
  writeU64(value, 16, meta.compactedRevision);
  writeU64(value, 24, meta.compactionCursor);
  writeU64(value, 32, meta.newestProposedAtMs);
  return value;
}

export function decodeMeta(value: Buffer): StateMeta {
  if (value.length !== STATE_FIELDS * U64_BYTES) throw new EngineFormatError(`state record of ${value.length} bytes`);
  const meta = { appliedIndex: readU64(value, 0), revision: readU64(value, 8), compactedRevision: readU64(value, 16), compactionCursor: readU64(value, 24), newestProposedAtMs: readU64(value, 32) };
  const problem = metaProblem(meta);
  if (problem !== null) throw new EngineFormatError(`state record is inconsistent: ${problem}`);
  return meta;
}

/** The relations between the fields, checked whenever meta is read from disk or a peer. */
export function metaProblem(meta: StateMeta): string | null {
  if (meta.revision < 1) return `revision ${meta.revision} is below 1`;
  if (meta.compactedRevision > meta.revision) return `compacted revision ${meta.compactedRevision} is above revision ${meta.revision}`;
  if (meta.compactionCursor < 1 || meta.compactionCursor > meta.compactedRevision + 1) return `compaction cursor ${meta.compactionCursor} is outside 1..${meta.compactedRevision + 1}`;
  // Every change needs a log entry, so the revision can never outrun the applied index.
  if (meta.revision - 1 > meta.appliedIndex) return `revision ${meta.revision} is ahead of applied index ${meta.appliedIndex}`;
  return null;
}

export function writeMeta(db: BinaryDb, meta: StateMeta): void {
  db.putSync(STATE_KEY, encodeMeta(meta));
}

export function readMeta(db: BinaryDb, transaction?: Transaction): StateMeta {
  const value = transaction === undefined ? db.get(STATE_KEY) : db.get(STATE_KEY, { transaction });
  if (value === undefined) throw new EngineFormatError('the engine has no state record');
  return decodeMeta(value);
}

export function writeSchema(db: BinaryDb): void {
  db.putSync(SCHEMA_KEY, Buffer.from(encodeValue({ magic: ENGINE_MAGIC, formatVersion: ENGINE_FORMAT_VERSION })));
}

/** The engine's format version, after checking that it is a state machine environment at all. */
export function readFormatVersion(db: BinaryDb): number {
  const value = db.get(SCHEMA_KEY);
  if (value === undefined) throw new EngineFormatError('the engine has no schema record: not a state machine environment');
  let schema: unknown;
  try {
    schema = decodeValue(value);
  } catch {
    throw new EngineFormatError('the engine schema record is not decodable');
  }
  const { magic, formatVersion } = (typeof schema === 'object' && schema !== null ? schema : {}) as { magic?: unknown; formatVersion?: unknown };
  if (magic !== ENGINE_MAGIC) throw new EngineFormatError(`the engine magic is ${String(magic)}, expected ${ENGINE_MAGIC}`);
  if (typeof formatVersion !== 'number' || !Number.isSafeInteger(formatVersion)) throw new EngineFormatError(`the engine format version is ${String(formatVersion)}, not an integer`);
  return formatVersion;
}

export function checkSchema(db: BinaryDb): void {
  const formatVersion = readFormatVersion(db);
  if (formatVersion !== ENGINE_FORMAT_VERSION) throw new EngineFormatError(`the engine format version is ${formatVersion}; this build reads ${ENGINE_FORMAT_VERSION}${formatVersion < ENGINE_FORMAT_VERSION ? ' (and migrates older formats when it opens them)' : ''}`);
}
